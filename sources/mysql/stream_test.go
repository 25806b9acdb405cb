package mysql

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/change"
)

// TestStreamAndResume streams inserts, updates and deletes, restarts Run
// from the committed state and checks that nothing repeats or goes missing.
func TestStreamAndResume(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)")
	m.Exec(t, "INSERT INTO shop.items VALUES (1, 'pre', 1)")
	cfg := testConfig(m)
	cfg.Source.IncludeQuery = true // source.query carries the statement
	src, _ := newSource(t, cfg)
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	r := k.start(t, src)
	k.waitFor(t, 30*time.Second, "snapshot row", func(evs []*change.Event) bool { return countOps(evs, "items", change.OpRead) == 1 })
	for i := 2; i <= 50; i++ {
		m.Exec(t, fmt.Sprintf("INSERT INTO shop.items VALUES (%d, 'n%d', %d)", i, i, i))
	}
	m.Exec(t, "UPDATE shop.items SET qty = qty + 100 WHERE id <= 10")
	m.Exec(t, "DELETE FROM shop.items WHERE id = 50")
	k.waitFor(t, 30*time.Second, "first batch", func(evs []*change.Event) bool { return countOps(evs, "items", change.OpDelete) == 1 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	_, st := k.snapshot()
	t.Logf("state after first run: %s", st)

	for i := 51; i <= 80; i++ {
		m.Exec(t, fmt.Sprintf("INSERT INTO shop.items VALUES (%d, 'n%d', %d)", i, i, i))
	}
	k.start(t, src)
	evs := k.waitFor(t, 30*time.Second, "second batch", func(evs []*change.Event) bool { return countOps(evs, "items", change.OpCreate) == 79 })
	time.Sleep(1500 * time.Millisecond)
	evs, _ = k.snapshot()
	if n := countOps(evs, "items", change.OpCreate); n != 79 {
		t.Fatalf("inserts = %d, want 79 (a repeat or a gap)", n)
	}
	if n := countOps(evs, "items", change.OpUpdate); n != 10 {
		t.Fatalf("updates = %d, want 10", n)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Op != change.OpCreate {
			continue
		}
		if seen[string(e.Key)] {
			t.Fatalf("insert of %s sent twice", e.Key)
		}
		seen[string(e.Key)] = true
		if e.Source.GTID == "" || e.Source.File == "" || e.Source.TsMs == 0 || e.Source.Query == "" {
			t.Fatalf("source block incomplete: %+v", e.Source)
		}
	}
}

// TestRequestSnapshot re-snapshots a table while streaming goes on, and
// refuses a table that is not captured.
func TestRequestSnapshot(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY, v INT)")
	m.Exec(t, "INSERT INTO shop.items SELECT seq, 0 FROM shop.seq_1_to_2500")
	cfg := testConfig(m, "shop.items")
	src, met := newSource(t, cfg)
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	k.start(t, src)
	k.waitFor(t, 30*time.Second, "first snapshot", func(evs []*change.Event) bool { return countOps(evs, "items", change.OpRead) == 2500 })
	if err := src.RequestSnapshot(t.Context(), "shop.other"); err == nil {
		t.Errorf("RequestSnapshot of a table that is not captured succeeded")
	}
	if err := src.RequestSnapshot(t.Context(), "shop.items"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		m.Exec(t, fmt.Sprintf("UPDATE shop.items SET v = v + 1 WHERE id = %d", i*100))
	}
	evs := k.waitFor(t, 30*time.Second, "second snapshot", func(evs []*change.Event) bool {
		for _, e := range evs[2500:] {
			if e.Source.Snapshot == change.SnapshotLast {
				return true
			}
		}
		return false
	})
	r := m.Exec(t, "SELECT SUM(v), COUNT(*) FROM shop.items")
	sum, _ := r.GetInt(0, 0)
	fold := func(evs []*change.Event) (map[string]string, int64) {
		got := applyEvents(evs, "items")
		var folded int64
		for _, row := range got {
			var id, v int64
			fmt.Sscanf(row, `{"id":%d,"v":%d}`, &id, &v)
			folded += v
		}
		return got, folded
	}
	// An update committed after the second snapshot's high watermark
	// streams after its last row: wait for the stream to catch up.
	evs = k.waitFor(t, 30*time.Second, "the updates", func(evs []*change.Event) bool {
		_, folded := fold(evs)
		return folded == sum
	})
	got, folded := fold(evs)
	if len(got) != 2500 || folded != sum {
		t.Errorf("after the re-snapshot: %d rows with sum %d, table has 2500 with sum %d", len(got), folded, sum)
	}
	if n := countOps(evs, "items", change.OpRead); n < 4900 {
		t.Errorf("%d snapshot rows in total, want about 5000", n)
	}

	q, err := src.connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer src.release(q)
	time.Sleep(1500 * time.Millisecond) // a heartbeat checkpoint catches up
	src.updateLag(q)
	if lag := testGauge(met.SourceLagBytes); lag > 4096 {
		t.Errorf("lag after catching up = %v bytes", lag)
	}
	if src.Acked() == "" {
		t.Errorf("no acknowledged position")
	}
}

// TestSavepointIsNotABoundary runs a transaction with savepoints (logged as
// QUERY events inside it) and checks that its only checkpoint comes after
// its last row.
func TestSavepointIsNotABoundary(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY)")
	src, _ := newSource(t, testConfig(m))
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan change.Message, 64)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, nil, out) }()
	defer func() {
		cancel()
		for {
			select {
			case <-done:
				return
			case <-out:
			}
		}
	}()
	// skip to the first checkpoint after the (empty) snapshot
	for m := range out {
		if m.Checkpoint != nil && strings.Contains(string(m.Checkpoint.State), `"done":["shop.items"]`) {
			break
		}
	}
	c, err := client.Connect(m.Addr(), "root", "", "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{"BEGIN", "INSERT INTO items VALUES (1)", "SAVEPOINT a", "INSERT INTO items VALUES (2)",
		"ROLLBACK TO SAVEPOINT a", "INSERT INTO items VALUES (3)", "SAVEPOINT b", "INSERT INTO items VALUES (4)", "COMMIT"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var seq []string
	for len(seq) == 0 || seq[len(seq)-1] != "checkpoint" {
		select {
		case msg := <-out:
			if msg.Event != nil {
				seq = append(seq, string(msg.Event.Key))
			} else if len(seq) > 0 {
				seq = append(seq, "checkpoint")
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("timed out; got %v", seq)
		}
	}
	if got := strings.Join(seq, " "); got != `{"id":1} {"id":3} {"id":4} checkpoint` {
		t.Fatalf("sequence %s", got)
	}
}
