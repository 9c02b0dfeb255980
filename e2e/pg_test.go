//go:build linux

package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq" // the database/sql driver for the checks
)

// postgres is a private PostgreSQL instance: its own data folder, port and
// socket folder, so it can be restarted mid-run without touching the
// machine's shared server that other packages' tests use.
type postgres struct {
	t    *testing.T
	bin  string // folder of initdb and pg_ctl
	root string // owns data, sock and the server log
	data string
	sock string
	log  string
	port int
	// uid and gid run the server when the test runs as root (PostgreSQL
	// refuses to run as root); runuser is used when present.
	uid, gid int
	asUser   bool
}

// pgBinDir finds initdb and pg_ctl: E2E_PG_BIN, then the newest
// /usr/lib/postgresql/*/bin (Debian, Ubuntu), /usr/pgsql-*/bin (RHEL), then
// PATH.
func pgBinDir() (string, error) {
	if d := os.Getenv("E2E_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err != nil {
			return "", fmt.Errorf("E2E_PG_BIN=%s: %w", d, err)
		}
		return d, nil
	}
	var dirs []string
	for _, pat := range []string{"/usr/lib/postgresql/*/bin/initdb", "/usr/pgsql-*/bin/initdb", "/usr/local/pgsql/bin/initdb"} {
		m, _ := filepath.Glob(pat)
		for _, f := range m {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	version := func(dir string) float64 {
		for _, part := range strings.Split(dir, "/") {
			part = strings.TrimPrefix(part, "pgsql-")
			if v, err := strconv.ParseFloat(part, 64); err == nil {
				return v
			}
		}
		return 0
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	return "", errors.New("no initdb and pg_ctl found (looked at E2E_PG_BIN, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, PATH)")
}

// missing skips the test loudly, or fails it under CI=true, where a skipped
// black-box suite would pass unnoticed.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("black-box suite cannot run under CI=true: %s", msg)
	}
	t.Skipf("SKIPPED: the black-box suite needs its own PostgreSQL: %s", msg)
}

// startPostgres initdbs a cluster into a temporary folder (trust auth,
// 127.0.0.1 only, a free port) and starts it; it is stopped and removed
// when the test ends.
func startPostgres(t *testing.T, logDir string) *postgres {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		missing(t, "%v", err)
	}
	root, err := os.MkdirTemp("", "esimbatch-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	pg := &postgres{t: t, bin: bin, root: root, data: filepath.Join(root, "data"), sock: filepath.Join(root, "sock"),
		log: filepath.Join(logDir, "postgres.log")}
	for _, d := range []string{pg.data, pg.sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "running as root and there is no postgres user to run the server as: %v", err)
		}
		pg.uid, _ = strconv.Atoi(u.Uid)
		pg.gid, _ = strconv.Atoi(u.Gid)
		pg.asUser = true
		for _, p := range []string{root, pg.data, pg.sock} {
			if err := os.Chown(p, pg.uid, pg.gid); err != nil {
				t.Fatal(err)
			}
		}
		// The server log sits with the other child logs, in a folder the
		// postgres user may not enter: it writes to a file of its own.
		pg.log = filepath.Join(root, "postgres.log")
		t.Cleanup(func() { copyFile(pg.log, filepath.Join(logDir, "postgres.log")) })
	}
	if out, err := pg.ctl(2*time.Minute, filepath.Join(bin, "initdb"), "-D", pg.data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	var lastErr error
	for range 5 { // a free port can be taken between the probe and the start
		pg.port = freePort(t)
		if lastErr = pg.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start PostgreSQL: %v\n%s", lastErr, tail(pg.log, 20))
	}
	t.Cleanup(func() {
		if out, err := pg.ctl(time.Minute, filepath.Join(bin, "pg_ctl"), "-D", pg.data, "-m", "immediate", "-w", "stop"); err != nil {
			t.Logf("stop PostgreSQL: %v\n%s", err, out)
		}
	})
	db, err := sql.Open("postgres", pg.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE DATABASE e2e`); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return pg
}

// url is the DSN of database name on this instance.
func (pg *postgres) url(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=10", pg.port, name)
}

func (pg *postgres) serverOptions() string {
	// fsync off: the restarts are clean (fast shutdown checkpoints), and
	// the suite is disk-bound on a small CI machine otherwise.
	return fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off -c max_connections=200",
		pg.port, pg.sock)
}

func (pg *postgres) start() error {
	out, err := pg.ctl(2*time.Minute, filepath.Join(pg.bin, "pg_ctl"), "-D", pg.data, "-l", pg.log, "-w", "-t", "90",
		"-o", pg.serverOptions(), "start")
	if err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	return nil
}

// restart is `pg_ctl restart -m fast`: every session is cut, the server is
// back a moment later on the same port.
func (pg *postgres) restart() error {
	out, err := pg.ctl(2*time.Minute, filepath.Join(pg.bin, "pg_ctl"), "-D", pg.data, "-l", pg.log, "-w", "-t", "90",
		"-m", "fast", "-o", pg.serverOptions(), "restart")
	if err != nil {
		return fmt.Errorf("pg_ctl restart: %w\n%s", err, out)
	}
	return nil
}

// ctl runs a PostgreSQL tool, as the postgres user when the test is root.
func (pg *postgres) ctl(timeout time.Duration, tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var cmd *exec.Cmd
	switch {
	case !pg.asUser:
		cmd = exec.CommandContext(ctx, tool, args...)
	default:
		if ru, err := exec.LookPath("runuser"); err == nil {
			cmd = exec.CommandContext(ctx, ru, append([]string{"-u", "postgres", "--", tool}, args...)...)
		} else {
			cmd = exec.CommandContext(ctx, tool, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(pg.uid), Gid: uint32(pg.gid)}}
		}
	}
	cmd.Dir = pg.root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC", "HOME=" + pg.root}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// freePort asks the kernel for a free loopback TCP port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func copyFile(from, to string) {
	b, err := os.ReadFile(from)
	if err == nil {
		_ = os.WriteFile(to, b, 0o644)
	}
}
