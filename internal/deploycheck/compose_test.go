package deploycheck

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const composeFile = "docker-compose.yml"

type composeHealthcheck struct {
	Test    []string `yaml:"test"`
	Disable bool     `yaml:"disable"`
}

type composeService struct {
	Image       string                       `yaml:"image"`
	Build       any                          `yaml:"build"`
	Command     any                          `yaml:"command"`
	Environment map[string]string            `yaml:"environment"`
	Healthcheck *composeHealthcheck          `yaml:"healthcheck"`
	DependsOn   map[string]map[string]string `yaml:"depends_on"`
	Restart     string                       `yaml:"restart"`
	ReadOnly    bool                         `yaml:"read_only"`
	CapDrop     []string                     `yaml:"cap_drop"`
	Volumes     []string                     `yaml:"volumes"`
	Profiles    []string                     `yaml:"profiles"`
}

type compose struct {
	Services map[string]composeService `yaml:"services"`
}

func loadCompose(t *testing.T) (compose, *yaml.Node) {
	t.Helper()
	raw := read(t, composeFile)
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: %v (depends_on must use the long form with a condition)", composeFile, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return c, &doc
}

// relayServices are the services that run cdcrelay.
func relayServices(c compose) []string {
	var out []string
	for name, s := range c.Services {
		if strings.HasPrefix(name, "cdcrelay-") {
			out = append(out, name)
		}
		_ = s
	}
	slices.Sort(out)
	return out
}

func TestComposeServices(t *testing.T) {
	c, _ := loadCompose(t)
	for _, want := range []string{
		"kafka", "kafka-init", "postgres", "mysql", "cdcrelay-postgres", "cdcrelay-mysql",
		"jobmanager", "taskmanager", "sql-client", "prometheus", "grafana",
	} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("service %q is missing", want)
		}
	}
}

func TestComposeHealthchecks(t *testing.T) {
	c, _ := loadCompose(t)
	for name, s := range c.Services {
		hc := s.Healthcheck
		switch {
		case hc == nil:
			t.Errorf("service %s has no healthcheck", name)
		case hc.Disable:
			t.Errorf("service %s disables its healthcheck", name)
		case len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL"):
			t.Errorf("service %s: healthcheck test %q should start with CMD or CMD-SHELL and name a command", name, hc.Test)
		}
	}
}

// oneShot tells whether a service is meant to run to completion.
func oneShot(s composeService) bool { return s.Restart == "no" }

func TestComposeDependsOn(t *testing.T) {
	c, _ := loadCompose(t)
	for name, s := range c.Services {
		for dep, opts := range s.DependsOn {
			target, ok := c.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
				continue
			}
			cond := opts["condition"]
			switch {
			case cond == "service_healthy":
			case cond == "service_completed_successfully" && oneShot(target):
			case cond == "service_completed_successfully":
				t.Errorf("%s waits for %s to complete, but %s is not a one-shot service (restart: \"no\")", name, dep, dep)
			default:
				t.Errorf("%s depends on %s with condition %q; use service_healthy", name, dep, cond)
			}
			if len(target.Profiles) > 0 && !sameProfiles(s.Profiles, target.Profiles) {
				t.Errorf("%s depends on %s, which only runs with profiles %v", name, dep, target.Profiles)
			}
		}
	}
	// The start-up order the quick start relies on.
	edges := map[string][]string{
		"kafka-init":        {"kafka"},
		"cdcrelay-postgres": {"kafka", "postgres"},
		"cdcrelay-mysql":    {"kafka", "mysql"},
		"taskmanager":       {"jobmanager"},
		"sql-client":        {"jobmanager", "taskmanager", "kafka-init", "cdcrelay-postgres", "cdcrelay-mysql"},
		"grafana":           {"prometheus"},
	}
	for svc, deps := range edges {
		for _, d := range deps {
			if _, ok := c.Services[svc].DependsOn[d]; !ok {
				t.Errorf("%s does not wait for %s", svc, d)
			}
		}
	}
}

func sameProfiles(a, b []string) bool {
	for _, p := range b {
		if !slices.Contains(a, p) {
			return false
		}
	}
	return true
}

var versionTag = regexp.MustCompile(`^v?\d+\.\d+`)

// TestComposeImagesPinned: every image pulled from a registry names a
// version (at least major.minor), never latest. Images built here carry a
// local tag and are exempt.
func TestComposeImagesPinned(t *testing.T) {
	c, _ := loadCompose(t)
	for name, s := range c.Services {
		if s.Build != nil {
			continue
		}
		if s.Image == "" {
			t.Errorf("%s has neither image nor build", name)
			continue
		}
		if err := checkImageRef(s.Image, false); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

var sha256Digest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// checkImageRef requires a tag other than latest, and pinning: a sha256
// digest (required when digest is true) or else a version tag of at least
// major.minor.
func checkImageRef(ref string, digest bool) error {
	name, dig, hasDigest := strings.Cut(ref, "@")
	if hasDigest && !sha256Digest.MatchString(dig) {
		return errorf("image %s: %q is not a sha256 digest", ref, dig)
	}
	if digest && !hasDigest {
		return errorf("image %s is not pinned by a sha256 digest", ref)
	}
	slash := strings.LastIndex(name, "/")
	colon := strings.LastIndex(name, ":")
	if colon <= slash {
		return errorf("image %s has no tag", ref)
	}
	tag := name[colon+1:]
	if tag == "latest" {
		return errorf("image %s uses the latest tag", ref)
	}
	if !hasDigest && !versionTag.MatchString(tag) {
		return errorf("image %s: tag %q is not a pinned version", ref, tag)
	}
	return nil
}

// TestComposeFlinkWithoutCheckpoints: no Flink service turns checkpointing
// on, the file says it is off, and jobs restart after a task manager loss
// (without checkpoints Flink's default restart strategy is none).
func TestComposeFlinkWithoutCheckpoints(t *testing.T) {
	c, _ := loadCompose(t)
	raw := string(read(t, composeFile))
	if !regexp.MustCompile(`(?i)#.*checkpointing is off`).MatchString(raw) {
		t.Error("docker-compose.yml should say in a comment that Flink checkpointing is OFF")
	}
	flink := 0
	for name, s := range c.Services {
		props, ok := s.Environment["FLINK_PROPERTIES"]
		if !ok {
			continue
		}
		flink++
		kv := flinkProperties(props)
		for k := range kv {
			if strings.HasPrefix(k, "execution.checkpointing.") || k == "state.checkpoints.dir" {
				t.Errorf("%s sets %s: the demo runs without checkpoints", name, k)
			}
		}
		if name == "jobmanager" {
			if kv["restart-strategy.type"] == "" || kv["restart-strategy.type"] == "none" {
				t.Errorf("jobmanager sets no restart strategy; without checkpoints a failed job would stay failed")
			}
		}
	}
	if flink < 3 {
		t.Errorf("found %d Flink services with FLINK_PROPERTIES, want job manager, task manager and SQL client", flink)
	}
}

// flinkProperties parses FLINK_PROPERTIES' "key: value" lines.
func flinkProperties(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

const demoPasswords = "x-demo-only-passwords"

// TestComposePasswords: a password value appears only in the demo-only block,
// each overridable from the environment; services reference them by alias,
// and each relay gets its password through CDCRELAY_SOURCE_PASSWORD only.
func TestComposePasswords(t *testing.T) {
	c, doc := loadCompose(t)
	root := doc.Content[0]
	raw := string(read(t, composeFile))
	if !strings.Contains(raw, "DEMO ONLY") {
		t.Error("the demo password block should be marked DEMO ONLY in a comment")
	}
	anchors := map[string]bool{}
	block := mapValue(root, demoPasswords)
	if block == nil {
		t.Fatalf("no %s block", demoPasswords)
	}
	envDefault := regexp.MustCompile(`^\$\{[A-Z][A-Z0-9_]*:-[^}]+\}$`)
	for i := 0; i+1 < len(block.Content); i += 2 {
		v := block.Content[i+1]
		if v.Anchor == "" {
			t.Errorf("%s.%s has no anchor", demoPasswords, block.Content[i].Value)
		}
		anchors[v.Anchor] = true
		if !envDefault.MatchString(v.Value) {
			t.Errorf("%s.%s = %q: write it as ${VARIABLE:-default} so it can be overridden", demoPasswords, block.Content[i].Value, v.Value)
		}
		if !strings.Contains(v.Value, "demo-only") {
			t.Errorf("%s.%s: the default %q should say demo-only", demoPasswords, block.Content[i].Value, v.Value)
		}
	}
	services := mapValue(root, "services")
	walkPairs(services, func(path []string, k, v *yaml.Node) {
		if !strings.Contains(strings.ToLower(k.Value), "password") || strings.HasSuffix(strings.ToLower(k.Value), "_file") {
			return
		}
		where := strings.Join(append(path, k.Value), ".")
		if v.Kind != yaml.AliasNode || !anchors[v.Value] {
			t.Errorf("%s: a password must be an alias into %s, not %q", where, demoPasswords, v.Value)
		}
	})
	for _, name := range relayServices(c) {
		env := c.Services[name].Environment
		if env["CDCRELAY_SOURCE_PASSWORD"] == "" {
			t.Errorf("%s: CDCRELAY_SOURCE_PASSWORD is not set", name)
		}
		for k := range env {
			if strings.Contains(k, "PASSWORD") && k != "CDCRELAY_SOURCE_PASSWORD" && k != "CDCRELAY_KAFKA_SASL_PASSWORD" {
				t.Errorf("%s: unexpected password variable %s", name, k)
			}
		}
	}
}

// mapValue returns the value node of key in mapping node m.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// walkPairs calls f for every key-value pair under n, not following aliases.
func walkPairs(n *yaml.Node, f func(path []string, k, v *yaml.Node)) {
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				f(path, k, v)
				walk(v, append(slices.Clone(path), k.Value))
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		}
	}
	if n != nil {
		walk(n, nil)
	}
}

// TestComposeRelays: each relay runs read-only with no capabilities, reads a
// read-only config from deploy/configs, and is probed by its own binary.
func TestComposeRelays(t *testing.T) {
	c, _ := loadCompose(t)
	relays := relayServices(c)
	if len(relays) != 2 {
		t.Fatalf("relay services %v, want one per source database (2)", relays)
	}
	for _, name := range relays {
		s := c.Services[name]
		if s.Build == nil {
			t.Errorf("%s is not built from the Dockerfile", name)
		}
		if !s.ReadOnly {
			t.Errorf("%s: read_only is not true", name)
		}
		if !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: cap_drop does not drop ALL", name)
		}
		var cfg string
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) == 3 && parts[1] == "/etc/cdcrelay/config.yaml" {
				cfg = parts[0]
				if parts[2] != "ro" {
					t.Errorf("%s: the config is mounted %q, want ro", name, parts[2])
				}
			}
		}
		if !strings.HasPrefix(cfg, "./deploy/configs/") {
			t.Errorf("%s: no config from ./deploy/configs mounted at /etc/cdcrelay/config.yaml", name)
		}
		if hc := s.Healthcheck; hc == nil || len(hc.Test) < 3 || hc.Test[1] != "/cdcrelay" || hc.Test[2] != "healthcheck" {
			t.Errorf("%s: the healthcheck should run /cdcrelay healthcheck", name)
		}
	}
}

// TestComposeDatabases: the settings the relays require of their sources.
func TestComposeDatabases(t *testing.T) {
	c, _ := loadCompose(t)
	flat := func(v any) string {
		var parts []string
		if l, ok := v.([]any); ok {
			for _, x := range l {
				parts = append(parts, strings.TrimSpace(toString(x)))
			}
		}
		return " " + strings.Join(parts, " ") + " "
	}
	pg := flat(c.Services["postgres"].Command)
	for _, want := range []string{" wal_level=logical ", "shared_preload_libraries=pg_stat_statements"} {
		if !strings.Contains(pg, want) {
			t.Errorf("postgres command lacks %q: %s", strings.TrimSpace(want), pg)
		}
	}
	my := flat(c.Services["mysql"].Command)
	for _, want := range []string{
		" --binlog-format=ROW ", " --binlog-row-image=FULL ", " --binlog-row-metadata=FULL ",
		" --gtid-mode=ON ", " --enforce-gtid-consistency=ON ",
	} {
		if !strings.Contains(my, want) {
			t.Errorf("mysql command lacks %q: %s", strings.TrimSpace(want), my)
		}
	}
	if img := c.Services["mysql"].Image; !strings.HasPrefix(img, "mysql:8.4.") {
		t.Errorf("mysql image %s, want MySQL 8.4", img)
	}
	if img := c.Services["kafka"].Image; !strings.HasPrefix(img, "apache/kafka:4.") {
		t.Errorf("kafka image %s, want apache/kafka 4.x", img)
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

// TestComposeBindMounts: every file or directory mounted from the
// repository exists.
func TestComposeBindMounts(t *testing.T) {
	c, _ := loadCompose(t)
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./") {
				continue
			}
			if !exists(t, strings.TrimPrefix(src, "./")) {
				t.Errorf("%s mounts %s, which does not exist", name, src)
			}
		}
	}
}

// TestComposeSpec loads the file with the Compose specification's own
// loader (compose-go, as docker compose does), with and without the
// monitoring profile.
func TestComposeSpec(t *testing.T) {
	v := validator(t)
	for _, profiles := range [][]string{nil, {"monitoring"}} {
		args := append([]string{"compose", path(t, composeFile)}, profiles...)
		out, errOut, err := run(repoRoot(t), nil, v, args...)
		if err != nil {
			t.Errorf("compose spec check with profiles %v: %v\n%s%s", profiles, err, out, errOut)
			continue
		}
		t.Log(strings.TrimSpace(out))
	}
}
