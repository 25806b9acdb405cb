package postgres

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/change"
)

// versionCheck replays events per key and checks that each key's versions
// (column v) strictly increase by one after its first event, and that the
// final state equals the table.
func versionCheck(t *testing.T, e *pgEnv, evs []*change.Event) {
	t.Helper()
	type st struct {
		v       float64
		present bool
	}
	state := map[string]st{}
	errs := 0
	for _, ev := range evs {
		k := string(ev.Key)
		prev, seen := state[k]
		switch ev.Op {
		case change.OpDelete:
			state[k] = st{}
		default:
			var v float64
			if err := json.Unmarshal(mustGet(t, ev.After, "v"), &v); err != nil {
				t.Fatal(err)
			}
			if seen && prev.present && v != prev.v+1 && errs < 10 {
				errs++
				t.Errorf("key %s: version %v after %v (op %v, snapshot %v)", k, v, prev.v, ev.Op, ev.Source.Snapshot)
			}
			state[k] = st{v: v, present: true}
		}
	}
	rows, err := e.admin.Query(context.Background(), "SELECT id, v FROM vers")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id, v int
		rows.Scan(&id, &v)
		n++
		k := `{"id":` + itoa(id) + `}`
		if s := state[k]; !s.present || s.v != float64(v) {
			if errs < 20 {
				errs++
				t.Errorf("key %s: table has v=%d, stream ends with %+v", k, v, s)
			}
		}
	}
	rows.Close()
	present := 0
	for _, s := range state {
		if s.present {
			present++
		}
	}
	if present != n {
		t.Errorf("stream ends with %d live keys, table has %d rows", present, n)
	}
}

func mustGet(t *testing.T, r *change.Row, col string) []byte {
	v, ok := r.Get(col)
	if !ok {
		t.Fatalf("column %s absent", col)
	}
	return v
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// writes counts what writer did: its transactions, and the rows its UPDATEs
// and DELETEs fetched by index, which the table's read counters include.
type writes struct {
	txns, fetched atomic.Int64
}

// writer updates random keys (v = v + 1), inserts new keys and deletes some,
// one transaction each, until stopped; it then closes its connection, so
// that the server has its read counters once wg is done.
func writer(t *testing.T, e *pgEnv, maxKey int, stop <-chan struct{}) (*sync.WaitGroup, *writes) {
	var wg sync.WaitGroup
	var w writes
	conn := e.pg.Conn(t, testDB)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer conn.Close(context.Background())
		next := maxKey + 1
		for {
			select {
			case <-stop:
				return
			default:
			}
			var tag pgconn.CommandTag
			var err error
			fetches := false
			switch x := rand.IntN(20); {
			case x == 0:
				tag, err = conn.Exec(context.Background(), "INSERT INTO vers VALUES ($1, 0)", next)
				next++
			case x == 1:
				tag, err = conn.Exec(context.Background(), "DELETE FROM vers WHERE id = $1", 1+rand.IntN(maxKey))
				fetches = true
			default:
				tag, err = conn.Exec(context.Background(), "UPDATE vers SET v = v + 1 WHERE id = $1", 1+rand.IntN(maxKey))
				fetches = true
			}
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			w.txns.Add(1)
			if fetches {
				w.fetched.Add(tag.RowsAffected())
			}
		}
	}()
	return &wg, &w
}

// tableReads returns the rows read from the table so far, by sequential
// and index scans. A backend reports its counters with a delay of up to
// seconds, except when it exits, so the count is taken once every client
// but e.admin has disconnected, and before e.admin reads the table itself.
func tableReads(t *testing.T, e *pgEnv) int64 {
	waitFor(t, 30*time.Second, "the other clients to disconnect", func() bool {
		var n int
		if err := e.admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()", testDB).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	// An exiting backend reports its counters after it leaves
	// pg_stat_activity, and before PostgreSQL 15 they travel to the
	// statistics collector asynchronously.
	time.Sleep(1100 * time.Millisecond)
	return readCount(t, e)
}

func readCount(t *testing.T, e *pgEnv) int64 {
	var n int64
	if err := e.admin.QueryRow(context.Background(), "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = 'vers'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSnapshotWithConcurrentWriter snapshots 100k rows while a writer
// changes them: every key's versions arrive in order with no repeat, the
// final state equals the table, and each row is read once.
func TestSnapshotWithConcurrentWriter(t *testing.T) {
	const rows = 100000
	e := startPG(t)
	e.exec(t, `CREATE TABLE vers (id int PRIMARY KEY, v int NOT NULL, pad text);
INSERT INTO vers SELECT g, 0, 'row ' || g FROM generate_series(1, 100000) g; ANALYZE vers`)
	cfg := e.config("public.vers")
	cfg.Source.SnapshotChunkSize = 5000
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	before := tableReads(t, e)
	stop := make(chan struct{})
	wg, w := writer(t, e, rows, stop)
	start := time.Now()
	r := runSource(t, s, nil)
	waitFor(t, 90*time.Second, "snapshot to finish", func() bool {
		for _, ev := range r.events() {
			if ev.Source.Snapshot == change.SnapshotLast {
				return true
			}
		}
		return false
	})
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	var cur string
	e.admin.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&cur)
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
	evs := r.events()
	snapRows := 0
	for _, ev := range evs {
		if ev.Op == change.OpRead {
			snapRows++
		}
	}
	// Counted before versionCheck, whose own read of the table is not the
	// snapshot's.
	extra := tableReads(t, e) - before - w.fetched.Load()
	versionCheck(t, e, evs)
	rereads := s.chunkRereads.Load()
	t.Logf("snapshot of %d rows with %d concurrent writes took %v; %d r events, %d events in all; table reads beyond the writer's: %d; chunks read again: %d",
		rows, w.txns.Load(), took.Round(time.Millisecond), snapRows, len(evs), extra, rereads)
	// A chunk whose read missed a commit is read again, on purpose
	// (chunkcheck.go).
	if extra > rows+rows/100+rereads*int64(cfg.Source.SnapshotChunkSize+1) {
		t.Errorf("the snapshot read %d rows for a %d-row table", extra, rows)
	}
	// The chunks' memory is reused once acked (the relay simulation copies
	// what it keeps); versionCheck above saw every row intact.
	if n := s.chunkMems.Load(); n > 6 {
		t.Errorf("%d chunk memories made for %d chunks, want at most 6: acked chunks are not reused", n, rows/5000)
	}
}

// TestSnapshotSurvivesCrashes stops the source abruptly six times during a
// snapshot with a concurrent writer, dropping whatever was not yet
// "committed" (as a kill -9 of the relay would), and restarts it from the
// last committed state: versions stay in order with no repeat, the final
// state equals the table, and no chunk is read twice.
func TestSnapshotSurvivesCrashes(t *testing.T) {
	const rows = 20000
	e := startPG(t)
	e.exec(t, `CREATE TABLE vers (id int PRIMARY KEY, v int NOT NULL, pad text);
INSERT INTO vers SELECT g, 0, 'row ' || g FROM generate_series(1, 20000) g; ANALYZE vers`)
	cfg := e.config("public.vers")
	cfg.Source.SnapshotChunkSize = 500
	if err := newSource(t, cfg).Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	before := tableReads(t, e)
	stop := make(chan struct{})
	wg, w := writer(t, e, rows, stop)
	var committed []*change.Event
	var state []byte
	crashes := 0
	var rereads int64
	done := false
	for {
		s := newSource(t, cfg)
		r := runLoop(t, s, state)
		// Crash after a few checkpoints, in the middle of whatever follows.
		waitFor(t, 90*time.Second, "a chunk", func() bool {
			for _, ev := range r.events() {
				if ev.Op == change.OpRead || done {
					return true
				}
			}
			return false
		})
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		for _, ev := range r.events() {
			if ev.Source.Snapshot == change.SnapshotLast {
				done = true
			}
		}
		caughtUp := false
		if done && crashes >= 6 {
			close(stop)
			wg.Wait()
			caughtUp = true
			var cur string
			e.admin.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&cur)
			var hi, lo uint64
			fmtSscanf(cur, &hi, &lo)
			waitFor(t, 30*time.Second, "catch up", func() bool {
				r.mu.Lock()
				defer r.mu.Unlock()
				return r.lastLSN >= hi<<32|lo
			})
		}
		r.stop()
		rereads += s.chunkRereads.Load()
		// The snapshot may have ended between the look above and the stop
		// (a fast machine reads the whole table in one run); the next run
		// then has no chunk to wait for.
		for _, ev := range r.events() {
			if ev.Source.Snapshot == change.SnapshotLast {
				done = true
			}
		}
		committed = append(committed, r.events()...)
		state = r.lastState()
		// A snapshot that ended only after the look above gets one more
		// run, which stops the writer and catches up with it.
		if caughtUp {
			break
		}
		crashes++
		if crashes > 200 {
			t.Fatal("no progress")
		}
	}
	extra := tableReads(t, e) - before - w.fetched.Load()
	versionCheck(t, e, committed)
	t.Logf("%d crashes, %d writes, %d events; table reads beyond the writer's: %d (rows %d); chunks read again: %d", crashes, w.txns.Load(), len(committed), extra, rows, rereads)
	// Each crash may re-read at most the one chunk that was in flight.
	if extra > rows+(int64(crashes+1)+rereads)*int64(cfg.Source.SnapshotChunkSize+1) {
		t.Errorf("read %d rows of a %d-row table", extra, rows)
	}
}
