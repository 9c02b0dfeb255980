package metrics_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/esimbatch/esimbatch/metrics"
)

// ruleFile is a Prometheus rule file, as much of it as the README's example
// uses; decoding is strict, so a misspelt key fails.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

var metricName = regexp.MustCompile(`\besimbatch_[a-zA-Z0-9_]+`)

// readmeSection returns the README's "### Metrics and alerts" section.
func readmeSection(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n### Metrics and alerts\n")
	if !ok {
		t.Fatal(`README.md has no "### Metrics and alerts" section`)
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	return sec
}

// The README's alert rules parse as a rule file, have the alerts the
// operators were promised, and use only metrics this package defines.
func TestReadmeAlertRules(t *testing.T) {
	sec := readmeSection(t)
	_, block, ok := strings.Cut(sec, "```yaml\n")
	if !ok {
		t.Fatal("the Metrics and alerts section has no ```yaml block")
	}
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		t.Fatal("the yaml block is not closed")
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict([]byte(block), &rf); err != nil {
		t.Fatalf("the README's alert rules: %v", err)
	}
	names := metrics.Names()
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("group %s: a rule without alert or expr: %+v", g.Name, r)
			}
			used := metricName.FindAllString(r.Expr, -1)
			if len(used) == 0 {
				t.Errorf("alert %s uses no esimbatch metric: %s", r.Alert, r.Expr)
			}
			for _, m := range used {
				if !slices.Contains(names, m) {
					t.Errorf("alert %s uses %s, which the metrics package does not define (it has %v)", r.Alert, m, names)
				}
			}
		}
	}
	for _, want := range []string{"EsimbatchNoSuccessIn2Hours", "EsimbatchFailuresRising", "EsimbatchOrdersStuckOpen"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("the README's rules lack %s (have %v)", want, alerts)
		}
	}
}

// The README's metric table lists exactly the families the package defines.
func TestReadmeMetricTable(t *testing.T) {
	sec := readmeSection(t)
	var listed []string
	for _, line := range strings.Split(sec, "\n") {
		if m := regexp.MustCompile("^\\| `(esimbatch_[a-z0-9_]+)` \\|").FindStringSubmatch(line); m != nil {
			listed = append(listed, m[1])
		}
	}
	slices.Sort(listed)
	if !slices.Equal(listed, metrics.Names()) {
		t.Errorf("README's metric table lists %v\nthe package defines %v", listed, metrics.Names())
	}
}
