package deploycheck

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The Dockerfile rules below stand in for hadolint, which cannot be had
// here: base images pinned (a version tag, never latest; the runtime image
// also by digest), a non-root USER in the final stage, a HEALTHCHECK, no ADD
// of a URL, and the build the project documents.

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

func parseDockerfile(t *testing.T, rel string) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(read(t, rel)), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// stages splits instructions at each FROM; stage names map to their index.
func stages(ins []instruction) ([][]instruction, map[string]bool) {
	var out [][]instruction
	names := map[string]bool{}
	for _, in := range ins {
		if in.cmd == "FROM" {
			out = append(out, nil)
			f := strings.Fields(in.args)
			if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				names[f[len(f)-1]] = true
			}
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], in)
		}
	}
	return out, names
}

// fromImage is the image of a FROM, flags and stage name left out.
func fromImage(args string) string {
	for _, f := range strings.Fields(args) {
		if !strings.HasPrefix(f, "--") {
			return f
		}
	}
	return ""
}

// checkDockerfile applies the rules shared by every Dockerfile here.
func checkDockerfile(t *testing.T, rel string, finalDigest bool) [][]instruction {
	t.Helper()
	ins := parseDockerfile(t, rel)
	st, names := stages(ins)
	if len(st) == 0 {
		t.Fatalf("%s: no FROM", rel)
	}
	for i, s := range st {
		img := fromImage(s[0].args)
		if names[img] {
			continue
		}
		if err := checkImageRef(img, finalDigest && i == len(st)-1); err != nil {
			t.Errorf("%s:%d: FROM: %v", rel, s[0].line, err)
		}
	}
	for _, in := range ins {
		if in.cmd == "ADD" && regexp.MustCompile(`(?i)(https?://|git@|\.git\b)`).MatchString(in.args) {
			t.Errorf("%s:%d: ADD of a URL; download with a checksum in RUN, or COPY", rel, in.line)
		}
	}
	final := st[len(st)-1]
	user := ""
	for _, in := range final {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("%s: the final stage runs as %q; set a non-root USER", rel, user)
	}
	return st
}

func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil {
		t.Errorf("line %d: %s %s is not in exec (JSON) form: %v", in.line, in.cmd, in.args, err)
	}
	return v
}

func TestDockerfile(t *testing.T) {
	st := checkDockerfile(t, "Dockerfile", true)
	final := st[len(st)-1]
	var health, expose, entry, cmd *instruction
	for i := range final {
		switch final[i].cmd {
		case "HEALTHCHECK":
			health = &final[i]
		case "EXPOSE":
			expose = &final[i]
		case "ENTRYPOINT":
			entry = &final[i]
		case "CMD":
			cmd = &final[i]
		}
	}
	switch {
	case health == nil:
		t.Error("no HEALTHCHECK in the final stage")
	case strings.HasPrefix(strings.ToUpper(health.args), "NONE"):
		t.Error("HEALTHCHECK NONE")
	default:
		_, probe, _ := strings.Cut(health.args, "CMD ")
		got := execForm(t, instruction{line: health.line, cmd: "HEALTHCHECK CMD", args: probe})
		if len(got) < 4 || got[0] != "/cdcrelay" || got[1] != "healthcheck" || !slices.Contains(got, "http://127.0.0.1:9187/healthz") {
			t.Errorf("HEALTHCHECK runs %q, want /cdcrelay healthcheck --url http://127.0.0.1:9187/healthz", got)
		}
	}
	if expose == nil || !slices.Contains(strings.Fields(expose.args), "9187") {
		t.Error("EXPOSE 9187 is missing")
	}
	if entry == nil || !slices.Equal(execForm(t, *entry), []string{"/cdcrelay"}) {
		t.Error(`ENTRYPOINT should be ["/cdcrelay"]`)
	}
	if cmd == nil || !slices.Equal(execForm(t, *cmd), []string{"run", "--config", "/etc/cdcrelay/config.yaml"}) {
		t.Error(`CMD should be ["run", "--config", "/etc/cdcrelay/config.yaml"]`)
	}
	if img := fromImage(final[0].args); !strings.HasPrefix(img, "gcr.io/distroless/static") || !strings.Contains(img, ":nonroot") {
		t.Errorf("runtime image %s, want distroless static, nonroot", img)
	}

	var build string
	hasVersionArg := false
	for _, s := range st[:len(st)-1] {
		for _, in := range s {
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				build = in.args
			}
			if in.cmd == "ARG" && strings.HasPrefix(in.args, "VERSION") {
				hasVersionArg = true
			}
		}
	}
	if !hasVersionArg {
		t.Error("the build stage has no ARG VERSION")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.version=${VERSION}"`, "./cmd/cdcrelay"} {
		if !strings.Contains(build, want) {
			t.Errorf("the go build does not use %s: %s", want, build)
		}
	}
}

// TestFlinkDockerfile: the connector comes from a build stage that runs
// Maven on the runner's project, and the final stage checks it against a
// pinned SHA-512; nothing is downloaded from a written-down URL.
func TestFlinkDockerfile(t *testing.T) {
	st := checkDockerfile(t, "deploy/flink/Dockerfile", false)
	var sha, check string
	for _, in := range st[len(st)-1] {
		if in.cmd == "ARG" && strings.HasPrefix(in.args, "KAFKA_CONNECTOR_SHA512") {
			_, sha, _ = strings.Cut(in.args, "=")
		}
		if in.cmd == "RUN" && strings.Contains(in.args, "flink-sql-connector-kafka") {
			check = in.args
		}
	}
	if !regexp.MustCompile(`^[0-9a-f]{128}$`).MatchString(sha) {
		t.Errorf("KAFKA_CONNECTOR_SHA512 default %q is not a SHA-512 (128 hex digits)", sha)
	}
	if !strings.Contains(check, "sha512sum -c") {
		t.Error("the connector jar is not checked with sha512sum -c")
	}
	mvn := false
	for _, s := range st[:len(st)-1] {
		for _, in := range s {
			if in.cmd == "COPY" && strings.Contains(in.args, "jvm/flink/pom.xml") {
				mvn = true
			}
		}
	}
	if !mvn {
		t.Error("no build stage copies jvm/flink/pom.xml to resolve the connector with Maven")
	}
	if regexp.MustCompile(`https?://`).Match(read(t, "deploy/flink/Dockerfile")) {
		t.Error("deploy/flink/Dockerfile names a URL; the connector is resolved by Maven")
	}
}

func TestDockerignore(t *testing.T) {
	lines := strings.Fields(string(read(t, ".dockerignore")))
	for _, want := range []string{".git", ".env", "deploy/"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
