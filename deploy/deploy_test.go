package deploy_test

// The manifests under deploy/ are decoded the way the API server decodes
// them (YAML to JSON, then case-sensitive JSON refusing unknown and duplicate
// fields), so a misspelt field fails here instead of being dropped by a
// cluster. Then the settings the job relies on are checked: the restricted
// Pod Security profile, a pinned image shared by every manifest, the
// CronJob's and the Jobs' deadlines and failure policy, and that the example
// ConfigMap and Secret carry every variable cmd/batch/config.go reads.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// nonroot is the uid and gid of the distroless nonroot user the image runs as.
const nonroot = 65532

// configFile is the configuration whose variables the ConfigMap and the
// Secret must carry; cmdDir holds the files that read variables directly.
const (
	configFile = "../cmd/batch/config.go"
	cmdDir     = "../cmd/batch"
)

// kinds are the only objects deploy/ may hold, by "apiVersion kind".
var kinds = map[string]func() any{
	"batch/v1 CronJob": func() any { return new(batchv1.CronJob) },
	"batch/v1 Job":     func() any { return new(batchv1.Job) },
	"v1 Secret":        func() any { return new(corev1.Secret) },
	"v1 ConfigMap":     func() any { return new(corev1.ConfigMap) },
}

type located[T any] struct {
	where string // file (document N)
	obj   T
}

type manifests struct {
	cronJobs   []located[*batchv1.CronJob]
	jobs       []located[*batchv1.Job]
	secrets    []located[*corev1.Secret]
	configMaps []located[*corev1.ConfigMap]
}

// podTemplate is one pod template with where it is.
type podTemplate struct {
	where string
	spec  *corev1.PodSpec
}

func (m *manifests) pods() []podTemplate {
	var out []podTemplate
	for _, c := range m.cronJobs {
		out = append(out, podTemplate{c.where, &c.obj.Spec.JobTemplate.Spec.Template.Spec})
	}
	for _, j := range m.jobs {
		out = append(out, podTemplate{j.where, &j.obj.Spec.Template.Spec})
	}
	return out
}

// secret and configMap return the one example of each (loadManifests
// insists on exactly one).
func (m *manifests) secret() *corev1.Secret       { return m.secrets[0].obj }
func (m *manifests) configMap() *corev1.ConfigMap { return m.configMaps[0].obj }

// loadManifests decodes every YAML document under deploy/ but helm/ (a
// chart's templates and values are no manifests: helm_test.go renders
// them); any document that is not a known kind or does not decode strictly
// fails the test.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p == chartRoot {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no YAML file under deploy/")
	}
	m := &manifests{}
	names := map[string]string{} // kind/name -> where
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range m.addFile(f, data, names) {
			t.Error(err)
		}
	}
	if len(m.cronJobs) != 1 || len(m.secrets) != 1 || len(m.configMaps) != 1 || len(m.jobs) == 0 {
		t.Fatalf("deploy/ holds %d CronJobs, %d Jobs, %d Secrets, %d ConfigMaps; want 1, at least 1 (migrate), 1, 1",
			len(m.cronJobs), len(m.jobs), len(m.secrets), len(m.configMaps))
	}
	return m
}

// addFile decodes the YAML documents of one file into m; names keeps every
// kind/name unique across the files added. It returns what is wrong, each
// error naming the file and document.
func (m *manifests) addFile(f string, data []byte, names map[string]string) []error {
	docs, err := splitDocuments(data)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", f, err)}
	}
	var errs []error
	objects := 0
	for i, doc := range docs {
		where := fmt.Sprintf("%s (document %d)", f, i+1)
		obj, err := decodeDocument(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if obj == nil {
			continue // comments only
		}
		objects++
		var kind string
		var meta metav1.ObjectMeta
		switch o := obj.(type) {
		case *batchv1.CronJob:
			kind, meta = "CronJob", o.ObjectMeta
			m.cronJobs = append(m.cronJobs, located[*batchv1.CronJob]{where, o})
		case *batchv1.Job:
			kind, meta = "Job", o.ObjectMeta
			m.jobs = append(m.jobs, located[*batchv1.Job]{where, o})
		case *corev1.Secret:
			kind, meta = "Secret", o.ObjectMeta
			m.secrets = append(m.secrets, located[*corev1.Secret]{where, o})
		case *corev1.ConfigMap:
			kind, meta = "ConfigMap", o.ObjectMeta
			m.configMaps = append(m.configMaps, located[*corev1.ConfigMap]{where, o})
		}
		if meta.Name == "" {
			errs = append(errs, fmt.Errorf("%s: %s without metadata.name", where, kind))
		}
		key := kind + "/" + meta.Name
		if prev, dup := names[key]; dup {
			errs = append(errs, fmt.Errorf("%s: %s already defined in %s", where, key, prev))
		}
		names[key] = where
	}
	if objects == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no Kubernetes object", f))
	}
	return errs
}

// splitDocuments cuts a YAML stream at its "---" lines.
func splitDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
}

// decodeDocument decodes one YAML document into its API type, as strictly as
// the API server's field validation: duplicate keys, unknown fields and
// fields in the wrong case are errors. nil, nil: a document of comments only.
func decodeDocument(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	if s := string(bytes.TrimSpace(j)); s == "null" || s == "" {
		return nil, nil
	}
	var tm metav1.TypeMeta
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return nil, err
	}
	newObj, ok := kinds[tm.APIVersion+" "+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q: not a kind deploy/ may hold (batch/v1 CronJob or Job, v1 Secret or ConfigMap)", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	strict, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %w", tm.Kind, errors.Join(strict...))
	}
	return obj, nil
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	t.Logf("%d CronJob, %d Job, %d Secret, %d ConfigMap", len(m.cronJobs), len(m.jobs), len(m.secrets), len(m.configMaps))
}

// TestDecodeRefuses keeps the decoder honest: each document here is one
// mistake a lenient decoder would let through.
func TestDecodeRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelt field":          "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec: {activeDeadlineSecond: 60}\n",
		"field in the wrong case": "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec: {ActiveDeadlineSeconds: 60}\n",
		"nested misspelt field":   "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{name: c, image: i, securityContex: {}}]\n",
		"duplicate key":           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {A: \"1\", A: \"2\"}\n",
		"number for a string":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {BATCH_SIZE: 50}\n",
		"unknown kind":            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
		"old apiVersion":          "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: x}\n",
		"no kind":                 "metadata: {name: x}\n",
	} {
		if _, err := decodeDocument([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error:\n%s", name, doc)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	obj, err := decodeDocument([]byte("# only a comment\n"))
	if obj != nil || err != nil {
		t.Errorf("comment-only document: got %v, %v; want nil, nil", obj, err)
	}
}

// problems collects what a check found wrong.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func report(t *testing.T, where string, p problems) {
	t.Helper()
	for _, s := range p {
		t.Errorf("%s: %s", where, s)
	}
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

// allowedVolumes are the volume types the restricted profile admits.
var allowedVolumes = []string{"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}

// volumeType names the one source a volume sets (its JSON field name).
func volumeType(v corev1.Volume) string {
	var set []string
	rv := reflect.ValueOf(v.VolumeSource)
	for i := 0; i < rv.NumField(); i++ {
		if f := rv.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
			set = append(set, name)
		}
	}
	if len(set) != 1 {
		return fmt.Sprintf("%v", set)
	}
	return set[0]
}

// podProblems checks a pod template against the restricted Pod Security
// profile and the settings every esimbatch pod shares.
func podProblems(spec *corev1.PodSpec) problems {
	var p problems
	sc := spec.SecurityContext
	if sc == nil {
		p.add("pod securityContext missing")
		sc = &corev1.PodSecurityContext{}
	}
	if !isTrue(sc.RunAsNonRoot) {
		p.add("pod securityContext.runAsNonRoot must be true")
	}
	for field, v := range map[string]*int64{"runAsUser": sc.RunAsUser, "runAsGroup": sc.RunAsGroup, "fsGroup": sc.FSGroup} {
		if v == nil || *v != nonroot {
			p.add("pod securityContext.%s must be %d (distroless nonroot)", field, nonroot)
		}
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		p.add("pod securityContext.seccompProfile.type must be RuntimeDefault")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		p.add("hostNetwork, hostPID and hostIPC must be off")
	}
	if !isFalse(spec.AutomountServiceAccountToken) {
		p.add("automountServiceAccountToken must be false: the job never calls the Kubernetes API")
	}
	if spec.RestartPolicy != corev1.RestartPolicyNever {
		p.add("restartPolicy %q, want Never (podFailurePolicy needs it)", spec.RestartPolicy)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		if _, dup := volumes[v.Name]; dup {
			p.add("volume %q defined twice", v.Name)
		}
		volumes[v.Name] = v
		if typ := volumeType(v); !slices.Contains(allowedVolumes, typ) {
			p.add("volume %q is %s; the restricted profile allows %v", v.Name, typ, allowedVolumes)
		}
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit == nil {
			p.add("emptyDir volume %q without sizeLimit", v.Name)
		}
	}
	if len(spec.Containers) == 0 {
		p.add("no container")
	}
	mounted := map[string]bool{}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, s := range containerProblems(&c, volumes, mounted) {
			p.add("container %q: %s", c.Name, s)
		}
	}
	for name := range volumes {
		if !mounted[name] {
			p.add("volume %q is mounted by no container", name)
		}
	}
	return p
}

func containerProblems(c *corev1.Container, volumes map[string]corev1.Volume, mounted map[string]bool) problems {
	var p problems
	sc := c.SecurityContext
	if sc == nil {
		p.add("securityContext missing")
		sc = &corev1.SecurityContext{}
	}
	if !isFalse(sc.AllowPrivilegeEscalation) {
		p.add("securityContext.allowPrivilegeEscalation must be false")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		p.add("securityContext.readOnlyRootFilesystem must be true")
	}
	if isTrue(sc.Privileged) {
		p.add("securityContext.privileged must not be true")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		p.add("securityContext.capabilities.drop must hold ALL")
	} else if len(sc.Capabilities.Add) > 0 {
		p.add("securityContext.capabilities.add must be empty, got %v", sc.Capabilities.Add)
	}
	if isFalse(sc.RunAsNonRoot) || (sc.RunAsUser != nil && *sc.RunAsUser == 0) {
		p.add("securityContext must not run as root")
	}
	if sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeUnconfined {
		p.add("securityContext.seccompProfile must not be Unconfined")
	}
	p = append(p, imageProblems(c.Image)...)
	if c.ImagePullPolicy != corev1.PullIfNotPresent {
		p.add("imagePullPolicy %q, want IfNotPresent (the tag is pinned)", c.ImagePullPolicy)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[r]
		lim, hasLim := c.Resources.Limits[r]
		switch {
		case !hasReq:
			p.add("resources.requests.%s missing", r)
		case !hasLim:
			p.add("resources.limits.%s missing", r)
		case lim.Cmp(req) < 0:
			p.add("resources.limits.%s %s is below its request %s", r, lim.String(), req.String())
		}
	}
	tmp := false
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			p.add("volumeMount %q (%s) has no volume", vm.Name, vm.MountPath)
			continue
		}
		mounted[vm.Name] = true
		if vm.MountPath == "/tmp" && v.EmptyDir != nil && !vm.ReadOnly {
			tmp = true
		}
	}
	if !tmp {
		p.add("no writable emptyDir at /tmp (the root filesystem is read-only)")
	}
	return p
}

// imageProblems insists on a tag that names one build: never latest, never
// none (which is latest).
func imageProblems(ref string) problems {
	var p problems
	name, _, _ := strings.Cut(ref, "@")
	last := name[strings.LastIndex(name, "/")+1:]
	_, tag, hasTag := strings.Cut(last, ":")
	switch {
	case ref == "":
		p.add("no image")
	case !hasTag || tag == "":
		p.add("image %q has no tag (that is latest): pin a release tag", ref)
	case tag == "latest":
		p.add("image %q: pin a release tag, not latest", ref)
	}
	return p
}

func TestPodTemplatesRestricted(t *testing.T) {
	m := loadManifests(t)
	for _, pt := range m.pods() {
		report(t, pt.where, podProblems(pt.spec))
	}
}

func TestImagePinnedAndShared(t *testing.T) {
	m := loadManifests(t)
	images := map[string][]string{}
	for _, pt := range m.pods() {
		for _, c := range slices.Concat(pt.spec.InitContainers, pt.spec.Containers) {
			images[c.Image] = append(images[c.Image], pt.where+" "+c.Name)
			report(t, pt.where, imageProblems(c.Image))
		}
	}
	if len(images) != 1 {
		t.Errorf("every manifest must run the same image (migrate and run of one release), got %v", images)
	}
}

// envFromProblems checks that a container's envFrom names objects deploy/
// defines, none optional (a missing Secret must stop the pod, not run it
// unconfigured), and that env sets no configuration variable behind the
// ConfigMap's back.
func envFromProblems(c *corev1.Container, m *manifests, vars map[string]envVar) problems {
	var p problems
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			if ef.ConfigMapRef.Name != m.configMap().Name {
				p.add("envFrom configMapRef %q: deploy/ defines ConfigMap %q", ef.ConfigMapRef.Name, m.configMap().Name)
			}
			if isTrue(ef.ConfigMapRef.Optional) {
				p.add("envFrom configMapRef %q must not be optional", ef.ConfigMapRef.Name)
			}
		case ef.SecretRef != nil:
			if ef.SecretRef.Name != m.secret().Name {
				p.add("envFrom secretRef %q: deploy/ defines Secret %q", ef.SecretRef.Name, m.secret().Name)
			}
			if isTrue(ef.SecretRef.Optional) {
				p.add("envFrom secretRef %q must not be optional", ef.SecretRef.Name)
			}
		}
		if ef.Prefix != "" {
			p.add("envFrom prefix %q would rename every variable", ef.Prefix)
		}
	}
	for _, e := range c.Env {
		if _, ok := vars[e.Name]; ok {
			p.add("env sets %s: configuration variables belong in the ConfigMap or the Secret", e.Name)
		}
	}
	return p
}

func hasEnvFrom(c *corev1.Container, configMap, secret bool) bool {
	var cm, s bool
	for _, ef := range c.EnvFrom {
		cm = cm || ef.ConfigMapRef != nil
		s = s || ef.SecretRef != nil
	}
	return (!configMap || cm) && (!secret || s)
}

func TestEnvFrom(t *testing.T) {
	m := loadManifests(t)
	vars := configVariableSet(t)
	for _, pt := range m.pods() {
		for _, c := range slices.Concat(pt.spec.InitContainers, pt.spec.Containers) {
			for _, s := range envFromProblems(&c, m, vars) {
				t.Errorf("%s: container %q: %s", pt.where, c.Name, s)
			}
			if !hasEnvFrom(&c, false, true) {
				t.Errorf("%s: container %q has no envFrom secretRef (DATABASE_URL)", pt.where, c.Name)
			}
		}
	}
}

// failurePolicyProblems wants a FailJob rule for exit 2 (bad configuration:
// a retry cannot help) on the named container and an Ignore rule for
// disruptions (drain, preemption).
func failurePolicyProblems(js *batchv1.JobSpec, container string) problems {
	var p problems
	if js.PodFailurePolicy == nil {
		p.add("podFailurePolicy missing")
		return p
	}
	var failJob, ignore bool
	for _, r := range js.PodFailurePolicy.Rules {
		if r.Action == batchv1.PodFailurePolicyActionFailJob && r.OnExitCodes != nil &&
			r.OnExitCodes.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn &&
			slices.Contains(r.OnExitCodes.Values, 2) &&
			(r.OnExitCodes.ContainerName == nil || *r.OnExitCodes.ContainerName == container) {
			failJob = true
		}
		if r.Action == batchv1.PodFailurePolicyActionIgnore && slices.ContainsFunc(r.OnPodConditions,
			func(c batchv1.PodFailurePolicyOnPodConditionsPattern) bool {
				return c.Type == corev1.DisruptionTarget
			}) {
			ignore = true
		}
	}
	if !failJob {
		p.add("podFailurePolicy has no FailJob rule for exit code 2 of container %q", container)
	}
	if !ignore {
		p.add("podFailurePolicy has no Ignore rule for DisruptionTarget")
	}
	if js.PodReplacementPolicy == nil || *js.PodReplacementPolicy != batchv1.Failed {
		p.add("podReplacementPolicy must be Failed: never an old and a new pod at once")
	}
	if js.BackoffLimit == nil {
		p.add("backoffLimit not set (the default is 6)")
	}
	return p
}

// everyNMinutes is */N, or M-59/N (every N minutes from minute M: a
// credential's staggered schedule in the chart).
var everyNMinutes = regexp.MustCompile(`^(?:\*|(?:[0-9]|[1-5][0-9])-59)/([0-9]+) \* \* \* \*$`)

// cronJobProblems checks the CronJob against the ConfigMap it reads.
func cronJobProblems(cj *batchv1.CronJob, cm map[string]string) problems {
	var p problems
	s := &cj.Spec
	var interval time.Duration
	if mm := everyNMinutes.FindStringSubmatch(s.Schedule); mm == nil {
		p.add("schedule %q: this test knows only */N * * * * and M-59/N * * * *; teach it the new schedule", s.Schedule)
	} else {
		n, _ := strconv.Atoi(mm[1])
		interval = time.Duration(n) * time.Minute
	}
	if s.TimeZone == nil || *s.TimeZone != "Etc/UTC" {
		p.add("timeZone must be Etc/UTC")
	}
	if s.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		p.add("concurrencyPolicy %q, want Forbid", s.ConcurrencyPolicy)
	}
	if d := s.StartingDeadlineSeconds; d == nil || *d < 10 || (interval > 0 && time.Duration(*d)*time.Second >= interval) {
		p.add("startingDeadlineSeconds must be at least 10 (the controller's sync) and under the %s interval", interval)
	}
	if !isFalse(s.Suspend) {
		p.add("suspend must be stated false, so that kubectl apply undoes a suspend")
	}
	js := &s.JobTemplate.Spec
	pod := &js.Template.Spec
	if len(pod.Containers) != 1 {
		p.add("want one container, got %d", len(pod.Containers))
		return p
	}
	c := &pod.Containers[0]
	p = append(p, failurePolicyProblems(js, c.Name)...)
	if js.BackoffLimit == nil || *js.BackoffLimit != 1 {
		p.add("backoffLimit must be 1: rows carry their own retries")
	}
	runDeadline, err := time.ParseDuration(cm["RUN_DEADLINE"])
	if err != nil {
		p.add("ConfigMap RUN_DEADLINE: %v", err)
	}
	switch ad := js.ActiveDeadlineSeconds; {
	case ad == nil:
		p.add("activeDeadlineSeconds missing")
	case *ad <= 540:
		p.add("activeDeadlineSeconds %d must be above 540 (the default RUN_DEADLINE, 9m)", *ad)
	case time.Duration(*ad)*time.Second < runDeadline+30*time.Second:
		p.add("activeDeadlineSeconds %d leaves under 30 s past RUN_DEADLINE %s for the pass to record itself", *ad, runDeadline)
	case interval > 0 && time.Duration(*ad)*time.Second > interval:
		p.add("activeDeadlineSeconds %d is beyond the %s interval", *ad, interval)
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds != 60 {
		p.add("terminationGracePeriodSeconds must be 60 (20 s for a sent call, the rest to record the run)")
	}
	if len(c.Command) > 0 || !slices.Equal(c.Args, []string{"run"}) {
		p.add("container %q must run the image's entrypoint with args [run], got command %v args %v", c.Name, c.Command, c.Args)
	}
	if !hasEnvFrom(c, true, true) {
		p.add("container %q needs envFrom of both the ConfigMap and the Secret", c.Name)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	mountAt := func(path string) (corev1.VolumeMount, corev1.Volume, bool) {
		for _, vm := range c.VolumeMounts {
			if filepath.Clean(vm.MountPath) == filepath.Clean(path) {
				return vm, volumes[vm.Name], true
			}
		}
		return corev1.VolumeMount{}, corev1.Volume{}, false
	}
	if dir := cm["REPORT_DIR"]; !filepath.IsAbs(dir) {
		p.add("ConfigMap REPORT_DIR %q must be an absolute path on a mounted volume (the root filesystem is read-only)", dir)
	} else if vm, v, ok := mountAt(dir); !ok || vm.ReadOnly {
		p.add("REPORT_DIR %s is not a writable volumeMount", dir)
	} else if strings.TrimSpace(cm["SMTP_HOST"]) == "" && v.PersistentVolumeClaim == nil {
		p.add("without SMTP_HOST reports are .eml files in REPORT_DIR that count as delivered: volume %q must be a persistentVolumeClaim", vm.Name)
	}
	if dir := strings.TrimSpace(cm["IMPORT_DIR"]); dir != "" {
		if vm, v, ok := mountAt(dir); !ok || vm.ReadOnly {
			p.add("IMPORT_DIR %s is not a writable volumeMount (files move to processed/ and rejected/)", dir)
		} else if v.EmptyDir != nil {
			p.add("IMPORT_DIR %s is an emptyDir: nothing could ever arrive in it", dir)
		}
	}
	return p
}

func TestCronJob(t *testing.T) {
	m := loadManifests(t)
	cj := m.cronJobs[0]
	report(t, cj.where, cronJobProblems(cj.obj, m.configMap().Data))
}

// jobProblems checks a one-off Job; every Job needs a deadline and a TTL.
func jobProblems(j *batchv1.Job) problems {
	var p problems
	if ad := j.Spec.ActiveDeadlineSeconds; ad == nil || *ad <= 0 {
		p.add("activeDeadlineSeconds must be set")
	}
	if ttl := j.Spec.TTLSecondsAfterFinished; ttl == nil || *ttl <= 0 {
		p.add("ttlSecondsAfterFinished must be set, or the finished Job stays and blocks the next apply")
	}
	if len(j.Spec.Template.Spec.Containers) != 1 {
		p.add("want one container, got %d", len(j.Spec.Template.Spec.Containers))
		return p
	}
	return append(p, failurePolicyProblems(&j.Spec, j.Spec.Template.Spec.Containers[0].Name)...)
}

func TestJobs(t *testing.T) {
	m := loadManifests(t)
	migrate := 0
	for _, j := range m.jobs {
		report(t, j.where, jobProblems(j.obj))
		if cs := j.obj.Spec.Template.Spec.Containers; len(cs) == 1 && len(cs[0].Command) == 0 && slices.Equal(cs[0].Args, []string{"migrate"}) {
			migrate++
		}
	}
	if migrate != 1 {
		t.Errorf("want one Job running the entrypoint with args [migrate], got %d", migrate)
	}
}

// envVar is one variable the configuration reads.
type envVar struct {
	name   string
	goType string // as written in config.go: string, int, secret, time.Duration, []string
	secret bool
}

// testOnly are variables for tests against the simulator: a deployment must
// not set them.
func testOnly(name string) bool {
	return name == "BATCH_TIME_OFFSET" || strings.HasPrefix(name, "SIM_")
}

// isSecret: the config's secret type, a password, or a credential.
func isSecret(name, goType string) bool {
	return goType == "secret" || strings.Contains(name, "PASSWORD") || name == "DATABASE_URL" || name == "OCTANE_USERNAME"
}

// configVariables reads the env tags of the config struct in config.go,
// with the prefixes of its nested structs, the way go-envconfig does, and
// adds the names the command's files read directly (lookup("NAME")).
func configVariables() ([]envVar, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, configFile, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	typesOf := map[string]ast.Expr{}
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
			for _, s := range g.Specs {
				ts := s.(*ast.TypeSpec)
				typesOf[ts.Name.Name] = ts.Type
			}
		}
	}
	if _, ok := typesOf["secret"]; !ok {
		return nil, fmt.Errorf("%s: no type secret: teach isSecret the new secret type", configFile)
	}
	root, ok := typesOf["config"].(*ast.StructType)
	if !ok {
		return nil, fmt.Errorf("%s: no struct type config", configFile)
	}
	structOf := func(e ast.Expr) *ast.StructType {
		if id, ok := e.(*ast.Ident); ok {
			e = typesOf[id.Name]
		}
		st, _ := e.(*ast.StructType)
		return st
	}
	var vars []envVar
	var walk func(st *ast.StructType, prefix string) error
	walk = func(st *ast.StructType, prefix string) error {
		for _, field := range st.Fields.List {
			if field.Tag == nil {
				continue
			}
			raw, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				return err
			}
			tag, ok := reflect.StructTag(raw).Lookup("env")
			if !ok {
				continue
			}
			parts := strings.Split(tag, ",")
			name := strings.TrimSpace(parts[0])
			if nested := structOf(field.Type); nested != nil && name == "" {
				var p string
				for _, o := range parts[1:] {
					if v, ok := strings.CutPrefix(strings.TrimSpace(o), "prefix="); ok {
						p = v
					}
				}
				if err := walk(nested, prefix+p); err != nil {
					return err
				}
				continue
			}
			if name == "" {
				return fmt.Errorf("%s: field %s: env tag without a name", fset.Position(field.Pos()), types.ExprString(field.Type))
			}
			typ := types.ExprString(field.Type)
			vars = append(vars, envVar{name: prefix + name, goType: typ, secret: isSecret(prefix+name, typ)})
		}
		return nil
	}
	if err := walk(root, ""); err != nil {
		return nil, err
	}
	direct, err := directReads()
	if err != nil {
		return nil, err
	}
	for _, name := range direct {
		if !slices.ContainsFunc(vars, func(v envVar) bool { return v.name == name }) {
			vars = append(vars, envVar{name: name, goType: "string", secret: isSecret(name, "string")})
		}
	}
	return vars, nil
}

// directReads finds lookup("NAME"), os.Getenv("NAME") and os.LookupEnv("NAME")
// in the command's non-test files.
func directReads() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(cmdDir, "*.go"))
	if err != nil {
		return nil, err
	}
	var names []string
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			var fn string
			switch fun := call.Fun.(type) {
			case *ast.Ident:
				fn = fun.Name
			case *ast.SelectorExpr:
				fn = fun.Sel.Name
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if (fn == "lookup" || fn == "Getenv" || fn == "LookupEnv") && ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && !slices.Contains(names, s) {
					names = append(names, s)
				}
			}
			return true
		})
	}
	return names, nil
}

func configVariableSet(t *testing.T) map[string]envVar {
	t.Helper()
	vars, err := configVariables()
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]envVar{}
	for _, v := range vars {
		set[v.name] = v
	}
	return set
}

func secretKeys(s *corev1.Secret) map[string]bool {
	keys := map[string]bool{}
	for k := range s.StringData {
		keys[k] = true
	}
	for k := range s.Data {
		keys[k] = true
	}
	return keys
}

// coverageProblems: every variable the configuration reads is in the Secret
// or the ConfigMap (secrets only in the Secret), every key there is one the
// configuration reads, and the ConfigMap's numbers, booleans and durations
// parse.
func coverageProblems(vars map[string]envVar, secret map[string]bool, cm map[string]string) problems {
	var p problems
	names := slices.Sorted(maps.Keys(vars))
	for _, n := range names {
		v := vars[n]
		_, inCM := cm[n]
		inSecret := secret[n]
		switch {
		case testOnly(n):
			if inCM || inSecret {
				p.add("%s is for tests against the simulator only; a deployment must not set it", n)
			}
		case v.secret && inCM:
			p.add("%s is secret: it belongs in the Secret, not the ConfigMap", n)
		case v.secret && !inSecret:
			p.add("%s (read by cmd/batch) is missing from the example Secret", n)
		case !inCM && !inSecret:
			p.add("%s (read by cmd/batch) is missing from the example ConfigMap", n)
		case inCM && inSecret:
			p.add("%s is in both the ConfigMap and the Secret: the envFrom order would decide", n)
		}
	}
	for _, src := range []struct {
		what string
		keys []string
	}{{"ConfigMap", slices.Sorted(maps.Keys(cm))}, {"Secret", slices.Sorted(maps.Keys(secret))}} {
		for _, k := range src.keys {
			if _, ok := vars[k]; !ok {
				p.add("%s key %s is no variable cmd/batch reads (misspelt?)", src.what, k)
			}
		}
	}
	for _, n := range names {
		val, ok := cm[n]
		if !ok {
			continue
		}
		var err error
		switch vars[n].goType {
		case "int":
			_, err = strconv.Atoi(val)
		case "bool":
			_, err = strconv.ParseBool(val)
		case "time.Duration":
			_, err = time.ParseDuration(val)
		}
		if err != nil {
			p.add("ConfigMap %s %q is not a %s: %v", n, val, vars[n].goType, err)
		}
	}
	return p
}

func TestConfigCoverage(t *testing.T) {
	m := loadManifests(t)
	vars := configVariableSet(t)
	// The parser must see what config.go holds: the nested prefixes, the
	// secret type, a variable read outside the struct.
	for name, secret := range map[string]bool{
		"DATABASE_URL": true, "OCTANE_PASSWORD": true, "SMTP_PASSWORD": true, "REPORT_PASSWORD": true,
		"OCTANE_SOAP_URL": false, "REPORT_DIR": false, "SCHEDULE_REPORT": false, "BATCH_TIME_OFFSET": false,
	} {
		if v, ok := vars[name]; !ok || v.secret != secret {
			t.Errorf("parsed configuration: %s found %v, secret %v; want found, secret %v", name, ok, v.secret, secret)
		}
	}
	t.Logf("%d variables in %s", len(vars), configFile)
	report(t, "example Secret and ConfigMap", coverageProblems(vars, secretKeys(m.secret()), m.configMap().Data))
}

// TestChecksCatchBreaks breaks a copy of each manifest in one way at a time
// and wants the matching check to say so: the checks above pass because the
// manifests are right, not because they look at nothing.
func TestChecksCatchBreaks(t *testing.T) {
	m := loadManifests(t)
	vars := configVariableSet(t)
	cm := m.configMap().Data
	pod := func(f func(*corev1.PodSpec)) func() problems {
		return func() problems {
			cj := m.cronJobs[0].obj.DeepCopy()
			f(&cj.Spec.JobTemplate.Spec.Template.Spec)
			return podProblems(&cj.Spec.JobTemplate.Spec.Template.Spec)
		}
	}
	cron := func(f func(*batchv1.CronJob)) func() problems {
		return func() problems {
			cj := m.cronJobs[0].obj.DeepCopy()
			f(cj)
			return cronJobProblems(cj, cm)
		}
	}
	coverage := func(f func(secret map[string]bool, cm map[string]string)) func() problems {
		return func() problems {
			s, c := secretKeys(m.secret()), map[string]string{}
			for k, v := range cm {
				c[k] = v
			}
			f(s, c)
			return coverageProblems(vars, s, c)
		}
	}
	container := func(s *corev1.PodSpec) *corev1.Container { return &s.Containers[0] }
	for name, check := range map[string]func() problems{
		"runAsNonRoot off":         pod(func(s *corev1.PodSpec) { s.SecurityContext.RunAsNonRoot = nil }),
		"root user":                pod(func(s *corev1.PodSpec) { s.SecurityContext.RunAsUser = new(int64) }),
		"no seccomp":               pod(func(s *corev1.PodSpec) { s.SecurityContext.SeccompProfile = nil }),
		"writable root filesystem": pod(func(s *corev1.PodSpec) { container(s).SecurityContext.ReadOnlyRootFilesystem = nil }),
		"privilege escalation":     pod(func(s *corev1.PodSpec) { container(s).SecurityContext.AllowPrivilegeEscalation = nil }),
		"capabilities kept":        pod(func(s *corev1.PodSpec) { container(s).SecurityContext.Capabilities.Drop = nil }),
		"hostPath volume": pod(func(s *corev1.PodSpec) {
			s.Volumes[0].VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv"}}
		}),
		"mount without volume": pod(func(s *corev1.PodSpec) { s.Volumes = s.Volumes[:len(s.Volumes)-1] }),
		"latest image":         pod(func(s *corev1.PodSpec) { container(s).Image = "ghcr.io/esimbatch/esimbatch:latest" }),
		"untagged image":       pod(func(s *corev1.PodSpec) { container(s).Image = "ghcr.io/esimbatch/esimbatch" }),
		"no memory limit":      pod(func(s *corev1.PodSpec) { delete(container(s).Resources.Limits, corev1.ResourceMemory) }),
		"no /tmp":              pod(func(s *corev1.PodSpec) { container(s).VolumeMounts = container(s).VolumeMounts[:1] }),
		"concurrency Allow":    cron(func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent }),
		"no FailJob rule": cron(func(cj *batchv1.CronJob) {
			cj.Spec.JobTemplate.Spec.PodFailurePolicy.Rules = cj.Spec.JobTemplate.Spec.PodFailurePolicy.Rules[1:]
		}),
		"deadline at RUN_DEADLINE": cron(func(cj *batchv1.CronJob) {
			d := int64(540)
			cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds = &d
		}),
		"backoffLimit default": cron(func(cj *batchv1.CronJob) { cj.Spec.JobTemplate.Spec.BackoffLimit = nil }),
		"restartPolicy OnFailure": pod(func(s *corev1.PodSpec) {
			s.RestartPolicy = corev1.RestartPolicyOnFailure
		}),
		"REPORT_DIR unmounted": cron(func(cj *batchv1.CronJob) {
			cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].VolumeMounts[0].MountPath = "/elsewhere"
		}),
		"migrate without TTL": func() problems {
			j := m.jobs[0].obj.DeepCopy()
			j.Spec.TTLSecondsAfterFinished = nil
			return jobProblems(j)
		},
		"variable missing":          coverage(func(_ map[string]bool, c map[string]string) { delete(c, "OCTANE_GROUP_NO") }),
		"secret missing":            coverage(func(s map[string]bool, _ map[string]string) { delete(s, "REPORT_PASSWORD") }),
		"secret in the ConfigMap":   coverage(func(s map[string]bool, c map[string]string) { delete(s, "OCTANE_PASSWORD"); c["OCTANE_PASSWORD"] = "x" }),
		"misspelt key":              coverage(func(_ map[string]bool, c map[string]string) { c["OCTANE_GROUPNO"] = c["OCTANE_GROUP_NO"] }),
		"test-only variable set":    coverage(func(_ map[string]bool, c map[string]string) { c["BATCH_TIME_OFFSET"] = "1h" }),
		"empty number":              coverage(func(_ map[string]bool, c map[string]string) { c["SMTP_PORT"] = "" }),
		"duration without its unit": coverage(func(_ map[string]bool, c map[string]string) { c["RUN_DEADLINE"] = "540" }),
	} {
		if p := check(); len(p) == 0 {
			t.Errorf("%s: no check noticed", name)
		} else {
			t.Logf("%s: %s", name, strings.Join(p, "; "))
		}
	}
	// And the SMTP-less case needs a persistent REPORT_DIR.
	noSMTP := map[string]string{}
	for k, v := range cm {
		noSMTP[k] = v
	}
	noSMTP["SMTP_HOST"] = ""
	if p := cronJobProblems(m.cronJobs[0].obj, noSMTP); len(p) == 0 {
		t.Error("REPORT_DIR on an emptyDir without SMTP_HOST: no check noticed")
	}
}
