package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/checker"
	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// killTable is the table the kill tests capture: vers (id, ver, pad). The
// initial rows have pad killPad, the rows the writer inserts "new".
const killTable = "vers"

var killPad = strings.Repeat("p", 100)

// killLedger is the ledger of a kill test's writer, in the checker's
// terms: the initial rows are transaction 1, each statement of the writer
// after them is one more transaction. The writer is the table's only
// writer, so it knows each row's version without reading it back.
type killLedger struct {
	mu   sync.Mutex
	txns []checker.Txn
	ver  map[int64]int64 // live rows' versions
	next int64           // the id the next insert takes
	// strictFrom is the first transaction begun after the test saw the
	// snapshot finished; 0 while it has not.
	strictFrom int64
}

// newKillLedger records the rows 1..rows at version 1 as transaction 1.
func newKillLedger(rows int) *killLedger {
	l := &killLedger{ver: map[int64]int64{}, next: int64(rows) + 1}
	first := checker.Txn{ID: 1, Committed: true}
	for id := int64(1); id <= int64(rows); id++ {
		l.ver[id] = 1
		first.Writes = append(first.Writes, checker.Write{Row: killRow(id), Version: 1})
	}
	l.txns = append(l.txns, first)
	return l
}

func killRow(id int64) checker.RowID { return checker.RowID{Table: killTable, Key: id} }

// snapshotDone notes that the stored offsets record says the snapshot has
// finished: a key the writer inserts from now on reaches Kafka through the
// stream only, so it must be seen from its first version. Before, the
// snapshot may deliver a new key as its row at a later version.
func (l *killLedger) snapshotDone() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.strictFrom == 0 {
		l.strictFrom = int64(len(l.txns)) + 1
	}
}

// writeOnPastSnapshot lets the writer go on until the stored offsets record
// says the snapshot is done, and two seconds more: the keys it inserts then
// must be streamed from their first version.
func (l *killLedger) writeOnPastSnapshot(t *testing.T, cfg string) {
	t.Helper()
	eventually(t, 3*time.Minute, "the snapshot to finish", func() bool {
		st := offsetsState(t, cfg)
		return st != "" && !strings.Contains(st, `"queue"`)
	})
	l.snapshotDone()
	time.Sleep(2 * time.Second)
}

// step runs one random statement through exec and records what it wrote:
// seven in ten update a random id (a deleted one is left as it is), two
// insert a new id, one deletes a random id. Deleted ids never come back.
func (l *killLedger) step(exec func(sql string) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	id := 1 + rand.Int64N(l.next-1)
	var sql string
	var w *checker.Write
	switch n := rand.IntN(10); {
	case n < 7:
		sql = fmt.Sprintf("UPDATE %s SET ver = ver + 1 WHERE id = %d", killTable, id)
		if v, live := l.ver[id]; live {
			w = &checker.Write{Row: killRow(id), Version: v + 1}
		}
	case n < 9:
		id = l.next
		sql = fmt.Sprintf("INSERT INTO %s VALUES (%d, 1, 'new')", killTable, id)
		w = &checker.Write{Row: killRow(id), Version: 1}
	default:
		sql = fmt.Sprintf("DELETE FROM %s WHERE id = %d", killTable, id)
		if v, live := l.ver[id]; live {
			w = &checker.Write{Row: killRow(id), Version: v + 1, Delete: true}
		}
	}
	if err := exec(sql); err != nil {
		return err
	}
	if id == l.next {
		l.next++
	}
	if w == nil {
		return nil
	}
	if w.Delete {
		delete(l.ver, id)
	} else {
		l.ver[id] = w.Version
	}
	l.txns = append(l.txns, checker.Txn{ID: int64(len(l.txns)) + 1, Committed: true, Writes: []checker.Write{*w}})
	return nil
}

// startWriter runs the writer on its own goroutine: it opens a
// connection with connect, then runs one random statement through exec
// every millisecond until stop is called or a statement fails. stop waits
// for the writer and returns the number of statements it ran.
func (l *killLedger) startWriter(t *testing.T, connect func() (exec func(sql string) error, close func(), err error)) (stop func() (writes int)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	writes := 0
	go func() {
		defer wg.Done()
		exec, closeConn, err := connect()
		if err != nil {
			t.Errorf("writer: %v", err)
			return
		}
		defer closeConn()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := l.step(exec); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			writes++
			time.Sleep(time.Millisecond)
		}
	}()
	return func() int {
		close(done)
		wg.Wait()
		return writes
	}
}

// stopClean stops the relay with SIGTERM, requires exit code 0 and
// returns its output.
func stopClean(t *testing.T, p *relayProc) string {
	t.Helper()
	if code := p.stop(t); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
	return p.out.String()
}

// killDuringSnapshot reports whether the stored offsets record says the
// snapshot is still running (or nothing is stored yet), as a kill is about
// to land; once it says the snapshot is done, the ledger notes it.
func (l *killLedger) killDuringSnapshot(t *testing.T, cfg string) bool {
	t.Helper()
	if st := offsetsState(t, cfg); st == "" || strings.Contains(st, `"queue"`) {
		return true
	}
	l.snapshotDone()
	return false
}

// snapshotStarts counts the lines of a relay's output that start a table's
// snapshot from its first key.
func snapshotStarts(output string) int {
	n := 0
	for _, l := range strings.Split(output, "\n") {
		if strings.Contains(l, "snapshot: reading table") && strings.Contains(l, "resumed=false") {
			n++
		}
	}
	return n
}

// judgeKillTopic reads topic read_committed to its last stable offset and
// judges it with the checker against the ledger and the table's final
// versions (id -> ver of every live row): every committed version of every
// key seen once, in order, with no gap after its first event (from version
// 1 for the keys inserted after the snapshot finished), and folding to the
// table. It also
// requires at most one snapshot row per key (no chunk read twice) and the
// right pad in every row image, and returns the number of keys that had a
// snapshot row.
func judgeKillTopic(t *testing.T, b *testenv.Broker, topic string, l *killLedger, final map[int64]int64) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var events []checker.Event
	badPad := 0
	err := kafkaclient.ReadToEnd(ctx, []kgo.Opt{kgo.SeedBrokers(b.Addr)}, []string{topic}, kafkaclient.ReadOptions{}, func(r *kgo.Record) error {
		ev, ok, err := checker.Decode(killTable, r.Key, r.Value)
		if err != nil || !ok {
			return err
		}
		ev.Partition, ev.Offset = r.Partition, r.Offset
		events = append(events, ev)
		if !ev.Delete {
			var v struct{ After struct{ Pad string } }
			if err := json.Unmarshal(r.Value, &v); err != nil {
				return err
			}
			want := "new"
			if ev.Row.Key < l.firstInserted() {
				want = killPad
			}
			if v.After.Pad != want && badPad < 5 {
				badPad++
				t.Errorf("%s v%d at %d@%d: pad %q, want %q", ev.Row, ev.Version, r.Partition, r.Offset, v.After.Pad, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
	snapRows := map[checker.RowID]int{}
	for _, ev := range events {
		if ev.Snapshot {
			if snapRows[ev.Row]++; snapRows[ev.Row] == 2 {
				t.Errorf("key %s has two snapshot rows: a chunk was read twice", ev.Row)
			}
		}
	}
	want := map[checker.RowID]int64{}
	for id, v := range final {
		want[killRow(id)] = v
	}
	l.mu.Lock()
	strict := l.strictFrom
	if strict == 0 {
		strict = math.MaxInt64
	}
	rep := checker.Check(l.txns, events, want, checker.Options{StrictFrom: strict})
	t.Logf("keys created from transaction %d on (of %d) must be seen from version 1", strict, len(l.txns))
	l.mu.Unlock()
	t.Logf("checker: %s", rep)
	if !rep.OK() {
		t.Errorf("the topic fails the checker: %s", rep.Verdict())
	}
	return len(snapRows)
}

// firstInserted is the first id the writer inserts.
func (l *killLedger) firstInserted() int64 { return int64(len(l.txns[0].Writes)) + 1 }
