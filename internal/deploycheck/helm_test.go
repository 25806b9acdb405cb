package deploycheck

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cdcrelay/cdcrelay/config"
)

const chartDir = "deploy/helm/cdcrelay"

// chartValues are the value sets the chart must lint and render cleanly
// with: the defaults (no relay at all) and the files under ci/.
func chartValues(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{"defaults": ""}
	files, err := filepath.Glob(path(t, chartDir+"/ci/*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		out[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = f
	}
	if len(out) < 3 {
		t.Fatalf("want at least two value files in %s/ci, found %v", chartDir, files)
	}
	return out
}

func helmTemplate(t *testing.T, valuesFile string, extra ...string) (string, error) {
	t.Helper()
	args := []string{"template", "rel", path(t, chartDir), "--namespace", "cdc"}
	if valuesFile != "" {
		args = append(args, "-f", valuesFile)
	}
	args = append(args, extra...)
	out, errOut, err := run(repoRoot(t), nil, helm(t), args...)
	if err != nil {
		return out, errors.New(strings.TrimSpace(errOut) + ": " + err.Error())
	}
	return out, nil
}

func TestHelmLint(t *testing.T) {
	h := helm(t)
	for name, f := range chartValues(t) {
		t.Run(name, func(t *testing.T) {
			args := []string{"lint", "--strict", path(t, chartDir)}
			if f != "" {
				args = append(args, "-f", f)
			}
			out, errOut, err := run(repoRoot(t), nil, h, args...)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s%s", err, out, errOut)
			}
		})
	}
}

// decodeDocs parses a multi-document YAML stream into generic maps.
func decodeDocs(t *testing.T, s string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(s))
	var out []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
}

// dig walks nested maps and lists by key or index.
func dig(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestHelmTemplate(t *testing.T) {
	v := validator(t)
	for name, f := range chartValues(t) {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplate(t, f)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			res, errOut, err := run(repoRoot(t), []byte(out), v, "k8s")
			if err != nil {
				t.Fatalf("rendered manifests fail the strict Kubernetes decode: %v\n%s", err, errOut)
			}
			t.Log(strings.TrimSpace(res))
			checkRendered(t, decodeDocs(t, out), f)
			if m := regexp.MustCompile(`(?mi)^\s*[a-z_]*password\s*:\s*\S.*$`).FindString(out); m != "" {
				t.Errorf("a rendered manifest has a password key with a value: %s", strings.TrimSpace(m))
			}
		})
	}
}

// checkRendered checks the relay objects: one Recreate Deployment of one
// replica per source, locked down, probed, with the password from a Secret
// and a config the relay accepts.
func checkRendered(t *testing.T, docs []map[string]any, valuesFile string) {
	t.Helper()
	nSources := 0
	if valuesFile != "" {
		var vals struct {
			Sources []any `yaml:"sources"`
		}
		b, err := os.ReadFile(valuesFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &vals); err != nil {
			t.Fatal(err)
		}
		nSources = len(vals.Sources)
	}
	// Files the relay reads from volumes the pod mounts (TLS material) are
	// not there when the test loads the config.
	var mounts []string
	for _, d := range docs {
		if d["kind"] != "Deployment" {
			continue
		}
		ms, _ := dig(d, "spec", "template", "spec", "containers", 0, "volumeMounts").([]any)
		for _, m := range ms {
			if p, ok := dig(m, "mountPath").(string); ok && p != "/etc/cdcrelay" {
				mounts = append(mounts, p)
			}
		}
	}
	kinds := map[string]int{}
	for _, d := range docs {
		kind, _ := d["kind"].(string)
		kinds[kind]++
		name := dig(d, "metadata", "name")
		switch kind {
		case "Deployment":
			if r := dig(d, "spec", "replicas"); r != 1 {
				t.Errorf("Deployment %v: replicas %v, want 1", name, r)
			}
			if s := dig(d, "spec", "strategy", "type"); s != "Recreate" {
				t.Errorf("Deployment %v: strategy %v, want Recreate", name, s)
			}
			pod := dig(d, "spec", "template", "spec")
			if dig(pod, "securityContext", "runAsNonRoot") != true || dig(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
				t.Errorf("Deployment %v: pod securityContext lacks runAsNonRoot or seccomp RuntimeDefault", name)
			}
			c := dig(pod, "containers", 0)
			sc := dig(c, "securityContext")
			if dig(sc, "readOnlyRootFilesystem") != true || dig(sc, "runAsNonRoot") != true ||
				dig(sc, "allowPrivilegeEscalation") != false || dig(sc, "capabilities", "drop", 0) != "ALL" ||
				dig(sc, "seccompProfile", "type") != "RuntimeDefault" {
				t.Errorf("Deployment %v: container securityContext is not locked down: %v", name, sc)
			}
			if p := dig(c, "livenessProbe", "httpGet", "path"); p != "/healthz" {
				t.Errorf("Deployment %v: liveness probe path %v, want /healthz", name, p)
			}
			if p := dig(c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
				t.Errorf("Deployment %v: readiness probe path %v, want /readyz", name, p)
			}
			if p := dig(c, "ports", 0, "containerPort"); p != 9187 {
				t.Errorf("Deployment %v: metrics port %v, want 9187", name, p)
			}
			if dig(c, "resources", "requests") == nil {
				t.Errorf("Deployment %v: no resource requests", name)
			}
			env := dig(c, "env", 0)
			if dig(env, "name") != "CDCRELAY_SOURCE_PASSWORD" || dig(env, "valueFrom", "secretKeyRef", "name") == nil || dig(env, "value") != nil {
				t.Errorf("Deployment %v: CDCRELAY_SOURCE_PASSWORD does not come from a Secret: %v", name, env)
			}
		case "ConfigMap":
			raw, ok := dig(d, "data", "config.yaml").(string)
			if !ok {
				continue // the dashboard
			}
			checkRenderedConfig(t, name, raw, mounts)
		}
		if kind == "ConfigMap" && dig(d, "data", "cdcrelay.json") != nil {
			if dig(d, "metadata", "labels", "grafana_dashboard") != "1" {
				t.Errorf("dashboard ConfigMap %v lacks the label grafana_dashboard=1", name)
			}
			if !bytes.Equal([]byte(dig(d, "data", "cdcrelay.json").(string)), bytes.TrimSpace(read(t, dashboardFile))) {
				t.Errorf("dashboard ConfigMap %v does not hold %s", name, dashboardFile)
			}
		}
	}
	if kinds["Deployment"] != nSources || kinds["Service"] != nSources {
		t.Errorf("%d sources rendered %d Deployments and %d Services; want one each per source", nSources, kinds["Deployment"], kinds["Service"])
	}
}

// checkRenderedConfig loads a rendered relay config with config.Load. A
// file it cannot read is accepted when it lies under one of mounts.
func checkRenderedConfig(t *testing.T, name any, raw string, mounts []string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CDCRELAY_SOURCE_PASSWORD", "from-the-secret")
	t.Setenv("CDCRELAY_KAFKA_SASL_PASSWORD", "from-the-secret")
	cfg, err := config.Load(f)
	var errs config.Errors
	if errors.As(err, &errs) {
		var left config.Errors
		for _, e := range errs {
			if !underMount(e.Error(), mounts) {
				left = append(left, e)
			}
		}
		if len(left) == 0 {
			return // every problem is a file from a mounted volume
		}
		err = left
	}
	if err != nil {
		t.Errorf("ConfigMap %v: the relay rejects its config: %v\n%s", name, err, raw)
		return
	}
	if cfg.Metrics.Listen != "0.0.0.0:9187" {
		t.Errorf("ConfigMap %v: metrics.listen %q, want 0.0.0.0:9187", name, cfg.Metrics.Listen)
	}
}

// TestHelmRejects: values the chart must refuse, each with the reason it
// must give.
func TestHelmRejects(t *testing.T) {
	const good = `
  - name: shop
    passwordSecret: {name: s, key: k}
    config:
      source: {type: postgres, dsn: "postgres://u@db:5432/shop", tables: [public.t]}
      kafka: {brokers: ["k:9092"]}
`
	cases := []struct {
		name, values, want string
	}{
		{"password in source", `
sources:
  - name: shop
    passwordSecret: {name: s, key: k}
    config:
      source: {type: postgres, dsn: "postgres://u@db:5432/shop", tables: [public.t], password: hunter2}
      kafka: {brokers: ["k:9092"]}
`, "password"},
		{"password in dsn", `
sources:
  - name: shop
    passwordSecret: {name: s, key: k}
    config:
      source: {type: postgres, dsn: "postgres://u:hunter2@db:5432/shop", tables: [public.t]}
      kafka: {brokers: ["k:9092"]}
`, "dsn"},
		{"sasl password", `
sources:
  - name: shop
    passwordSecret: {name: s, key: k}
    config:
      source: {type: postgres, dsn: "postgres://u@db:5432/shop", tables: [public.t]}
      kafka: {brokers: ["k:9092"], sasl: {mechanism: PLAIN, username: u, password: hunter2}}
`, "password"},
		{"no password secret", `
sources:
  - name: shop
    config:
      source: {type: postgres, dsn: "postgres://u@db:5432/shop", tables: [public.t]}
      kafka: {brokers: ["k:9092"]}
`, "passwordSecret"},
		{"bad name", `
sources:
  - name: Shop_DB
    passwordSecret: {name: s, key: k}
    config:
      source: {type: postgres, dsn: "postgres://u@db:5432/shop", tables: [public.t]}
      kafka: {brokers: ["k:9092"]}
`, "name"},
		{"duplicate name", "sources:" + good + good, `name "shop" is used twice`},
		{"duplicate id", "sources:" + good + strings.Replace(good, "name: shop", "name: other\n    # same id\n", 1) +
			strings.Replace(good, "name: shop", "name: third", 1) + `
  - name: shop-x
    passwordSecret: {name: s, key: k}
    config:
      id: shop
      source: {type: postgres, dsn: "postgres://u@db:5432/shop", tables: [public.t]}
      kafka: {brokers: ["k:9092"]}
`, `id "shop" is used by two sources`},
		{"embedded broker", `
sources:
  - name: shop
    passwordSecret: {name: s, key: k}
    config:
      source: {type: postgres, dsn: "postgres://u@db:5432/shop", tables: [public.t]}
      kafka: {brokers: ["k:9092"], embedded: {enabled: true}}
`, "embedded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(f, []byte(tc.values), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := helmTemplate(t, f)
			if err == nil {
				t.Fatalf("helm template accepted the values; rendered:\n%s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template failed, but the error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
}

// TestHelmNotes renders NOTES.txt, which helm template leaves out, by
// wrapping it into a ConfigMap in a copy of the chart.
func TestHelmNotes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cdcrelay")
	if err := os.CopyFS(dir, os.DirFS(path(t, chartDir))); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	def := "{{- define \"notescheck\" -}}\n" + string(notes) + "\n{{- end -}}\n"
	wrap := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include \"notescheck\" . | quote }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "_notescheck.tpl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "templates", "notescheck.yaml"), []byte(wrap), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, f := range chartValues(t) {
		t.Run(name, func(t *testing.T) {
			args := []string{"template", "rel", dir, "--show-only", "templates/notescheck.yaml"}
			if f != "" {
				args = append(args, "-f", f)
			}
			out, errOut, err := run(repoRoot(t), nil, helm(t), args...)
			if err != nil {
				t.Fatalf("rendering NOTES.txt: %v\n%s", err, errOut)
			}
			var cm struct {
				Data map[string]string `yaml:"data"`
			}
			if err := yaml.Unmarshal([]byte(out), &cm); err != nil {
				t.Fatal(err)
			}
			text := cm.Data["notes"]
			if strings.Contains(text, "<no value>") {
				t.Errorf("NOTES.txt renders <no value>:\n%s", text)
			}
			want := "read_committed"
			if f == "" {
				want = "sources` is empty"
			}
			if !strings.Contains(text, want) {
				t.Errorf("NOTES.txt does not mention %q:\n%s", want, text)
			}
		})
	}
}

// TestK8sValidatorRejects guards the guard: the strict decoder must refuse a
// misspelt field and a selector that does not match its pods.
func TestK8sValidatorRejects(t *testing.T) {
	v := validator(t)
	cases := map[string]string{
		"unknown field": `apiVersion: v1
kind: Service
metadata: {name: x}
spec:
  ports: [{name: metrics, port: 9187}]
  selectr: {a: b}
`,
		"selector mismatch": `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec:
      containers: [{name: c, image: "i:1"}]
`,
		"unknown kind": `apiVersion: example.com/v1
kind: Widget
metadata: {name: x}
`,
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			if out, _, err := run(repoRoot(t), []byte(doc), v, "k8s"); err == nil {
				t.Errorf("the validator accepted it: %s", out)
			}
		})
	}
}

// TestKubeconform runs kubeconform on the rendered manifests when JSON
// schemas for it are at hand: KUBECONFORM_SCHEMA_LOCATION names them (a
// directory or URL template, as kubeconform's -schema-location takes). They
// cannot be downloaded where the tests usually run, so without it the test
// is skipped; TestHelmTemplate's strict decode into k8s.io/api types covers
// the same ground offline.
func TestKubeconform(t *testing.T) {
	loc := os.Getenv("KUBECONFORM_SCHEMA_LOCATION")
	if loc == "" {
		t.Skip("KUBECONFORM_SCHEMA_LOCATION is not set: no Kubernetes JSON schemas offline (the strict k8s.io/api decode in TestHelmTemplate runs instead)")
	}
	kc := kubeconform(t)
	for name, f := range chartValues(t) {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplate(t, f)
			if err != nil {
				t.Fatal(err)
			}
			res, errOut, err := run(repoRoot(t), []byte(out), kc,
				"-strict", "-summary", "-schema-location", loc, "-skip", "ServiceMonitor", "-")
			if err != nil {
				t.Fatalf("kubeconform: %v\n%s%s", err, res, errOut)
			}
			t.Log(strings.TrimSpace(res))
		})
	}
}

func underMount(msg string, mounts []string) bool {
	for _, m := range mounts {
		if strings.Contains(msg, "cannot read "+strings.TrimSuffix(m, "/")+"/") {
			return true
		}
	}
	return false
}
