package postgres

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

// TestBigTransaction streams one 1,000,000-row transaction through Run with
// a consumer that keeps nothing: the heap stays bounded because events are
// sent as they are decoded, and the checkpoint comes once, at the commit.
func TestBigTransaction(t *testing.T) {
	rows := 1000000
	if testing.Short() || raceEnabled {
		rows = 100000
	}
	e := startPG(t)
	e.exec(t, `CREATE TABLE big (id int PRIMARY KEY, pad text)`)
	cfg := e.config("public.big")
	cfg.Source.Snapshot = "never"
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.exec(t, `INSERT INTO big SELECT g, repeat('p', 100) FROM generate_series(1, `+strconv.Itoa(rows)+`) g`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan change.Message, 1024)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, nil, out) }()
	var peakHeap uint64
	var ms runtime.MemStats
	events, ckpts := 0, 0
	start := time.Now()
	for ckpts == 0 {
		select {
		case m := <-out:
			if m.Event != nil {
				events++
				if events%50000 == 0 {
					runtime.ReadMemStats(&ms)
					peakHeap = max(peakHeap, ms.HeapInuse)
				}
			} else {
				ckpts++
				s.Ack(m.Checkpoint)
			}
		case err := <-done:
			t.Fatalf("Run: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatalf("stalled after %d events", events)
		}
	}
	took := time.Since(start)
	if events != rows {
		t.Fatalf("%d events before the checkpoint, want %d", events, rows)
	}
	t.Logf("%d-row transaction: %v (%.0f rows/s), peak heap in use %d MiB, peak RSS %s",
		rows, took.Round(time.Millisecond), float64(rows)/took.Seconds(), peakHeap>>20, vmHWM())
	if peakHeap > 200<<20 {
		t.Errorf("peak heap %d MiB: the transaction is being held", peakHeap>>20)
	}
	cancel()
	<-done
}

func vmHWM() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "unknown"
}
