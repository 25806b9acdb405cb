package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The verify command's usage errors exit 2 before it connects anywhere;
// what it compares is tested in the verify package and in e2e.
func TestVerifyUsageErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "relay.yaml")
	const yaml = `id: shop
source:
  type: postgres
  dsn: postgres://cdcrelay@127.0.0.1:1/shop?sslmode=disable
  tables: [public.orders]
kafka:
  brokers: ["127.0.0.1:1"]
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no config", []string{"verify"}, "--config is required"},
		{"not one table", []string{"verify", "--config", cfg, "--table", "public.*"}, "name one table as schema.table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.stderr)
			}
		})
	}
}
