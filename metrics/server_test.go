package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	h := &Health{}
	srv := httptest.NewServer(Handler(reg, h))
	defer srv.Close()

	if code, _ := get(t, srv, "/healthz"); code != 200 {
		t.Errorf("/healthz = %d before anything, want 200", code)
	}
	if code, _ := get(t, srv, "/readyz"); code != 503 {
		t.Errorf("/readyz = %d before streaming, want 503", code)
	}
	h.SetReady(true)
	if code, _ := get(t, srv, "/readyz"); code != 200 {
		t.Errorf("/readyz = %d while streaming, want 200", code)
	}
	h.SetFailed("fenced")
	if code, body := get(t, srv, "/healthz"); code != 503 || !strings.Contains(body, "fenced") {
		t.Errorf("/healthz = %d %q after failure", code, body)
	}

	m.Events.WithLabelValues("public.orders", "c").Add(3)
	m.Transactions.WithLabelValues("commit").Inc()
	_, body := get(t, srv, "/metrics")
	for _, want := range []string{
		`cdcrelay_events_total{op="c",table="public.orders"} 3`,
		`cdcrelay_kafka_transactions_total{result="commit"} 1`,
		"cdcrelay_source_lag_bytes", "cdcrelay_up",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Two sets of metrics in one process do not collide: nothing touches the
// global registry.
func TestNoGlobalRegistry(t *testing.T) {
	New(prometheus.NewRegistry())
	New(prometheus.NewRegistry())
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "cdcrelay_") {
			t.Fatalf("%s registered globally", mf.GetName())
		}
	}
}
