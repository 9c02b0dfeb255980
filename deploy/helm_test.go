package deploy_test

// The Helm chart under helm/esimbatch is rendered here with Helm's own
// engine (helm.sh/helm/v3, test-only: the binary links none of it), the way
// `helm install` renders it: the chart's values coalesced with a values
// file, checked against values.schema.json, the templates executed (strict:
// a template reading a value that does not exist fails), hooks sorted from
// the manifests. Every rendered document is then decoded as strictly as the
// API server would (decodeDocument), so a misspelt field fails, and checked
// with the same checks as the plain manifests, plus what the chart adds:
// one CronJob per credential, each reading its own Secret.

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// chartRoot holds the chart (loadManifests skips it); chartDir is the chart.
const (
	chartRoot = "helm"
	chartDir  = "helm/esimbatch"
)

// credentialLabel marks each CronJob, its Jobs and pods with its credential.
const credentialLabel = "esimbatch/credential"

// chartValues is the part of the coalesced values the checks compare the
// rendering with.
type chartValues struct {
	Image struct {
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
	} `json:"image"`
	SecretName  string `json:"secretName"`
	Schedule    string `json:"schedule"`
	Suspend     bool   `json:"suspend"`
	Credentials []struct {
		Name       string            `json:"name"`
		SecretName string            `json:"secretName"`
		Schedule   string            `json:"schedule"`
		Suspend    *bool             `json:"suspend"`
		Config     map[string]string `json:"config"`
	} `json:"credentials"`
	Config map[string]string `json:"config"`
}

// renderedChart is one rendering: its objects, Helm's view of its hooks,
// and the values and release it was rendered with.
type renderedChart struct {
	*manifests
	chart    *chart.Chart
	release  string
	values   chartValues
	hooks    []*release.Hook
	resource []releaseutil.Manifest // everything that is not a hook
}

// fullname is the chart's name for the release's objects (_helpers.tpl).
func (r *renderedChart) fullname() string {
	if strings.Contains(r.release, r.chart.Name()) {
		return r.release
	}
	return r.release + "-" + r.chart.Name()
}

// renderChart renders the chart in dir for release name with a values file
// (nil: the chart's own values) as `helm install` would, and decodes every
// document strictly. Any error names the template file and document.
func renderChart(dir, name string, valuesFile []byte) (*renderedChart, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return nil, err
	}
	user := map[string]any{}
	if valuesFile != nil {
		v, err := chartutil.ReadValues(valuesFile)
		if err != nil {
			return nil, fmt.Errorf("values: %w", err)
		}
		user = v.AsMap()
	}
	vals, err := chartutil.ToRenderValues(chrt, user, chartutil.ReleaseOptions{
		Name: name, Namespace: "esimbatch", Revision: 1, IsInstall: true,
	}, nil)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(chrt, vals)
	if err != nil {
		return nil, err
	}
	r := &renderedChart{manifests: &manifests{}, chart: chrt, release: name}
	coalesced, err := json.Marshal(vals["Values"])
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(coalesced, &r.values); err != nil {
		return nil, fmt.Errorf("coalesced values: %w", err)
	}
	// As the install action: NOTES.txt is printed, not applied.
	for f := range files {
		if path.Base(f) == "NOTES.txt" {
			delete(files, f)
		}
	}
	var errs []error
	names := map[string]string{}
	for _, f := range slices.Sorted(maps.Keys(files)) {
		if strings.TrimSpace(files[f]) == "" {
			errs = append(errs, fmt.Errorf("%s: renders nothing", f))
			continue
		}
		errs = append(errs, r.addFile(f, []byte(files[f]), names)...)
	}
	if len(errs) > 0 {
		return r, errors.Join(errs...)
	}
	r.hooks, r.resource, err = releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return r, fmt.Errorf("sorting manifests: %w", err)
	}
	return r, nil
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartRoot, "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// effectiveConfig is what a container's configuration variables come to:
// the ConfigMap it reads, then its env entries with literal values. The
// second result names the variables env sets from a Secret key, with the
// Secret's name.
func effectiveConfig(c *corev1.Container, cm map[string]string) (map[string]string, map[string]string) {
	eff := maps.Clone(cm)
	fromSecret := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			eff[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			fromSecret[e.Name] = e.ValueFrom.SecretKeyRef.Name
		}
	}
	return eff, fromSecret
}

// chartProblems checks one rendering: the plain manifests' checks on every
// object, and what the chart promises for its values.
func chartProblems(r *renderedChart, vars map[string]envVar, sharedSecret map[string]bool) map[string]problems {
	found := map[string]problems{}
	add := func(where, format string, args ...any) {
		p := found[where]
		p.add(format, args...)
		found[where] = p
	}
	merge := func(where string, p problems) {
		if len(p) > 0 {
			found[where] = append(found[where], p...)
		}
	}
	const whole = "chart"
	v := &r.values
	full := r.fullname()

	if len(r.secrets) != 0 {
		add(whole, "renders %d Secrets: the chart must create none (secrets stay out of values)", len(r.secrets))
	}
	if len(r.configMaps) != 1 {
		add(whole, "renders %d ConfigMaps, want 1 shared one", len(r.configMaps))
		return found
	}
	cmObj := r.configMaps[0]
	if cmObj.obj.Name != full {
		add(cmObj.where, "ConfigMap %q, want %q", cmObj.obj.Name, full)
	}
	if !maps.Equal(cmObj.obj.Data, v.Config) {
		add(cmObj.where, "ConfigMap data %v is not the values' config %v", cmObj.obj.Data, v.Config)
	}
	cm := cmObj.obj.Data

	// The image: pinned, the same everywhere, the values' tag or appVersion.
	tag := v.Image.Tag
	if tag == "" {
		tag = r.chart.AppVersion()
	}
	wantImage := v.Image.Repository + ":" + tag
	for _, pt := range r.pods() {
		merge(pt.where, podProblems(pt.spec))
		for _, c := range slices.Concat(pt.spec.InitContainers, pt.spec.Containers) {
			if c.Image != wantImage {
				add(pt.where, "container %q runs %q, want %q", c.Name, c.Image, wantImage)
			}
		}
	}

	// One CronJob per credential, each under its own Secret.
	if len(r.cronJobs) != len(v.Credentials) {
		add(whole, "renders %d CronJobs for %d credentials", len(r.cronJobs), len(v.Credentials))
	}
	byCredential := map[string]located[*batchv1.CronJob]{}
	for _, cj := range r.cronJobs {
		cred := cj.obj.Labels[credentialLabel]
		if prev, dup := byCredential[cred]; dup {
			add(cj.where, "a second CronJob for credential %q (the first: %s)", cred, prev.where)
		}
		byCredential[cred] = cj
	}
	secretOf := map[string]string{} // Octane Secret -> credential
	for _, cred := range v.Credentials {
		cj, ok := byCredential[cred.Name]
		if !ok {
			add(whole, "no CronJob labelled %s=%s", credentialLabel, cred.Name)
			continue
		}
		where := cj.where
		spec := &cj.obj.Spec
		pod := &spec.JobTemplate.Spec.Template.Spec
		if want := full + "-" + cred.Name; cj.obj.Name != want {
			add(where, "CronJob %q, want %q", cj.obj.Name, want)
		}
		for what, labels := range map[string]map[string]string{
			"the Jobs": spec.JobTemplate.Labels, "the pods": spec.JobTemplate.Spec.Template.Labels,
		} {
			if labels[credentialLabel] != cred.Name {
				add(where, "%s are not labelled %s=%s", what, credentialLabel, cred.Name)
			}
		}
		wantSchedule := cred.Schedule
		if wantSchedule == "" {
			wantSchedule = v.Schedule
		}
		if spec.Schedule != wantSchedule {
			add(where, "schedule %q, want %q", spec.Schedule, wantSchedule)
		}
		wantSuspend := v.Suspend
		if cred.Suspend != nil {
			wantSuspend = *cred.Suspend
		}
		if spec.Suspend == nil || *spec.Suspend != wantSuspend {
			add(where, "suspend %v, want %v stated", spec.Suspend, wantSuspend)
		}
		if len(pod.Containers) != 1 {
			add(where, "want one container, got %d", len(pod.Containers))
			continue
		}
		c := &pod.Containers[0]
		eff, fromSecret := effectiveConfig(c, cm)
		// The plain CronJob's checks, against what this credential's
		// configuration comes to (a suspended credential is still stated).
		check := cj.obj.DeepCopy()
		check.Spec.Suspend = new(bool)
		merge(where, cronJobProblems(check, eff))
		for _, name := range []string{"OCTANE_USERNAME", "OCTANE_PASSWORD"} {
			if got := fromSecret[name]; got != cred.SecretName {
				add(where, "%s comes from Secret %q, want the credential's own %q", name, got, cred.SecretName)
			}
		}
		if prev, dup := secretOf[cred.SecretName]; dup {
			add(where, "Secret %q is also the credential of %q: two CronJobs under one Octane user", cred.SecretName, prev)
		}
		secretOf[cred.SecretName] = cred.Name
		merge(where, chartEnvProblems(c, cmObj.obj.Name, v.SecretName, cred.SecretName, vars))
		overrides := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				overrides[e.Name] = e.Value
			}
		}
		if !maps.Equal(overrides, cred.Config) {
			add(where, "env overrides %v, want the credential's config %v", overrides, cred.Config)
		}
		// Every variable the configuration reads comes from the ConfigMap,
		// an override, the shared Secret or the credential's Secret.
		secrets := maps.Clone(sharedSecret)
		for name := range fromSecret {
			secrets[name] = true
		}
		merge(where, coverageProblems(vars, secrets, eff))
	}

	// The migrate Job, once, as the pre-install and pre-upgrade hook.
	migrate := 0
	for _, j := range r.jobs {
		merge(j.where, jobProblems(j.obj))
		cs := j.obj.Spec.Template.Spec.Containers
		if len(cs) != 1 || len(cs[0].Command) > 0 || !slices.Equal(cs[0].Args, []string{"migrate"}) {
			add(j.where, "a Job that is not `batch migrate`: the chart renders no other")
			continue
		}
		migrate++
		if want := full + "-migrate"; j.obj.Name != want {
			add(j.where, "Job %q, want %q", j.obj.Name, want)
		}
		merge(j.where, chartEnvProblems(&cs[0], "", v.SecretName, "", vars))
		if !hasEnvFrom(&cs[0], false, true) {
			add(j.where, "the migrate container has no envFrom secretRef (DATABASE_URL)")
		}
	}
	if migrate != 1 {
		add(whole, "renders %d migrate Jobs, want 1", migrate)
	}
	var hooks []string
	for _, h := range r.hooks {
		hooks = append(hooks, h.Kind+"/"+h.Name)
		if h.Kind != "Job" || h.Name != full+"-migrate" {
			add(whole, "%s/%s is a hook; only the migrate Job should be", h.Kind, h.Name)
			continue
		}
		for _, e := range []release.HookEvent{release.HookPreInstall, release.HookPreUpgrade} {
			if !slices.Contains(h.Events, e) {
				add(whole, "the migrate Job does not run on %s (events %v)", e, h.Events)
			}
		}
		if !slices.Contains(h.DeletePolicies, release.HookBeforeHookCreation) {
			add(whole, "the migrate hook lacks delete policy before-hook-creation: the next upgrade could not create its Job (a Job's pod template cannot change)")
		}
	}
	if len(r.hooks) != 1 {
		add(whole, "hooks %v, want the migrate Job alone", hooks)
	}
	for _, m := range r.resource {
		if m.Head != nil && m.Head.Kind == "Job" {
			add(whole, "Job %s is applied with the release, not run as a hook before it", m.Name)
		}
	}
	return found
}

// chartEnvProblems: envFrom reads the shared ConfigMap (when cmName is set)
// and the shared Secret, nothing optional or prefixed; env sets the
// credential's Octane user from its own Secret (when credSecret is set),
// non-secret variables as literal overrides, and GOMEMLIMIT, nothing else.
func chartEnvProblems(c *corev1.Container, cmName, sharedSecret, credSecret string, vars map[string]envVar) problems {
	var p problems
	var gotCM, gotSecret int
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			gotCM++
			if ef.ConfigMapRef.Name != cmName {
				p.add("envFrom configMapRef %q, want the chart's ConfigMap %q", ef.ConfigMapRef.Name, cmName)
			}
			if isTrue(ef.ConfigMapRef.Optional) {
				p.add("envFrom configMapRef %q must not be optional", ef.ConfigMapRef.Name)
			}
		case ef.SecretRef != nil:
			gotSecret++
			if ef.SecretRef.Name != sharedSecret {
				p.add("envFrom secretRef %q, want the shared Secret %q", ef.SecretRef.Name, sharedSecret)
			}
			if isTrue(ef.SecretRef.Optional) {
				p.add("envFrom secretRef %q must not be optional", ef.SecretRef.Name)
			}
		}
		if ef.Prefix != "" {
			p.add("envFrom prefix %q would rename every variable", ef.Prefix)
		}
	}
	wantCM := 0
	if cmName != "" {
		wantCM = 1
	}
	if gotCM != wantCM {
		p.add("envFrom has %d configMapRefs, want %d", gotCM, wantCM)
	}
	if gotSecret != 1 {
		p.add("envFrom has %d secretRefs, want 1 (the shared Secret)", gotSecret)
	}
	seen := map[string]bool{}
	for _, e := range c.Env {
		if seen[e.Name] {
			p.add("env sets %s twice", e.Name)
		}
		seen[e.Name] = true
		v, known := vars[e.Name]
		switch {
		case e.Name == "GOMEMLIMIT":
			if e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil || e.ValueFrom.ResourceFieldRef.Resource != "limits.memory" {
				p.add("GOMEMLIMIT must come from limits.memory")
			}
		case e.Name == "OCTANE_USERNAME" || e.Name == "OCTANE_PASSWORD":
			ref := e.ValueFrom
			switch {
			case credSecret == "":
				p.add("env sets %s: this container reads no Octane credential", e.Name)
			case ref == nil || ref.SecretKeyRef == nil:
				p.add("env %s must come from the credential's Secret, not a literal", e.Name)
			case ref.SecretKeyRef.Name != credSecret || ref.SecretKeyRef.Key != e.Name:
				p.add("env %s reads key %q of Secret %q, want key %q of %q", e.Name, ref.SecretKeyRef.Key, ref.SecretKeyRef.Name, e.Name, credSecret)
			case isTrue(ref.SecretKeyRef.Optional):
				p.add("env %s must not be optional: a missing credential must stop the pod", e.Name)
			}
		case !known:
			p.add("env sets %s, no variable cmd/batch reads (misspelt?)", e.Name)
		case v.secret:
			p.add("env sets secret %s: only the credential's OCTANE_USERNAME and OCTANE_PASSWORD come through env", e.Name)
		case e.ValueFrom != nil:
			p.add("env %s must be a literal override of the ConfigMap", e.Name)
		}
	}
	return p
}

// sharedSecretKeys are the keys the shared Secret holds: the example
// Secret's, less the Octane user, which each credential's CronJob reads
// from its own Secret.
func sharedSecretKeys(t *testing.T) map[string]bool {
	t.Helper()
	keys := secretKeys(loadManifests(t).secret())
	delete(keys, "OCTANE_USERNAME")
	delete(keys, "OCTANE_PASSWORD")
	return keys
}

func reportAll(t *testing.T, found map[string]problems) {
	t.Helper()
	for _, where := range slices.Sorted(maps.Keys(found)) {
		report(t, where, found[where])
	}
}

// TestChart renders the chart for its own values, one credential and three,
// and checks every object.
func TestChart(t *testing.T) {
	vars := configVariableSet(t)
	shared := sharedSecretKeys(t)
	for _, tc := range []struct {
		name, release, values string
		cronJobs              []string
		secrets               []string
	}{
		{"defaults", "esimbatch", "", []string{"esimbatch-main"}, []string{"esimbatch"}},
		{"one credential", "esimbatch", "one-credential.yaml", []string{"esimbatch-prod"}, []string{"esimbatch-octane-prod"}},
		{"three credentials", "bulk", "three-credentials.yaml",
			[]string{"bulk-esimbatch-api1", "bulk-esimbatch-api2", "bulk-esimbatch-night"},
			[]string{"esimbatch-octane-api1", "esimbatch-octane-api2", "esimbatch-octane-night"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var values []byte
			if tc.values != "" {
				values = readTestdata(t, tc.values)
			}
			r, err := renderChart(chartDir, tc.release, values)
			if err != nil {
				t.Fatal(err)
			}
			reportAll(t, chartProblems(r, vars, shared))
			// Independently of the values the checks read: the names and
			// Secrets this values file must give.
			var names, secrets []string
			for _, cj := range r.cronJobs {
				names = append(names, cj.obj.Name)
				for _, e := range cj.obj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env {
					if e.Name == "OCTANE_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						secrets = append(secrets, e.ValueFrom.SecretKeyRef.Name)
					}
				}
			}
			slices.Sort(names)
			slices.Sort(secrets)
			if !slices.Equal(names, tc.cronJobs) || !slices.Equal(secrets, tc.secrets) {
				t.Errorf("CronJobs %v reading Secrets %v; want %v reading %v", names, secrets, tc.cronJobs, tc.secrets)
			}
			t.Logf("%d CronJobs %v, %d Jobs, %d ConfigMap; hooks: %d", len(r.cronJobs), names, len(r.jobs), len(r.configMaps), len(r.hooks))
		})
	}
}

// TestChartThreeCredentialsOverrides pins what the three-credential values
// file asks of one CronJob: its staggered schedule, its own limits, the
// import volume on the one credential that imports, and a suspended one.
func TestChartThreeCredentialsOverrides(t *testing.T) {
	r, err := renderChart(chartDir, "bulk", readTestdata(t, "three-credentials.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*batchv1.CronJob{}
	for _, cj := range r.cronJobs {
		byName[cj.obj.Name] = cj.obj
	}
	night := byName["bulk-esimbatch-night"]
	api1 := byName["bulk-esimbatch-api1"]
	api2 := byName["bulk-esimbatch-api2"]
	if night == nil || api1 == nil || api2 == nil {
		t.Fatalf("CronJobs %v", slices.Sorted(maps.Keys(byName)))
	}
	container := func(cj *batchv1.CronJob) *corev1.Container {
		return &cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	}
	eff, _ := effectiveConfig(container(night), r.configMaps[0].obj.Data)
	if eff["MAX_SUBMIT_PER_RUN"] != "500" || eff["IMPORT_DIR"] != "/var/lib/esimbatch/import" {
		t.Errorf("night: MAX_SUBMIT_PER_RUN %q IMPORT_DIR %q, want 500 and /var/lib/esimbatch/import", eff["MAX_SUBMIT_PER_RUN"], eff["IMPORT_DIR"])
	}
	if eff, _ := effectiveConfig(container(api1), r.configMaps[0].obj.Data); eff["MAX_SUBMIT_PER_RUN"] != "2000" || eff["IMPORT_DIR"] != "" {
		t.Errorf("api1: MAX_SUBMIT_PER_RUN %q IMPORT_DIR %q, want the shared 2000 and none", eff["MAX_SUBMIT_PER_RUN"], eff["IMPORT_DIR"])
	}
	if night.Spec.Schedule != "5-59/10 * * * *" || api1.Spec.Schedule != "*/10 * * * *" {
		t.Errorf("schedules night %q api1 %q", night.Spec.Schedule, api1.Spec.Schedule)
	}
	if !isTrue(api2.Spec.Suspend) || !isFalse(api1.Spec.Suspend) {
		t.Errorf("suspend api2 %v api1 %v, want true and false", api2.Spec.Suspend, api1.Spec.Suspend)
	}
	claimOf := func(cj *batchv1.CronJob) string {
		for _, v := range cj.Spec.JobTemplate.Spec.Template.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				return v.PersistentVolumeClaim.ClaimName
			}
		}
		return ""
	}
	if claimOf(night) != "esimbatch-sales" || claimOf(api1) != "" {
		t.Errorf("import claims night %q api1 %q, want esimbatch-sales and none", claimOf(night), claimOf(api1))
	}
}

// TestChartMatchesManifests: the chart's defaults render the plain
// manifests' CronJob and migrate Job, identical in every setting but names,
// labels, hook annotations and where the Octane user comes from, and the
// example ConfigMap's data. So the chart and deploy/*.yaml cannot drift.
func TestChartMatchesManifests(t *testing.T) {
	m := loadManifests(t)
	r, err := renderChart(chartDir, "esimbatch", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.cronJobs) != 1 || len(r.jobs) != 1 || len(r.configMaps) != 1 {
		t.Fatalf("defaults render %d CronJobs, %d Jobs, %d ConfigMaps; want 1 each", len(r.cronJobs), len(r.jobs), len(r.configMaps))
	}
	if got, want := r.configMaps[0].obj.Data, m.configMap().Data; !maps.Equal(got, want) {
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if got[k] != want[k] {
				t.Errorf("values.yaml config %s = %q, deploy/example/configmap.yaml %q", k, got[k], want[k])
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("values.yaml config %s is not in deploy/example/configmap.yaml", k)
			}
		}
	}
	plainPod := func(s *corev1.PodSpec) {
		for i := range s.Containers {
			s.Containers[i].EnvFrom = nil
			s.Containers[i].Env = slices.DeleteFunc(s.Containers[i].Env, func(e corev1.EnvVar) bool {
				return e.Name == "OCTANE_USERNAME" || e.Name == "OCTANE_PASSWORD"
			})
		}
	}
	plainCJ := m.cronJobs[0].obj.DeepCopy()
	chartCJ := r.cronJobs[0].obj.DeepCopy()
	for _, cj := range []*batchv1.CronJob{plainCJ, chartCJ} {
		cj.ObjectMeta = metav1.ObjectMeta{}
		cj.Spec.JobTemplate.ObjectMeta = metav1.ObjectMeta{}
		cj.Spec.JobTemplate.Spec.Template.ObjectMeta = metav1.ObjectMeta{}
		plainPod(&cj.Spec.JobTemplate.Spec.Template.Spec)
	}
	if !apiequality.Semantic.DeepEqual(plainCJ, chartCJ) {
		t.Errorf("the chart's CronJob differs from deploy/cronjob.yaml:\n%s", diffJSON(plainCJ, chartCJ))
	}
	var plainJob *batchv1.Job
	for _, j := range m.jobs {
		if cs := j.obj.Spec.Template.Spec.Containers; len(cs) == 1 && slices.Equal(cs[0].Args, []string{"migrate"}) {
			plainJob = j.obj.DeepCopy()
		}
	}
	if plainJob == nil {
		t.Fatal("deploy/ has no migrate Job")
	}
	chartJob := r.jobs[0].obj.DeepCopy()
	for _, j := range []*batchv1.Job{plainJob, chartJob} {
		j.ObjectMeta = metav1.ObjectMeta{}
		j.Spec.Template.ObjectMeta = metav1.ObjectMeta{}
		plainPod(&j.Spec.Template.Spec)
	}
	if !apiequality.Semantic.DeepEqual(plainJob, chartJob) {
		t.Errorf("the chart's migrate Job differs from deploy/migrate-job.yaml:\n%s", diffJSON(plainJob, chartJob))
	}
}

// diffJSON shows two objects' JSON line by line where they differ.
func diffJSON(want, got any) string {
	w, _ := json.MarshalIndent(want, "", " ")
	g, _ := json.MarshalIndent(got, "", " ")
	wl, gl := strings.Split(string(w), "\n"), strings.Split(string(g), "\n")
	var out []string
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var a, b string
		if i < len(wl) {
			a = wl[i]
		}
		if i < len(gl) {
			b = gl[i]
		}
		if a != b {
			out = append(out, fmt.Sprintf("line %d: manifest %s | chart %s", i+1, strings.TrimSpace(a), strings.TrimSpace(b)))
		}
	}
	if len(out) > 10 {
		out = append(out[:10], "...")
	}
	return strings.Join(out, "\n")
}

// TestChartSchemaKnowsConfig: values.schema.json lists exactly the keys of
// values.yaml's config (which TestChart keeps equal to what cmd/batch
// reads), for the shared config and a credential's, so a misspelt key in
// an operator's values file is refused at install.
func TestChartSchemaKnowsConfig(t *testing.T) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]struct {
			AdditionalProperties *bool `json:"additionalProperties"`
			Properties           map[string]json.RawMessage
			Items                struct {
				Properties map[string]struct {
					AdditionalProperties *bool `json:"additionalProperties"`
					Properties           map[string]json.RawMessage
				}
			}
		}
	}
	if err := json.Unmarshal(chrt.Schema, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	config, _ := chrt.Values["config"].(map[string]any)
	want := slices.Sorted(maps.Keys(config))
	shared := schema.Properties["config"]
	perCred := schema.Properties["credentials"].Items.Properties["config"]
	for what, s := range map[string]struct {
		closed bool
		keys   []string
	}{
		"config":               {isFalse(shared.AdditionalProperties), slices.Sorted(maps.Keys(shared.Properties))},
		"credentials[].config": {isFalse(perCred.AdditionalProperties), slices.Sorted(maps.Keys(perCred.Properties))},
	} {
		if !s.closed {
			t.Errorf("schema %s: additionalProperties must be false, or a misspelt key passes", what)
		}
		if !slices.Equal(s.keys, want) {
			t.Errorf("schema %s lists %v; values.yaml config has %v", what, s.keys, want)
		}
	}
}

// TestChartRefusesBadValues: values a chart must not render, each refused
// with an error that names the value.
func TestChartRefusesBadValues(t *testing.T) {
	const two = "credentials:\n  - {name: a, secretName: octane-a}\n  - {name: b, secretName: octane-b}\n"
	for name, tc := range map[string]struct{ values, want string }{
		"no credentials":              {"credentials: []\n", "credentials"},
		"duplicate name":              {"credentials:\n  - {name: a, secretName: octane-a}\n  - {name: a, secretName: octane-b}\n", "credentials[1] (a): name is already used by credentials[0] (a)"},
		"shared Octane secret":        {"credentials:\n  - {name: a, secretName: octane}\n  - {name: b, secretName: octane}\n", "secretName octane is already the credential of credentials[0] (a)"},
		"name not a DNS label":        {"credentials:\n  - {name: Bulk_1, secretName: octane}\n", "/credentials/0/name"},
		"no secretName":               {"credentials:\n  - {name: a}\n", "secretName"},
		"misspelt credential field":   {"credentials:\n  - {name: a, secretName: octane, schedul: \"*/5 * * * *\"}\n", "schedul"},
		"misspelt override":           {"credentials:\n  - {name: a, secretName: octane, config: {MAX_SUBMIT_PERRUN: \"10\"}}\n", "MAX_SUBMIT_PERRUN"},
		"secret as override":          {"credentials:\n  - {name: a, secretName: octane, config: {OCTANE_PASSWORD: \"x\"}}\n", "OCTANE_PASSWORD"},
		"misspelt config key":         {"config: {OCTANE_GROUPNO: \"4711\"}\n", "OCTANE_GROUPNO"},
		"number for a string":         {"config: {BATCH_SIZE: 50}\n", "/config/BATCH_SIZE"},
		"misspelt top-level value":    {"secretname: x\n", "secretname"},
		"CRON_TZ prefix":              {"schedule: \"CRON_TZ=UTC */10 * * * *\"\n", "/schedule"},
		"latest image":                {"image: {tag: latest}\n", "image.tag"},
		"no SMTP, no report claim":    {"config: {SMTP_HOST: \"\"}\n", "reports.existingClaim"},
		"one credential without SMTP": {two + "  - {name: c, secretName: octane-c, config: {SMTP_HOST: \"\"}}\n", "credentials[2] (c): without SMTP_HOST"},
		"relative REPORT_DIR":         {"config: {REPORT_DIR: reports}\n", "REPORT_DIR"},
		"import without claim":        {"config: {IMPORT_DIR: /srv/sales}\n", "imports.existingClaim"},
		"claim without import":        {"imports: {existingClaim: sales}\n", "no credential's config sets IMPORT_DIR"},
		"two importers":               {"imports: {existingClaim: sales}\nconfig: {IMPORT_DIR: /srv/sales}\n" + two, "IMPORT_DIR is set for credentials a, b"},
		"name too long":               {"credentials:\n  - {name: abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq, secretName: octane}\n", "Kubernetes allows 52"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := renderChart(chartDir, "esimbatch", []byte(tc.values))
			switch {
			case err == nil:
				t.Errorf("rendered without error:\n%s", tc.values)
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("error does not name %q:\n%v", tc.want, err)
			default:
				t.Logf("%v", err)
			}
		})
	}
}

// TestChartBreaksFail breaks a copy of the chart one way at a time and
// wants the test's render or checks to say so: a misspelt field in a
// template fails the strict decode, a missing setting fails a check.
func TestChartBreaksFail(t *testing.T) {
	vars := configVariableSet(t)
	shared := sharedSecretKeys(t)
	three := readTestdata(t, "three-credentials.yaml")
	for name, tc := range map[string]struct {
		file, old, new string
		want           string // in the render error or a problem
	}{
		"misspelt field":          {"templates/cronjobs.yaml", "concurrencyPolicy: Forbid", "concurencyPolicy: Forbid", `unknown field "spec.concurencyPolicy"`},
		"field in the wrong case": {"templates/_helpers.tpl", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", "readOnlyRootFileSystem"},
		"misspelt nested field":   {"templates/migrate-job.yaml", "ttlSecondsAfterFinished:", "ttlSecondAfterFinished:", "ttlSecondAfterFinished"},
		"misspelt value":          {"templates/cronjobs.yaml", ".Values.cronJob.backoffLimit", ".Values.cronJob.backofLimit", "backofLimit"},
		"capabilities kept":       {"templates/_helpers.tpl", `drop: ["ALL"]`, `drop: []`, "capabilities.drop must hold ALL"},
		"root allowed":            {"templates/_helpers.tpl", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot must be true"},
		"shared Octane user":      {"templates/cronjobs.yaml", "secretKeyRef: {name: {{ $cred.secretName | quote }}, key: OCTANE_PASSWORD}", "secretKeyRef: {name: {{ $.Values.secretName | quote }}, key: OCTANE_PASSWORD}", "OCTANE_PASSWORD comes from Secret"},
		"overrides dropped":       {"templates/cronjobs.yaml", "{{- range $k, $v := $overrides }}\n                - name:", "{{- range $k, $v := dict }}\n                - name:", "env overrides"},
		"one CronJob for all":     {"templates/cronjobs.yaml", "{{- range $i, $cred := .Values.credentials }}", "{{- range $i, $cred := list (last .Values.credentials) }}", "renders 1 CronJobs for 3 credentials"},
		"migrate not a hook":      {"templates/migrate-job.yaml", "    helm.sh/hook: pre-install,pre-upgrade\n", "", "hooks []"},
		"migrate on install only": {"templates/migrate-job.yaml", "pre-install,pre-upgrade", "pre-install", "does not run on pre-upgrade"},
		"no migrate TTL":          {"templates/migrate-job.yaml", "  ttlSecondsAfterFinished: {{ .Values.migrate.ttlSecondsAfterFinished }}\n", "", "ttlSecondsAfterFinished must be set"},
		"no deadline":             {"templates/cronjobs.yaml", "      activeDeadlineSeconds: {{ $.Values.cronJob.activeDeadlineSeconds }}\n", "", "activeDeadlineSeconds missing"},
		"concurrency Allow":       {"templates/cronjobs.yaml", "concurrencyPolicy: Forbid", "concurrencyPolicy: Allow", "want Forbid"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(dir, tc.file)
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), tc.old) {
				t.Fatalf("%s no longer holds %q: update this case", tc.file, tc.old)
			}
			if err := os.WriteFile(f, []byte(strings.Replace(string(data), tc.old, tc.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := renderChart(dir, "bulk", three)
			var said string
			if err != nil {
				said = err.Error()
			} else {
				var all []string
				for where, p := range chartProblems(r, vars, shared) {
					for _, s := range p {
						all = append(all, where+": "+s)
					}
				}
				said = strings.Join(all, "\n")
			}
			if !strings.Contains(said, tc.want) {
				t.Errorf("want %q among what the test said:\n%s", tc.want, said)
			} else {
				t.Logf("%s", said)
			}
		})
	}
}

// TestChartVersions: the chart's appVersion is the plain manifests' image
// tag, and the Kubernetes versions it accepts have every field it uses.
func TestChartVersions(t *testing.T) {
	m := loadManifests(t)
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	image := m.cronJobs[0].obj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image
	if want := image[strings.LastIndex(image, ":")+1:]; chrt.AppVersion() != want {
		t.Errorf("Chart.yaml appVersion %q, deploy/cronjob.yaml runs tag %q: release them together", chrt.AppVersion(), want)
	}
	for version, ok := range map[string]bool{"v1.28.9": false, "v1.29.0": true, "v1.34.1": true} {
		if got := chartutil.IsCompatibleRange(chrt.Metadata.KubeVersion, version); got != ok {
			t.Errorf("kubeVersion %q accepts %s: %v, want %v (podReplacementPolicy is on by default from 1.29)", chrt.Metadata.KubeVersion, version, got, ok)
		}
	}
	if chrt.Metadata.APIVersion != chart.APIVersionV2 {
		t.Errorf("Chart.yaml apiVersion %q, want %s", chrt.Metadata.APIVersion, chart.APIVersionV2)
	}
}
