package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health holds the state behind /healthz and /readyz. The zero value is
// alive and not ready.
type Health struct {
	ready  atomic.Bool
	failed atomic.Pointer[string]
}

// SetReady marks the relay ready (streaming) or not.
func (h *Health) SetReady(ok bool) { h.ready.Store(ok) }

// SetFailed makes /healthz fail with reason: the process is stuck and should
// be restarted.
func (h *Health) SetFailed(reason string) { h.failed.Store(&reason) }

// Handler serves /metrics from g, /healthz and /readyz from h.
func Handler(g prometheus.Gatherer, h *Health) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if r := h.failed.Load(); r != nil {
			http.Error(w, "failed: "+*r, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !h.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// Listen binds addr (metrics.listen) for Serve. The relay calls it before
// it touches anything else, so that a port held by another process (a
// second relay on the same host, most often) stops it before a topic, slot
// or publication exists. The error is one line that names metrics.listen
// and how to fix it.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("metrics.listen: %s is already in use, by another process (another cdcrelay on this host?); give each relay its own port (metrics.listen: 127.0.0.1:9188, or CDCRELAY_METRICS_LISTEN=127.0.0.1:9188), or turn the endpoint off with metrics.listen: off", addr)
	}
	return nil, fmt.Errorf("metrics.listen: cannot listen on %s: %v; set metrics.listen to a free host:port of this host, or off", addr, err)
}

// Serve serves Handler on ln until ctx is done, and closes ln.
func Serve(ctx context.Context, ln net.Listener, g prometheus.Gatherer, h *Health, log *slog.Logger) error {
	srv := &http.Server{Handler: Handler(g, h), ReadHeaderTimeout: 5 * time.Second}
	log.Info("metrics listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("metrics: serve on %s (metrics.listen): %w", ln.Addr(), err)
	}
}
