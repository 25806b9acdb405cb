package deploycheck

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDeployDoc: the quick start names the steps it promises, and every
// repository path it mentions exists.
func TestDeployDoc(t *testing.T) {
	doc := string(read(t, "docs/deploy.md"))
	for _, want := range []string{
		"docker compose up -d --build",
		"http://localhost:8081",
		"docker compose kill taskmanager",
		"docker compose up -d taskmanager",
		"pg_stat_user_tables",
		"pg_stat_statements",
		"read_committed",
		"KAFKA_CONNECTOR_SHA512",
		"kafka-consumer-groups.sh",
		"no Docker engine",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/deploy.md does not mention %q", want)
		}
	}
	for _, m := range regexp.MustCompile(`\b(?:deploy|internal)/[\w./*-]+[\w*]`).FindAllString(doc, -1) {
		matches, _ := filepath.Glob(path(t, m))
		if len(matches) == 0 {
			t.Errorf("docs/deploy.md mentions %s, which does not exist", m)
		}
	}
}

// TestShellScripts: the scripts the containers run parse as bash.
func TestShellScripts(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	files, err := filepath.Glob(path(t, "deploy/*/*.sh"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts under deploy/ (%v)", err)
	}
	for _, f := range files {
		if _, errOut, err := run(repoRoot(t), nil, bash, "-n", f); err != nil {
			t.Errorf("%s: %v\n%s", f, err, errOut)
		}
	}
}
