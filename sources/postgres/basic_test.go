package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

func fmtSscanf(s string, hi, lo *uint64) (int, error) { return fmt.Sscanf(s, "%X/%X", hi, lo) }

func TestStreamAndSnapshot(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2));
INSERT INTO items SELECT g, 'item '||g, g*1.5 FROM generate_series(1, 2500) g`)
	s := newSource(t, e.config("public.items"))
	ctx := context.Background()
	if err := s.Setup(ctx, false); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	r := runSource(t, s, nil)
	evs := r.waitEvents(t, 2500, 30*time.Second)
	for i, ev := range evs[:2500] {
		if ev.Op != change.OpRead {
			t.Fatalf("event %d: op %v, want r", i, ev.Op)
		}
	}
	if evs[2499].Source.Snapshot != change.SnapshotLast {
		t.Fatalf("last snapshot row: snapshot=%v, want last", evs[2499].Source.Snapshot)
	}
	e.exec(t, `INSERT INTO items VALUES (5000, 'new', 1.25); UPDATE items SET name='renamed' WHERE id=1; DELETE FROM items WHERE id=2`)
	evs = r.waitEvents(t, 2503, 20*time.Second)
	tail := evs[2500:]
	if tail[0].Op != change.OpCreate || string(tail[0].Key) != `{"id":5000}` || after(t, tail[0])["price"] != 1.25 {
		t.Fatalf("insert: %+v %s", tail[0], tail[0].Key)
	}
	if tail[1].Op != change.OpUpdate || after(t, tail[1])["name"] != "renamed" {
		t.Fatalf("update: %+v", tail[1])
	}
	if b := rowMap(t, tail[1].Before); len(b) != 1 || b["id"] != float64(1) {
		t.Fatalf("update before (identity default) = %v, want key only", b)
	}
	if tail[2].Op != change.OpDelete || string(tail[2].Key) != `{"id":2}` {
		t.Fatalf("delete: %+v", tail[2])
	}
	// The slot follows the acks.
	waitFor(t, 15*time.Second, "slot to confirm the last checkpoint", func() bool {
		r.mu.Lock()
		l := r.lastLSN
		r.mu.Unlock()
		return e.slotConfirmed(t, s.slot) == l
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
