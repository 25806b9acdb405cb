package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every subcommand has --help, exits 0 with it, and never shows a secret,
// even when the secrets are in the environment.
func TestHelpEverySubcommand(t *testing.T) {
	const secret = "env-secret-value-0042"
	t.Setenv("CDCRELAY_SOURCE_PASSWORD", secret)
	t.Setenv("CDCRELAY_KAFKA_SASL_PASSWORD", secret)
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), []string{name, "--help"}, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			all := out.String() + errb.String()
			if !strings.Contains(all, "usage: cdcrelay "+name) {
				t.Fatalf("no usage line:\n%s", all)
			}
			if strings.Contains(all, secret) {
				t.Fatalf("--help shows a secret")
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "subcommands:") {
		t.Fatalf("top-level --help: %d\n%s", code, errb.String())
	}
}

// A bad config exits 2 with one line per problem, and the exit code
// survives to the process.
func TestBadConfigExitsTwo(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"run", "--config", "../../config/testdata/three-mistakes.bad.yaml"}, &out, &errb)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, errb.String())
	}
	for _, key := range []string{"\nid: ", "\nsource.type: ", "\nformat.value: "} {
		if !strings.Contains(errb.String(), key) {
			t.Errorf("no line for %q in:\n%s", strings.TrimSpace(key), errb.String())
		}
	}
	if n := strings.Count(strings.TrimSpace(errb.String()), "\n"); n != 3 {
		t.Errorf("%d lines after the heading, want 3:\n%s", n, errb.String())
	}
}
