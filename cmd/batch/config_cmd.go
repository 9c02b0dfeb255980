package main

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
)

// configVar is one environment variable as `batch config` shows it.
type configVar struct {
	Name   string `json:"name"`
	Value  string `json:"value"`  // secrets "***", URLs without credentials
	Source string `json:"source"` // set, default or unset
}

// configDoc is `batch config --json`.
type configDoc struct {
	Variables []configVar `json:"variables"`
	// Problems are the values that make every command exit 2.
	Problems []string `json:"problems"`
	// Missing lists, per command, what it needs and does not have (empty:
	// ready).
	Missing map[string][]string `json:"missing"`
}

// cmdConfig is `batch config [--json]`: the effective configuration (every
// variable with its value, secrets masked, and whether it was set or is the
// default), the values that are wrong, and what each command misses. Exit 0
// when the configuration is valid (a command may still miss something), 2
// when a value is wrong.
func cmdConfig(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "config", "config [--json]",
		"The effective configuration from the environment: every variable, its value (passwords ***,\n"+
			"URLs without credentials) and whether it was set or is the default; then the values that are\n"+
			"wrong and what each command still needs. Exit 2 when a value is wrong.")
	asJSON := fs.Bool("json", false, "write one JSON object instead of text")
	if err := fs.parseNone(args); err != nil {
		return err
	}
	cfg, err := decodeConfig(ctx, e.lookup)
	if err != nil {
		return err // names the variable that does not decode
	}
	doc := configDoc{Variables: configVars(cfg, e.lookup), Problems: []string{}, Missing: map[string][]string{}}
	hide := secretsOf(cfg)
	if err := cfg.validate(); err != nil {
		doc.Problems = errLines(err, hide)
	}
	octaneErr := cfg.requireOctane()
	schedErr := jobs.ValidateSchedules(cfg.schedules())
	for _, c := range commands() {
		var missing []string
		switch c.name {
		case "run":
			missing = errLines(octaneErr, hide)
		case "schedule":
			missing = append(errLines(octaneErr, hide), errLines(schedErr, hide)...)
		case "import", "migrate", "status", "show", "retry", "cancel":
			if strings.TrimSpace(cfg.DatabaseURL) == "" {
				missing = []string{"DATABASE_URL: required"}
			}
		}
		if missing == nil {
			missing = []string{}
		}
		doc.Missing[c.name] = missing
	}
	if *asJSON {
		if err := writeJSON(e.stdout, doc); err != nil {
			return err
		}
	} else {
		printConfig(e, doc)
	}
	if len(doc.Problems) > 0 {
		return badConfig("config: %d wrong values (see above)", len(doc.Problems))
	}
	return nil
}

func printConfig(e env, d configDoc) {
	w := e.stdout
	width := 0
	for _, v := range d.Variables {
		width = max(width, len(v.Name))
	}
	fmt.Fprintln(w, "effective configuration (passwords shown as ***):")
	for _, v := range d.Variables {
		val := v.Value
		if val == "" {
			val = "-"
		}
		fmt.Fprintf(w, "  %-*s  %-9s %s\n", width, v.Name, v.Source, text(val))
	}
	fmt.Fprintln(w, "\nwrong values:")
	if len(d.Problems) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, p := range d.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	fmt.Fprintln(w, "\nwhat each command needs and lacks:")
	for _, c := range commands() {
		m := d.Missing[c.name]
		if len(m) == 0 {
			fmt.Fprintf(w, "  %-9s ready\n", c.name)
			continue
		}
		fmt.Fprintf(w, "  %-9s %s\n", c.name, strings.Join(m, "; "))
	}
}

// configVars lists every variable the configuration reads, in the
// struct's order.
func configVars(cfg *config, lookup func(string) (string, bool)) []configVar {
	var out []configVar
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("env")
			name, opts, _ := strings.Cut(tag, ",")
			name = strings.TrimSpace(name)
			if f.Type.Kind() == reflect.Struct && name == "" {
				walk(v.Field(i), prefix+strings.TrimPrefix(strings.TrimSpace(opts), "prefix="))
				continue
			}
			if name == "" {
				continue
			}
			name = prefix + name
			src := "unset"
			if _, ok := lookup(name); ok {
				src = "set"
			} else if strings.Contains(opts, "default=") {
				src = "default"
			}
			out = append(out, configVar{Name: name, Value: configValue(name, v.Field(i)), Source: src})
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	return out
}

// configValue is a variable's value as shown: a secret as *** when set, a
// URL without its credentials, a list comma-separated.
func configValue(name string, v reflect.Value) string {
	switch x := v.Interface().(type) {
	case secret:
		return x.String()
	case time.Duration:
		return x.String()
	case []string:
		return strings.Join(x, ",")
	case string:
		if strings.HasSuffix(name, "_URL") {
			return redactURL(x)
		}
		return x
	default:
		return fmt.Sprint(x)
	}
}

// secretsOf returns the raw values that must not appear in output, each
// with what to show instead.
func secretsOf(cfg *config) map[string]string {
	out := map[string]string{}
	for _, s := range []secret{cfg.Octane.Password, cfg.SMTP.Password, cfg.Report.Password} {
		if v := s.Reveal(); v != "" {
			out[v] = "***"
		}
	}
	for _, u := range []string{cfg.DatabaseURL, cfg.Octane.SOAPURL, cfg.Octane.RESTURL} {
		if r := redactURL(u); r != u {
			out[u] = r
		}
	}
	return out
}

// errLines splits a joined error into its messages, secrets replaced.
func errLines(err error, hide map[string]string) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		for raw, shown := range hide {
			line = strings.ReplaceAll(line, raw, shown)
		}
		out = append(out, line)
	}
	return out
}
