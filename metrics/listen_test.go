package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A port that another process holds is one line naming metrics.listen and
// the fix.
func TestListenClash(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	_, err = Listen(addr)
	if err == nil {
		t.Fatal("Listen on a held port succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"metrics.listen: " + addr + " is already in use", "CDCRELAY_METRICS_LISTEN=", "off"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if _, err := Listen("192.0.2.1:9187"); err == nil || !strings.HasPrefix(err.Error(), "metrics.listen: cannot listen on 192.0.2.1:9187") {
		t.Errorf("foreign address: error = %v", err)
	}
}

func TestServeOnListener(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, prometheus.NewRegistry(), &Health{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz = %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel = %v", err)
	}
}
