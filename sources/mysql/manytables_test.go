package mysql

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// Enough captured tables that their lists outgrow the inline state: the
// tables go apart into parts, the state stays small, and runs stopped in the
// middle of the snapshot (the uncommitted tail dropped, Run started again
// from the committed state and parts) neither read a table twice nor skip
// one. A run after the end snapshots nothing.
func TestManyTablesSnapshotApart(t *testing.T) {
	t.Parallel()
	const tables, rows = 40, 3
	m := startMaria(t)
	for i := range tables {
		name := fmt.Sprintf("shop.many_%02d", i)
		m.Exec(t, fmt.Sprintf("CREATE TABLE %s (id INT PRIMARY KEY, v INT NOT NULL)", name))
		m.Exec(t, fmt.Sprintf("INSERT INTO %s VALUES (1, 1), (2, 2), (3, 3)", name))
	}
	cfg := testConfig(m)
	cfg.Source.SnapshotChunkSize = 2
	src, _ := newSource(t, cfg)
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	snap := func() snapshot.State {
		k.mu.Lock()
		defer k.mu.Unlock()
		var st state
		var sn snapshot.State
		if err := json.Unmarshal(k.state, &st); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(st.Snapshot, &sn); err != nil {
			t.Fatal(err)
		}
		if len(k.state) > 1024 {
			t.Errorf("the state reached %d bytes", len(k.state))
		}
		return sn
	}
	stops := 0
	for ; ; stops++ {
		if stops > 400 {
			t.Fatal("no progress")
		}
		k.mu.Lock()
		before := k.cps
		k.mu.Unlock()
		r := k.start(t, src)
		deadline := time.Now().Add(60 * time.Second)
		for {
			k.mu.Lock()
			n := k.cps
			k.mu.Unlock()
			if n > before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no checkpoint within 60s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		// A few milliseconds: on a quiet machine the whole snapshot of
		// these small tables takes a few tens of them.
		time.Sleep(time.Duration(rand.IntN(6)) * time.Millisecond)
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		if sn := snap(); sn.Apart && sn.Waiting == 0 {
			if sn.Finished != tables || len(k.parts) != tables {
				t.Fatalf("finished %d, %d parts; want %d", sn.Finished, len(k.parts), tables)
			}
			break
		}
	}
	t.Logf("%d stops", stops)
	if stops < 2 {
		t.Errorf("the snapshot ended after %d stops; the test needs some in the middle", stops)
	}
	evs, _ := k.snapshot()
	for i := range tables {
		name := fmt.Sprintf("many_%02d", i)
		if got := countOps(evs, name, change.OpRead); got != rows {
			t.Errorf("%s: %d rows read, want %d", name, got, rows)
		}
	}
	reads := allReads(evs)
	k.start(t, src)
	m.Exec(t, "INSERT INTO shop.many_00 VALUES (100, 100)")
	evs = k.waitFor(t, 60*time.Second, "the insert", func(evs []*change.Event) bool {
		return countOps(evs, "many_00", change.OpCreate) == 1
	})
	if got := allReads(evs); got != reads {
		t.Fatalf("a run after the end read tables again: %d rows read in all, had %d", got, reads)
	}
}

func allReads(evs []*change.Event) int {
	n := 0
	for _, e := range evs {
		if e.Op == change.OpRead {
			n++
		}
	}
	return n
}
