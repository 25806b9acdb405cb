package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/failed", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "failed: fenced", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/healthz", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A port with nothing listening: bind one, note it, close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()

	cases := []struct {
		name    string
		url     string
		timeout time.Duration
		wantErr string
	}{
		{"ok", srv.URL + "/healthz", time.Second, ""},
		{"503", srv.URL + "/failed", time.Second, "503"},
		{"404", srv.URL + "/nope", time.Second, "404"},
		{"timeout", srv.URL + "/slow", 100 * time.Millisecond, "deadline exceeded"},
		{"redirect is not followed", srv.URL + "/moved", time.Second, "302"},
		{"refused", closed, time.Second, "refused"},
		{"bad url", "://nope", time.Second, "missing protocol scheme"},
		{"bad timeout", srv.URL + "/healthz", 0, "must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := probe(context.Background(), tc.url, tc.timeout)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("probe: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("probe succeeded, want an error mentioning %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("probe error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

// The exit codes are what Docker's HEALTHCHECK reads: 0 healthy, 1 not.
func TestHealthcheckExitCode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"healthcheck", "--url", srv.URL + "/healthz"}, 0},
		{[]string{"healthcheck", "--url", srv.URL + "/readyz"}, 1},
		{[]string{"healthcheck", "--url", srv.URL + "/healthz", "--timeout", "-1s"}, 1},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		if got := run(context.Background(), tc.args, &stdout, &stderr); got != tc.want {
			t.Errorf("cdcrelay %s: exit %d, want %d; stderr: %s", strings.Join(tc.args, " "), got, tc.want, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("cdcrelay %s wrote to stdout: %q", strings.Join(tc.args, " "), stdout.String())
		}
	}
}
