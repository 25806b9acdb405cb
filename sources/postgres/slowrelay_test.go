package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

// A relay that takes no message for longer than wal_sender_timeout keeps
// its replication connection: while the source waits to hand over a
// message it answers the server, which would otherwise end the walsender
// and make the relay start its session again. The source's connections
// run with a wal_sender_timeout of 4 s, shorter than the 10 s between the
// status updates of a source that is not waiting.
func TestSlowRelayKeepsReplicationConnection(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE slow (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO slow SELECT g, g FROM generate_series(1, 20000) g; ANALYZE slow`)
	cfg := e.config("public.slow")
	// Chunks of 20 rows: the snapshot sends far more messages than the
	// relay's channel holds, so the source blocks on it.
	cfg.Source.SnapshotChunkSize = 20
	cfg.Source.DSN += "&wal_sender_timeout=4s"
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	var stall sync.Once
	r := runLoop(t, s, nil)
	r.mu.Lock()
	r.onCkpt = func(*change.Checkpoint) { stall.Do(func() { time.Sleep(15 * time.Second) }) }
	r.mu.Unlock()
	waitFor(t, 2*time.Minute, "every row read", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		reads := 0
		for _, ev := range r.committed {
			if ev.Op == change.OpRead {
				reads++
			}
		}
		return reads >= 20000
	})
	r.mu.Lock()
	restarts, lastErr := r.restarts, r.lastErr
	r.mu.Unlock()
	if restarts != 0 {
		t.Fatalf("the source's Run failed %d times while the relay was slow; last: %v", restarts, lastErr)
	}
}
