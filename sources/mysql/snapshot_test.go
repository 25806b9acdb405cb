package mysql

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// writer updates, inserts and deletes rows of shop.big while it runs. v
// only grows for a key and deleted ids never come back, so the versions
// of each key are strictly increasing.
type writer struct {
	stop chan struct{}
	wg   sync.WaitGroup
	ops  int
}

func startWriter(t *testing.T, m *testenv.MariaDB, maxID int) *writer {
	t.Helper()
	c, err := client.Connect(m.Addr(), "root", "", "shop")
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer c.Close()
		next := maxID + 1
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			var err error
			switch n := rand.IntN(10); {
			case n < 7:
				id := 1 + rand.IntN(next-1)
				_, err = c.Execute(fmt.Sprintf("UPDATE big SET v = v + 1 WHERE id IN (%d, %d)", id, 1+rand.IntN(next-1)))
			case n < 9:
				_, err = c.Execute(fmt.Sprintf("INSERT INTO big VALUES (%d, 1, 'new')", next))
				next++
			default:
				_, err = c.Execute(fmt.Sprintf("DELETE FROM big WHERE id = %d", 1+rand.IntN(next-1)))
			}
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			w.ops++
		}
	}()
	return w
}

func (w *writer) finish() int {
	close(w.stop)
	w.wg.Wait()
	return w.ops
}

// tableState reads shop.big as key -> row JSON, the way applyEvents folds
// the events.
func tableState(t *testing.T, m *testenv.MariaDB) map[string]string {
	r := m.Exec(t, "SELECT id, v, pad FROM shop.big")
	st := map[string]string{}
	for i := 0; i < r.RowNumber(); i++ {
		id, _ := r.GetInt(i, 0)
		v, _ := r.GetInt(i, 1)
		pad, _ := r.GetString(i, 2)
		p, _ := json.Marshal(pad)
		st[fmt.Sprintf(`{"id":%d}`, id)] = fmt.Sprintf(`{"id":%d,"v":%d,"pad":%s}`, id, v, p)
	}
	return st
}

// checkOrder fails when a key's v does not strictly grow or a key has two
// snapshot rows.
func checkOrder(t *testing.T, evs []*change.Event) {
	t.Helper()
	last := map[string]int64{}
	reads := map[string]int{}
	for _, e := range evs {
		if e.Table.Name != "big" {
			continue
		}
		k := string(e.Key)
		if e.Op == change.OpRead {
			reads[k]++
			if reads[k] > 1 {
				t.Fatalf("key %s read twice by the snapshot", k)
			}
		}
		if e.After == nil {
			continue
		}
		raw, _ := e.After.Get("v")
		var v int64
		fmt.Sscan(string(raw), &v)
		if p, ok := last[k]; ok && v <= p {
			t.Fatalf("key %s: version %d after %d (%s)", k, v, p, e.Op)
		}
		last[k] = v
	}
}

// TestSnapshotUnderWrites snapshots 100k rows while a writer changes them,
// stopping and resuming the source twice mid-snapshot; the folded events
// equal the table, each key's versions grow, and no row is read twice.
func TestSnapshotUnderWrites(t *testing.T) {
	t.Parallel()
	const rows = 100_000
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.big (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(50) NOT NULL)")
	m.Exec(t, fmt.Sprintf("INSERT INTO shop.big SELECT seq, 1, CONCAT('row ', seq) FROM shop.seq_1_to_%d", rows))
	m.Exec(t, "CREATE TABLE shop.sentinel (id INT PRIMARY KEY)")
	cfg := testConfig(m)
	cfg.Source.SnapshotChunkSize = 5000
	src, met := newSource(t, cfg)
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	w := startWriter(t, m, rows)
	start := time.Now()
	var k sink
	for stop := 1; stop <= 2; stop++ {
		r := k.start(t, src)
		k.waitFor(t, 60*time.Second, "some chunks", func(evs []*change.Event) bool {
			return countOps(evs, "big", change.OpRead) >= stop*25_000
		})
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		evs, st := k.snapshot()
		t.Logf("stopped after %d snapshot rows; state %.200s", countOps(evs, "big", change.OpRead), st)
	}
	k.start(t, src)
	k.waitFor(t, 120*time.Second, "snapshot end", func(evs []*change.Event) bool {
		for _, e := range evs {
			if e.Source.Snapshot == change.SnapshotLast && e.Table.Name == "big" {
				return true
			}
		}
		return false
	})
	snapTime := time.Since(start)
	ops := w.finish()
	m.Exec(t, "INSERT INTO shop.sentinel VALUES (1)")
	evs := k.waitFor(t, 60*time.Second, "sentinel", func(evs []*change.Event) bool { return countOps(evs, "sentinel", change.OpCreate) == 1 })
	t.Logf("snapshot of %d rows with %d concurrent writes and 2 restarts: %v; %d events", rows, ops, snapTime.Round(time.Millisecond), len(evs))
	checkOrder(t, evs)
	checkFold(t, evs, m)
	if v := testGauge(met.SnapshotChunksDone.WithLabelValues("shop.big")); v < 20 {
		t.Errorf("snapshot chunks gauge = %v", v)
	}

}
