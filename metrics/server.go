package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
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

// Serve listens on addr and serves Handler until ctx is done.
func Serve(ctx context.Context, addr string, g prometheus.Gatherer, h *Health, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.New("metrics: listen on " + addr + " (metrics.listen): " + err.Error())
	}
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
		return err
	}
}
