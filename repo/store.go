package repo

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	neturl "net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"    // the "postgres" driver
	_ "modernc.org/sqlite" // "sqlite" driver, pure Go
)

// Sentinel errors. Methods wrap them with the operation (and the activation
// id where there is one): test with errors.Is.
var (
	// ErrNotFound: the row asked for does not exist (never nil, nil).
	ErrNotFound = errors.New("repo: not found")
	// ErrLostClaim: a guarded write matched no row: the activation is no
	// longer in the expected state or no longer holds this claim token.
	ErrLostClaim = errors.New("repo: claim lost (row moved or re-claimed)")
	// ErrLocked: another runner holds the run lock.
	ErrLocked = errors.New("repo: run lock held by another runner")
	// ErrSchemaBehind: the database lacks migrations this binary has; run `batch migrate`.
	ErrSchemaBehind = errors.New("repo: database schema is behind this binary; run `batch migrate`")
	// ErrSchemaAhead: the database has migrations this binary does not know.
	ErrSchemaAhead = errors.New("repo: database schema is newer than this binary")
)

// Dialect names returned by Store.Dialect.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// Store is the database: every method takes ctx first and is safe for
// concurrent use.
type Store struct {
	db      *pool
	dialect string
	// schema is the PostgreSQL schema in use (current_schema()), so that
	// migrations of different schemas do not wait on one another.
	schema string
	// leaseTTL is the SQLite run lock's lease (LeaseTTL; tests shorten it).
	leaseTTL time.Duration
	// startCalls, finishCalls and recordCalls share statements and commits among the
	// call-log writes made at the same moment (PostgreSQL; nil on SQLite,
	// whose one connection writes one at a time anyway).
	startCalls  *group[Call, int64]
	finishCalls *group[finishedCall, bool]
	recordCalls *group[Call, struct{}]
	// The answer-recording transitions moved together (moves.go).
	selectedMoves, acceptedMoves, qrMoves, completedMoves, provisionedMoves *moveGroup
	beginMoves                                                              sync.Map // run lock key -> *moveGroup (beginGroup)
	// lazy is a second PostgreSQL pool whose sessions commit without
	// waiting for the WAL flush (synchronous_commit off), for the writes
	// that only record what an Octane call answered (see lazyPool); nil on
	// SQLite, or when the URL could not be given the setting.
	lazy *pool
}

// ErrBadURL: a database URL that names neither PostgreSQL nor SQLite.
var ErrBadURL = errors.New("repo: not a database URL")

// keywordDSN matches a libpq keyword connection string ("host=... dbname=...").
var keywordDSN = regexp.MustCompile(`^\s*(host|hostaddr|port|dbname|user|password|sslmode|application_name|connect_timeout|options|service)\s*=`)

// DialectOf says which store url names, and the address to open it with:
// "postgres://...", "postgresql://..." and keyword strings ("host=...
// dbname=...") are PostgreSQL; "sqlite:PATH", "file:PATH" and a path ending
// in .db, .sqlite or .sqlite3 are SQLite. Anything else is ErrBadURL: a
// typo must not create a SQLite file named after it, password and all.
func DialectOf(url string) (dialect, addr string, err error) {
	u := strings.TrimSpace(url)
	lower := strings.ToLower(u)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"), keywordDSN.MatchString(lower):
		return DialectPostgres, u, nil
	case strings.HasPrefix(lower, "sqlite:"):
		if p := u[len("sqlite:"):]; strings.TrimLeft(p, "/") != "" {
			return DialectSQLite, p, nil
		}
	case strings.HasPrefix(lower, "file:"):
		return DialectSQLite, u, nil
	default:
		path := lower
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if !strings.Contains(path, "://") && (strings.HasSuffix(path, ".db") || strings.HasSuffix(path, ".sqlite") || strings.HasSuffix(path, ".sqlite3")) {
			return DialectSQLite, u, nil
		}
	}
	scheme := "no scheme"
	if i := strings.Index(u, "://"); i > 0 {
		scheme = "scheme " + u[:i]
	}
	return "", "", fmt.Errorf("%w (%s): want postgres://, postgresql://, a keyword string (host=... dbname=...), sqlite:PATH, file:PATH or a path ending in .db or .sqlite", ErrBadURL, scheme)
}

// Open connects to url (see DialectOf): PostgreSQL through lib/pq, at most
// 4 connections; SQLite through modernc.org/sqlite, one connection, WAL.
// Open does not migrate. Errors: ErrBadURL (wrapped) for a url that names
// no store; a failed connection or ping, wrapped.
func Open(ctx context.Context, url string) (*Store, error) {
	s := &Store{}
	dialect, addr, err := DialectOf(url)
	if err != nil {
		return nil, err
	}
	url = addr
	if dialect == DialectPostgres {
		s.dialect = DialectPostgres
		var db, lazy *sqlx.DB
		db, lazy, err = openPostgres(url)
		if err != nil {
			return nil, fmt.Errorf("repo: open postgres: %w", err)
		}
		s.db = &pool{DB: db}
		for _, p := range []*sqlx.DB{db, lazy} {
			if p != nil {
				p.SetMaxOpenConns(4)
				p.SetMaxIdleConns(4)
				p.SetConnMaxIdleTime(5 * time.Minute)
			}
		}
		if lazy != nil {
			s.lazy = &pool{DB: lazy}
		}
	} else {
		s.dialect = DialectSQLite
		var db *sqlx.DB
		db, err = sqlx.Open("sqlite", sqliteDSN(url))
		s.db = &pool{DB: db}
		if err != nil {
			return nil, fmt.Errorf("repo: open sqlite: %w", err)
		}
		// One writer: a single connection never meets SQLITE_BUSY inside
		// the process; busy_timeout covers other processes.
		s.db.SetMaxOpenConns(1)
		s.db.SetMaxIdleConns(1)
		s.db.SetConnMaxLifetime(0)
		s.db.SetConnMaxIdleTime(0)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		if s.lazy != nil {
			s.lazy.Close()
		}
		// net/url quotes a URL it cannot parse whole, password and all.
		if ue := (*neturl.Error)(nil); errors.As(err, &ue) {
			err = fmt.Errorf("parse database URL: %w", ue.Err)
		}
		return nil, fmt.Errorf("repo: connect (%s): %w", s.dialect, err)
	}
	if s.dialect == DialectPostgres {
		s.startCalls = &group[Call, int64]{flush: s.startCallsTogether, one: s.startCall}
		s.finishCalls = &group[finishedCall, bool]{flush: s.finishCallsTogether, one: s.finishCall}
		s.recordCalls = &group[Call, struct{}]{flush: s.recordCallsTogether, one: s.recordCall}
		s.selectedMoves = s.newMoveGroup(selectedShape)
		s.acceptedMoves = s.newMoveGroup(acceptedShape)
		s.qrMoves = s.newMoveGroup(qrReadyShape)
		s.completedMoves = s.newMoveGroup(completedShape)
		s.provisionedMoves = s.newMoveGroup(provisionedShape)
		if err := s.db.GetContext(ctx, &s.schema, `SELECT current_schema()`); err != nil {
			s.db.Close()
			if s.lazy != nil {
				s.lazy.Close()
			}
			return nil, fmt.Errorf("repo: current schema: %w", err)
		}
	}
	return s, nil
}

// binaryParams matches a connection string that sets lib/pq's
// binary_parameters itself (then its choice stands).
var binaryParams = regexp.MustCompile(`(?i)binary_parameters`)

// openPostgres opens a lib/pq pool on url with binary_parameters on unless
// url sets it: lib/pq then sends a statement with arguments as one
// Parse/Bind/Execute exchange, one round trip, where otherwise it first
// prepares it and waits for the description (two). The store passes []byte
// only for bytea columns, which binary format sends as they are. A url
// lib/pq cannot parse is opened as it is, so that Ping reports it exactly
// as before, and with no lazy pool.
//
// lazy is a second pool on the same url whose sessions set
// synchronous_commit off (and plans generic and without sequential scans): a commit there returns once it is in the WAL
// buffers, without waiting for the flush to disk (the WAL writer flushes it
// within a few hundred milliseconds, and any later ordinary commit flushes
// it first). It is visible to every session at once; only a crash of the
// PostgreSQL server itself can lose it, and then with everything committed
// after it, never out of order.
func openPostgres(url string) (db, lazy *sqlx.DB, err error) {
	cfg, err := pq.NewConfig(url)
	if err != nil {
		db, err := sqlx.Open("postgres", url)
		return db, nil, err
	}
	if !binaryParams.MatchString(url) {
		cfg.BinaryParameters = true
	}
	c, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	db = sqlx.NewDb(sql.OpenDB(c), "postgres")
	lazyCfg := cfg
	lazyCfg.Runtime = maps.Clone(cfg.Runtime)
	if lazyCfg.Runtime == nil {
		lazyCfg.Runtime = map[string]string{}
	}
	lazyCfg.Runtime["synchronous_commit"] = "off"
	// Every statement of the lazy pool writes rows it names by key, so one
	// generic plan serves all its executions: planned per execution (a
	// custom plan, which PostgreSQL keeps choosing for the grouped moves of
	// moves.go, whose row count varies) costs about as much as running it.
	// Without sequential scans, a generic plan made while a table was
	// small keeps to the keys' indexes however large the table grows.
	lazyCfg.Runtime["plan_cache_mode"] = "force_generic_plan"
	lazyCfg.Runtime["enable_seqscan"] = "off"
	if lc, err := pq.NewConnectorConfig(lazyCfg); err == nil {
		lazy = sqlx.NewDb(sql.OpenDB(lc), "postgres")
	}
	return db, lazy, nil
}

// sqliteDSN turns a path (or file: URI) into a DSN with the pragmas we rely
// on: WAL, a busy timeout, foreign keys, immediate write transactions, and
// TIMESTAMP text read back as time.Time.
func sqliteDSN(url string) string {
	dsn := url
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "_busy_timeout=10000&_journal_mode=WAL&_foreign_keys=1&_txlock=immediate&_texttotime=1"
}

// Close closes the connection pools.
func (s *Store) Close() error {
	if s.lazy != nil {
		if err := s.lazy.close(); err != nil {
			return fmt.Errorf("repo: close: %w", err)
		}
	}
	if err := s.db.close(); err != nil {
		return fmt.Errorf("repo: close: %w", err)
	}
	return nil
}

// lazyPool is the pool for a write that records what an Octane call
// answered and nothing else depends on being durable: losing it in a
// server crash leaves the store as if the process had died just after the
// call, before writing, which the job recovers from by design (an
// orderCreate with no answer is reconciled, an order polled but not
// recorded is polled again at its next slot, a QR code not stored is
// fetched again, a call left in flight still counts against the budget).
// Every write made before an Octane call, which the call relies on, goes to
// the ordinary pool, whose commit also makes every earlier lazy commit
// durable. It is the ordinary pool on SQLite.
func (s *Store) lazyPool() *pool {
	if s.lazy != nil {
		return s.lazy
	}
	return s.db
}

// Dialect returns "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.dialect }

// DB returns the underlying pool (for tests and tools; prefer the methods).
func (s *Store) DB() *sqlx.DB { return s.db.DB }

// pool is a connection pool with statements retried after a spurious
// cancel (retryCancelled), and the prepared statements of the hot paths
// (prepared), by query text.
type pool struct {
	*sqlx.DB
	stmts sync.Map
}

// close closes the prepared statements and the pool.
func (p *pool) close() error {
	p.stmts.Range(func(_, v any) bool {
		v.(*sqlx.Stmt).Close()
		return true
	})
	return p.DB.Close()
}

func (p *pool) GetContext(ctx context.Context, dest any, query string, args ...any) error {
	return retryCancelled(ctx, func() error { return p.DB.GetContext(ctx, dest, query, args...) })
}

func (p *pool) SelectContext(ctx context.Context, dest any, query string, args ...any) error {
	return retryCancelled(ctx, func() error {
		if v := reflect.ValueOf(dest); v.Kind() == reflect.Pointer && !v.IsNil() {
			v.Elem().Set(reflect.Zero(v.Elem().Type())) // a second try starts empty
		}
		return p.DB.SelectContext(ctx, dest, query, args...)
	})
}

func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := retryCancelled(ctx, func() error {
		var err error
		res, err = p.DB.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// prepared returns query prepared on the pool, preparing it the first time
// (database/sql prepares it again on each connection that runs it). It is
// for the statements run per activation, each a fixed text: PostgreSQL then
// parses, analyses and (after the first few runs) plans them once per
// connection, not once per run, which was much of its CPU.
func (p *pool) prepared(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if v, ok := p.stmts.Load(query); ok {
		return v.(*sqlx.Stmt), nil
	}
	var st *sqlx.Stmt
	err := retryCancelled(ctx, func() error {
		var err error
		st, err = p.PreparexContext(ctx, query)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if v, loaded := p.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return v.(*sqlx.Stmt), nil
	}
	return st, nil
}

// getPrepared runs the prepared query on the pool into dest (one row), and
// selectPrepared into a slice; both retry a spurious cancel (retryCancelled).
func (p *pool) getPrepared(ctx context.Context, dest any, query string, args ...any) error {
	st, err := p.prepared(ctx, query)
	if err != nil {
		return err
	}
	return retryCancelled(ctx, func() error { return st.GetContext(ctx, dest, args...) })
}

func (p *pool) selectPrepared(ctx context.Context, dest any, query string, args ...any) error {
	st, err := p.prepared(ctx, query)
	if err != nil {
		return err
	}
	return retryCancelled(ctx, func() error {
		if v := reflect.ValueOf(dest); v.Kind() == reflect.Pointer && !v.IsNil() {
			v.Elem().Set(reflect.Zero(v.Elem().Type())) // a second try starts empty
		}
		return st.SelectContext(ctx, dest, args...)
	})
}

// getPrepared and selectPrepared run a prepared query on the ordinary pool.
func (s *Store) getPrepared(ctx context.Context, dest any, query string, args ...any) error {
	return s.db.getPrepared(ctx, dest, query, args...)
}

func (s *Store) selectPrepared(ctx context.Context, dest any, query string, args ...any) error {
	return s.db.selectPrepared(ctx, dest, query, args...)
}

// InTx runs fn in one transaction: committed when fn returns nil, rolled
// back when it returns an error (returned as is) or panics (re-panicked).
// fn must use tx only: on SQLite the pool has one connection, so a call on
// the Store inside fn would wait forever.
//
// A transaction that PostgreSQL cancelled although ctx was not (SQLSTATE
// 57014, see retryCancelled) is rolled back and run again.
func (s *Store) InTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return retryCancelled(ctx, func() error { return s.inTx(ctx, fn) })
}

// retryCancelled runs f again (up to twice more) when it failed with
// PostgreSQL's "canceling statement due to user request" (57014) while ctx
// is still live. lib/pq cancels a statement whose context ends by sending a
// cancel request for the connection's backend; when that request lands after
// the connection went back to the pool and started another statement, the
// other statement is cancelled instead. Such an error says nothing about the
// statement itself, which rolled back: running it again is safe.
//
// When ctx did end, the cancelled statement's error also wraps ctx.Err(), so
// callers recognise it as the cancellation it is.
func retryCancelled(ctx context.Context, f func() error) error {
	err := f()
	for i := 0; i < 2 && err != nil && ctx.Err() == nil && IsStatementCancelled(err); i++ {
		err = f()
	}
	if err != nil && ctx.Err() != nil && IsStatementCancelled(err) && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return err
}

// IsStatementCancelled reports whether err is PostgreSQL's SQLSTATE 57014
// raised by a cancel request ("due to user request"), not by
// statement_timeout, which a second try would only repeat.
func IsStatementCancelled(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "57014" && strings.Contains(pe.Message, "user request")
}

func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) (err error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("repo: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("repo: commit: %w", err)
	}
	return nil
}

// --- The dialect differences, all in one place. ---

// q rewrites a query written with ? placeholders for the dialect.
func (s *Store) q(query string) string {
	if s.dialect == DialectPostgres {
		return sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query
}

// sqliteTime is the one text format for times on SQLite: UTC, fixed width,
// six fractional digits, so text order is time order.
const sqliteTime = "2006-01-02 15:04:05.000000"

// t converts a time argument: microsecond precision on both dialects
// (PostgreSQL's), and fixed-format text on SQLite.
func (s *Store) t(x time.Time) any {
	x = x.UTC().Truncate(time.Microsecond)
	if s.dialect == DialectSQLite {
		return x.Format(sqliteTime)
	}
	return x
}

// pickUpdate builds the statement whose shape differs by dialect: choose up to
// limit rows of table matching where, in order, and apply set to them,
// returning the columns ret. On PostgreSQL the chosen rows are locked and busy
// ones skipped (FOR UPDATE SKIP LOCKED), so concurrent callers never pick the
// same row; SQLite has one writer and no writes in a CTE.
func (s *Store) pickUpdate(table, set string, setArgs []any, where string, whereArgs []any, order string, limit int, cols func(prefix string) string) (string, []any) {
	var b strings.Builder
	var args []any
	if s.dialect == DialectPostgres {
		fmt.Fprintf(&b, `WITH c AS (SELECT id FROM %s WHERE %s ORDER BY %s LIMIT ? FOR UPDATE SKIP LOCKED)
UPDATE %s AS t SET %s FROM c WHERE t.id = c.id RETURNING %s`, table, where, order, table, set, cols("t."))
		args = append(append(append(args, whereArgs...), limit), setArgs...)
	} else {
		fmt.Fprintf(&b, `UPDATE %s SET %s WHERE id IN (SELECT id FROM %s WHERE %s ORDER BY %s LIMIT ?) RETURNING %s`,
			table, set, table, where, order, cols(""))
		args = append(append(append(args, setArgs...), whereArgs...), limit)
	}
	return s.q(b.String()), args
}

// newToken returns a random claim token or lease holder.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// lockKey is the advisory lock key for name: FNV-64a of "esimbatch:"+name.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("esimbatch:" + name))
	return int64(h.Sum64())
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// nullTime scans a time that may come back as NULL, time.Time or text
// (aggregates on SQLite carry no declared type).
type nullTime struct{ T *time.Time }

func (n *nullTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		n.T = nil
	case time.Time:
		u := x.UTC()
		n.T = &u
	case string:
		return n.parse(x)
	case []byte:
		return n.parse(string(x))
	default:
		return fmt.Errorf("repo: cannot scan %T as a time", v)
	}
	return nil
}

func (n *nullTime) parse(x string) error {
	for _, layout := range []string{sqliteTime, time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00"} {
		if t, err := time.Parse(layout, x); err == nil {
			u := t.UTC()
			n.T = &u
			return nil
		}
	}
	return fmt.Errorf("repo: cannot parse time %q", x)
}
