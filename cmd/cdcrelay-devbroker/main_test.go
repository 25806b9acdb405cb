package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDevBrokerPasswordEnv(t *testing.T) {
	for name, want := range map[string]string{
		"alice":     "CDCRELAY_DEV_BROKER_PASSWORD_ALICE",
		"relay-1":   "CDCRELAY_DEV_BROKER_PASSWORD_RELAY_1",
		"a.b_c":     "CDCRELAY_DEV_BROKER_PASSWORD_A_B_C",
		"Flink Job": "CDCRELAY_DEV_BROKER_PASSWORD_FLINK_JOB",
	} {
		if got := devBrokerPasswordEnv(name); got != want {
			t.Errorf("%q: %s, want %s", name, got, want)
		}
	}
}

func TestDevBrokerUsers(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CDCRELAY_DEV_BROKER_PASSWORD_ALICE": "from-env"}
	getenv := func(k string) string { return env[k] }

	for _, tc := range []struct {
		name    string
		specs   []string
		files   []string
		want    []string // MECH:NAME=PASSWORD
		wantErr []string
	}{
		{"none", nil, nil, nil, nil},
		{"env", []string{"PLAIN:alice"}, nil, []string{"PLAIN:alice=from-env"}, nil},
		{"file-wins", []string{"scram-sha-512:alice"}, []string{"alice=" + pw}, []string{"SCRAM-SHA-512:alice=from-file"}, nil},
		{"no-password", []string{"PLAIN:bob"}, nil, nil, []string{"no password", "CDCRELAY_DEV_BROKER_PASSWORD_BOB"}},
		{"bad-spec", []string{"bob"}, nil, nil, []string{"want MECHANISM:NAME"}},
		{"file-for-nobody", []string{"PLAIN:alice"}, []string{"carol=" + pw}, nil, []string{"no --sasl-user has that name"}},
		{"bad-file-flag", []string{"PLAIN:alice"}, []string{"alice"}, nil, []string{"want NAME=FILE"}},
		{"missing-file", []string{"PLAIN:alice"}, []string{"alice=" + filepath.Join(dir, "nope")}, nil, []string{"no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users, err := devBrokerUsers(tc.specs, tc.files, getenv)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "from-env") || strings.Contains(err.Error(), "from-file") {
					t.Errorf("error shows a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range users {
				got = append(got, u.String()+"="+u.Password)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDevBrokerUsage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"help", []string{"--help"}, 0, "Durability"},
		{"positional", []string{"extra"}, 2, "unexpected arguments"},
		{"sync-without-dir", []string{"--listen", "127.0.0.1:0", "--sync"}, 2, "sync_writes: needs data_dir"},
		{"bad-user", []string{"--sasl-user", "GSSAPI:x"}, 2, "is not one of"},
		{"no-password", []string{"--sasl-user", "PLAIN:nopw_user_for_test"}, 2, "CDCRELAY_DEV_BROKER_PASSWORD_NOPW_USER_FOR_TEST"},
		{"bad-log-level", []string{"--log-level", "loud"}, 2, "--log-level"},
		{"bad-flag", []string{"--nope"}, 2, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.inStderr) {
				t.Fatalf("exit %d, want %d; stderr does not contain %q:\n%s", code, tc.code, tc.inStderr, stderr.String())
			}
		})
	}
}

// outFile is a file the command writes to while the test reads it.
type outFile struct{ *os.File }

func newOutFile(t *testing.T, name string) outFile {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return outFile{f}
}

// String returns what was written so far.
func (f outFile) String() string {
	b, _ := os.ReadFile(f.Name())
	return string(b)
}

// TestDevBrokerRun runs the command in process: it prints the ready line
// and exits 0 once its context is cancelled.
func TestDevBrokerRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newOutFile(t, "stdout"), newOutFile(t, "stderr")
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, stdout, stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.HasPrefix(stdout.String(), "dev-broker listening on 127.0.0.1:") {
		if time.Now().After(deadline) {
			t.Fatalf("no ready line; stdout %q, stderr:\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if lines := strings.Count(stdout.String(), "\n"); lines != 1 {
		t.Errorf("stdout has %d lines, want exactly the ready line: %q", lines, stdout.String())
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d after cancel; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not return after cancel")
	}
	if !strings.Contains(stderr.String(), "dev-broker stopped") {
		t.Errorf("stderr does not log the stop:\n%s", stderr.String())
	}
}
