package postgres

import (
	"context"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/change"
)

// TestSnapshotChunkMissingCommittedTransaction reads the first chunk with a
// snapshot that does not see an UPDATE whose commit precedes the chunk's
// low watermark in the stream, which is what a committing backend that is
// slow to make its commit visible produces. The stream drops that UPDATE
// (its key is beyond the snapshot's progress), so unless the chunk is read
// again, the key's last version in the stream is the one before the UPDATE.
func TestSnapshotChunkMissingCommittedTransaction(t *testing.T) {
	const updated = 50
	e := startPG(t)
	e.exec(t, `CREATE TABLE vers (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO vers SELECT g, 0 FROM generate_series(1, 1000) g`)
	cfg := e.config("public.vers")
	cfg.Source.SnapshotChunkSize = 100
	s := newSource(t, cfg)
	ctx := context.Background()
	if err := s.Setup(ctx, false); err != nil {
		t.Fatal(err)
	}
	// The writer's transaction has an xid before the snapshot is taken,
	// and commits after it, before the relay writes any watermark.
	w := e.pg.Conn(t, testDB)
	tx, err := w.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE vers SET v = v + 1 WHERE id = $1", updated); err != nil {
		t.Fatal(err)
	}
	old := e.pg.Conn(t, testDB)
	otx, err := old.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer otx.Rollback(ctx)
	var snap string
	if err := otx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snap); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var used atomic.Bool
	chunkSnapshot = func() string {
		if used.CompareAndSwap(false, true) {
			return snap
		}
		return ""
	}
	defer func() { chunkSnapshot = nil }()

	r := runSource(t, s, nil)
	waitFor(t, 60*time.Second, "snapshot to finish", func() bool {
		for _, ev := range r.events() {
			if ev.Source.Snapshot == change.SnapshotLast {
				return true
			}
		}
		return false
	})
	var cur string
	e.admin.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&cur)
	var hi, lo uint64
	fmtSscanf(cur, &hi, &lo)
	waitFor(t, 30*time.Second, "stream to catch up", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.lastLSN >= hi<<32|lo
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if !used.Load() {
		t.Fatal("no chunk was read with the old snapshot")
	}
	versionCheck(t, e, r.events())
	if n := s.chunkRereads.Load(); n != 1 {
		t.Errorf("%d chunks read again, want 1 (the one read with the old snapshot)", n)
	}
	if n := testutil.ToFloat64(s.m.SnapshotChunksReread); n != 1 {
		t.Errorf("cdcrelay_snapshot_chunks_reread_total = %v, want 1", n)
	}
	reads := 0
	for _, ev := range r.events() {
		if ev.Op == change.OpRead {
			reads++
		}
	}
	if reads != 1000 {
		t.Errorf("%d op=r events for a 1000-row table", reads)
	}
}
