package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/internal/httpstop"
	"github.com/esimbatch/esimbatch/octane/octanetest"
)

// simOption is one simulator setting, from a flag or else a SIM_* variable.
type simOption struct {
	flag, env, usage string
	apply            func(st *simSettings, v string) error
}

// secretSimFlag is the option whose value holds passwords: an error names
// it and never echoes the value.
const secretSimFlag = "credentials"

func simOptions() []simOption {
	positive := func(v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, errors.New("want a non-negative whole number")
		}
		return n, nil
	}
	duration := func(v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, errors.New("want a positive duration such as 5m")
		}
		return d, nil
	}
	return []simOption{
		{"plans", "SIM_PLANS", "valid planNo values, comma-separated (default 1001,1002,1003)",
			func(st *simSettings, v string) error {
				st.cfg.Plans = nil
				for p := range strings.SplitSeq(v, ",") {
					n, err := strconv.Atoi(strings.TrimSpace(p))
					if err != nil {
						return fmt.Errorf("plan %q: want whole numbers separated by commas", p)
					}
					st.cfg.Plans = append(st.cfg.Plans, n)
				}
				return nil
			}},
		{"msns", "SIM_MSNS", "size of the number pool (default 10000)",
			func(st *simSettings, v string) error {
				n, err := positive(v)
				if err == nil && (n < 1 || n > 1_000_000) {
					err = errors.New("want 1 to 1000000")
				}
				st.cfg.MSNs = n
				return err
			}},
		{"esim-profiles", "SIM_ESIM_PROFILES", "eSIM profiles available (default 1000; 0 = none)",
			func(st *simSettings, v string) error {
				n, err := positive(v)
				st.cfg.EsimProfiles, st.noProfiles = n, n == 0
				return err
			}},
		{"order-latency", "SIM_ORDER_LATENCY", "time from orderCreate to COMPLETE on the sim clock (default 5m)",
			func(st *simSettings, v string) (err error) { st.cfg.OrderLatency, err = duration(v); return err }},
		{"faults", "SIM_FAULTS", "injected faults at start, e.g. transport=0.05,drop=0.02,latency=50ms (replace them live with POST /_sim/faults)",
			func(st *simSettings, v string) (err error) {
				st.cfg.Faults, err = octanetest.ParseFaults(v)
				return err
			}},
		{"minute-window", "SIM_MINUTE_WINDOW", "length of the per-minute rate-limit window, wall time (default 1m)",
			func(st *simSettings, v string) (err error) { st.cfg.MinuteWindow, err = duration(v); return err }},
		{"hour-window", "SIM_HOUR_WINDOW", "length of the per-hour rate-limit window, wall time (default 1h)",
			func(st *simSettings, v string) (err error) { st.cfg.HourWindow, err = duration(v); return err }},
		{"group-no", "SIM_GROUP_NO", "accepted REST group number (default any)",
			func(st *simSettings, v string) (err error) { st.cfg.GroupNo, err = positive(v); return err }},
		{"customers", "SIM_CUSTOMERS", "custNo values that exist from the start, comma-separated",
			func(st *simSettings, v string) error {
				for p := range strings.SplitSeq(v, ",") {
					n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
					if err != nil || n < 1 {
						return fmt.Errorf("custNo %q: want positive whole numbers separated by commas", p)
					}
					st.cfg.Customers = append(st.cfg.Customers, n)
				}
				return nil
			}},
		{"physical-sims", "SIM_PHYSICAL_SIMS", "valid physical SIM serials, comma-separated",
			func(st *simSettings, v string) error {
				for p := range strings.SplitSeq(v, ",") {
					if p = strings.TrimSpace(p); p != "" {
						st.cfg.PhysicalSIMs = append(st.cfg.PhysicalSIMs, p)
					}
				}
				return nil
			}},
		{secretSimFlag, "SIM_CREDENTIALS",
			"API users of the one account, USER:PASSWORD,USER:PASSWORD (default OCTANE_USERNAME:OCTANE_PASSWORD, else demo:demo); each has its own rate windows",
			func(st *simSettings, v string) error {
				creds, err := parseSimCredentials(v)
				st.cfg.Credentials = creds
				st.cfg.Username, st.cfg.Password = "", ""
				return err
			}},
		{"seed", "SIM_SEED", "seed of the fault RNG (default fixed)",
			func(st *simSettings, v string) (err error) {
				st.cfg.Seed, err = strconv.ParseInt(v, 10, 64)
				if err != nil {
					return errors.New("want a whole number")
				}
				return nil
			}},
	}
}

// parseSimCredentials reads USER:PASSWORD,USER:PASSWORD. Errors name the
// item by position and user, never a password.
func parseSimCredentials(v string) (map[string]string, error) {
	out := map[string]string{}
	for i, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		user, pass, ok := strings.Cut(item, ":")
		user = strings.TrimSpace(user)
		switch {
		case item == "":
			return nil, fmt.Errorf("item %d is empty: want USER:PASSWORD,USER:PASSWORD", i+1)
		case !ok || user == "":
			return nil, fmt.Errorf("item %d: want USER:PASSWORD", i+1)
		case pass == "":
			return nil, fmt.Errorf("item %d (user %q): the password is empty", i+1, user)
		}
		if _, dup := out[user]; dup {
			return nil, fmt.Errorf("item %d: user %q is listed twice", i+1, user)
		}
		out[user] = pass
	}
	return out, nil
}

// simSettings is what `batch sim` is configured with.
type simSettings struct {
	cfg        octanetest.Config
	addr       string
	noProfiles bool // SIM_ESIM_PROFILES=0: an empty eSIM pool
}

// simConfig builds the simulator configuration from flags, then SIM_*
// variables, then defaults. Errors are configError naming the flag or
// variable.
func simConfig(args []string, e env) (simSettings, error) {
	fs := newFlags(e, "sim", "sim [--addr HOST:PORT] [flags]",
		"Serves the Octane simulator (SOAP under /tiab/, REST under /tiab/api/v1/, control under /_sim/).\n"+
			"Each flag also reads SIM_<NAME>; the flag wins. The credential is OCTANE_USERNAME / OCTANE_PASSWORD.")
	addr := fs.String("addr", "127.0.0.1:8085", "listen address HOST:PORT (env SIM_ADDR)")
	opts := simOptions()
	vals := make([]*string, len(opts))
	for i, o := range opts {
		vals[i] = fs.String(o.flag, "", o.usage+" (env "+o.env+")")
	}
	if err := fs.parseNone(args); err != nil {
		return simSettings{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["addr"] {
		if v, ok := e.lookup("SIM_ADDR"); ok && v != "" {
			*addr = v
		}
	}

	st := simSettings{addr: *addr}
	st.cfg.Username, st.cfg.Password = "demo", "demo"
	if v, ok := e.lookup("OCTANE_USERNAME"); ok && v != "" {
		st.cfg.Username = v
	}
	if v, ok := e.lookup("OCTANE_PASSWORD"); ok && v != "" {
		st.cfg.Password = v
	}
	for i, o := range opts {
		v, source := *vals[i], "--"+o.flag
		if !set[o.flag] {
			ev, ok := e.lookup(o.env)
			if !ok || strings.TrimSpace(ev) == "" {
				continue
			}
			v, source = ev, o.env
		}
		if err := o.apply(&st, strings.TrimSpace(v)); err != nil {
			if o.flag == secretSimFlag {
				return simSettings{}, badConfig("batch sim: %s: %w", source, err)
			}
			return simSettings{}, badConfig("batch sim: %s=%q: %w", source, v, err)
		}
	}
	return st, nil
}

// cmdSim serves the Octane simulator until ctx is cancelled.
func cmdSim(ctx context.Context, args []string, e env) error {
	st, err := simConfig(args, e)
	if err != nil {
		return err
	}
	addr := st.addr
	st.cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	s := octanetest.New(st.cfg)
	if st.noProfiles {
		s.SetEsimProfiles(0)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("batch sim: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	httpstop.CloseUnused(srv)
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(e.stdout, "octane simulator listening: OCTANE_SOAP_URL=%s/tiab OCTANE_REST_URL=%s/tiab/api\n", base, base)

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("batch sim: serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("batch sim: shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("batch sim: serve: %w", err)
	}
	return nil
}
