package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// Enough captured tables that their lists outgrow the inline state: the
// tables go apart into parts, the state stays small, and crashes in the
// middle of the snapshot (the uncommitted tail dropped, Run started again
// from the committed state and parts) neither read a table twice nor skip
// one. A run after the end snapshots nothing.
func TestManyTablesSnapshotApart(t *testing.T) {
	const tables, rows = 40, 3
	e := startPG(t)
	var names []string
	for i := range tables {
		name := fmt.Sprintf("many_%02d", i)
		e.exec(t, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, v int NOT NULL); INSERT INTO %s SELECT g, g FROM generate_series(1, %d) g", name, name, rows))
		names = append(names, "public."+name)
	}
	cfg := e.config(names...)
	cfg.Source.SnapshotChunkSize = 2
	if err := newSource(t, cfg).Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	var (
		resume *change.Resume
		reads  = map[string]int{}
		snap   snapshot.State
		big    int
	)
	state := func() snapshot.State {
		var st state
		if err := json.Unmarshal(resume.State, &st); err != nil {
			t.Fatal(err)
		}
		big = max(big, len(resume.State))
		return st.Snapshot
	}
	crash := 0
	for ; ; crash++ {
		if crash > 400 {
			t.Fatal("no progress")
		}
		r := runLoopFrom(t, newSource(t, cfg), resume)
		waitFor(t, 60*time.Second, "a checkpoint", func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.ckpts > 0
		})
		// A few milliseconds: on a quiet machine the whole snapshot of
		// these small tables takes a few tens of them.
		time.Sleep(time.Duration(rand.IntN(6)) * time.Millisecond)
		r.stop()
		for _, ev := range r.events() {
			if ev.Op == change.OpRead {
				reads[ev.Table.String()]++
			}
		}
		resume = r.resume()
		if snap = state(); snap.Apart && snap.Waiting == 0 {
			break
		}
	}
	t.Logf("%d crashes; state at most %d bytes", crash, big)
	if crash < 2 {
		t.Errorf("the snapshot ended after %d crashes; the test needs some in the middle", crash)
	}
	if snap.Finished != tables || len(resume.Parts) != tables {
		t.Fatalf("finished %d, %d parts; want %d", snap.Finished, len(resume.Parts), tables)
	}
	for _, n := range names {
		if got := reads[n]; got != rows {
			t.Errorf("%s: %d rows read, want %d", n, got, rows)
		}
	}
	if big > 1024 {
		t.Errorf("the state reached %d bytes", big)
	}
	r := runLoopFrom(t, newSource(t, cfg), resume)
	e.exec(t, "INSERT INTO many_00 VALUES (100, 100)")
	evs := r.waitEvents(t, 1, 60*time.Second)
	if len(evs) != 1 || evs[0].Op != change.OpCreate {
		t.Fatalf("after the end, %d events, the first %c on %s; want the insert alone", len(evs), evs[0].Op, evs[0].Table)
	}
}
