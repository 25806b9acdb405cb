package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
)

// TestKeylessSnapshotByUniqueIndex snapshots a table without a primary key
// through its unique index on a NOT NULL column, in chunks, while a writer
// updates, inserts and deletes rows; source.key_columns keys the events by
// that column. Every key's versions arrive in order with no repeat, and the
// final state equals the table.
func TestKeylessSnapshotByUniqueIndex(t *testing.T) {
	const rows = 20000
	e := startPG(t)
	e.exec(t, `CREATE TABLE kl (code text NOT NULL, v int NOT NULL, pad text);
CREATE UNIQUE INDEX kl_code ON kl (code);
CREATE INDEX kl_v ON kl (v);
ALTER TABLE kl REPLICA IDENTITY FULL;
INSERT INTO kl SELECT 'k' || g, 0, 'row ' || g FROM generate_series(1, 20000) g; ANALYZE kl`)
	cfg := e.config("public.kl")
	cfg.Source.Keyless = []string{"public.kl"}
	cfg.Source.KeyColumns = []string{"public.kl:code"}
	cfg.Source.SnapshotChunkSize = 1000
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	conn := e.pg.Conn(t, testDB)
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := rows + 1
		for {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch x := rand.IntN(20); {
			case x == 0:
				_, err = conn.Exec(context.Background(), "INSERT INTO kl VALUES ('k' || $1::int, 0)", next)
				next++
			case x == 1:
				_, err = conn.Exec(context.Background(), "DELETE FROM kl WHERE code = 'k' || $1::int", 1+rand.IntN(rows))
			default:
				_, err = conn.Exec(context.Background(), "UPDATE kl SET v = v + 1 WHERE code = 'k' || $1::int", 1+rand.IntN(rows))
			}
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
		}
	}()
	r := runSource(t, s, nil)
	waitFor(t, 90*time.Second, "snapshot to finish", func() bool {
		for _, ev := range r.events() {
			if ev.Source.Snapshot == change.SnapshotLast {
				return true
			}
		}
		return false
	})
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

	type st struct {
		v       float64
		present bool
	}
	state := map[string]st{}
	read := map[string]bool{}
	errs := 0
	for _, ev := range r.events() {
		k := string(ev.Key)
		if !strings.HasPrefix(k, `{"code":"k`) {
			t.Fatalf("event key %s, want {\"code\":...} (source.key_columns)", k)
		}
		if ev.Op == change.OpRead {
			if read[k] {
				t.Fatalf("key %s read twice by the snapshot", k)
			}
			read[k] = true
		}
		if ev.Op == change.OpDelete {
			state[k] = st{}
			continue
		}
		var v float64
		if err := json.Unmarshal(mustGet(t, ev.After, "v"), &v); err != nil {
			t.Fatal(err)
		}
		if prev := state[k]; prev.present && v != prev.v+1 && errs < 10 {
			errs++
			t.Errorf("key %s: version %v after %v (op %v)", k, v, prev.v, ev.Op)
		}
		state[k] = st{v: v, present: true}
	}
	n := 0
	dbRows, err := e.admin.Query(context.Background(), "SELECT code, v FROM kl")
	if err != nil {
		t.Fatal(err)
	}
	for dbRows.Next() {
		var code string
		var v int
		dbRows.Scan(&code, &v)
		n++
		k := `{"code":"` + code + `"}`
		if s := state[k]; (!s.present || s.v != float64(v)) && errs < 20 {
			errs++
			t.Errorf("key %s: table has v=%d, stream ends with %+v", k, v, s)
		}
	}
	dbRows.Close()
	live := 0
	for _, s := range state {
		if s.present {
			live++
		}
	}
	if live != n {
		t.Errorf("stream ends with %d live keys, table has %d rows", live, n)
	}
	// Rows the writer inserts before a later chunk is read are read too.
	if len(read) < rows/2 {
		t.Errorf("%d snapshot rows for a %d-row table", len(read), rows)
	}
}

// TestKeylessWholeRowAndRefusal: a keyless table with a unique index and no
// source.key_columns keeps its events keyed by the whole row, in the
// snapshot as in the stream; source.key_columns outside the primary key
// needs REPLICA IDENTITY FULL, and must name columns the table has.
func TestKeylessWholeRowAndRefusal(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE wr (a int NOT NULL, b text);
CREATE UNIQUE INDEX wr_a ON wr (a);
ALTER TABLE wr REPLICA IDENTITY FULL;
INSERT INTO wr VALUES (1, 'one');
CREATE TABLE pk (id int PRIMARY KEY, region text)`)

	cfg := e.config("public.wr")
	cfg.ID = "wholerow"
	cfg.Source.Keyless = []string{"public.wr"}
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, nil)
	r.waitEvents(t, 1, 20*time.Second)
	e.exec(t, `INSERT INTO wr VALUES (2, 'two')`)
	evs := r.waitEvents(t, 2, 20*time.Second)
	if evs[0].Op != change.OpRead || string(evs[0].Key) != `{"a":1,"b":"one"}` || string(evs[1].Key) != `{"a":2,"b":"two"}` {
		t.Fatalf("events %s %s, %s %s; want the snapshot row and the insert keyed by the whole row", evs[0].Op, evs[0].Key, evs[1].Op, evs[1].Key)
	}
	r.stop()

	for _, c := range []struct {
		name, table string
		keyless     []string
		keyColumns  []string
		want        []string
	}{
		{"key column outside the identity", "public.pk", nil, []string{"public.pk:region"},
			[]string{"source.key_columns", `"region"`, "REPLICA IDENTITY FULL"}},
		{"key column missing", "public.pk", nil, []string{"public.pk:nope"},
			[]string{"source.key_columns", `no column "nope"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := e.config(c.table)
			cfg.ID = fmt.Sprintf("refuse%d", rand.IntN(1e6))
			cfg.Source.Keyless = c.keyless
			cfg.Source.KeyColumns = c.keyColumns
			s := newSource(t, cfg)
			if err := s.Setup(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			r := runSource(t, s, nil)
			var err error
			select {
			case err = <-r.done:
				r.done <- err
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not refuse")
			}
			var fe *sources.FatalError
			if !errors.As(err, &fe) {
				t.Fatalf("Run returned %v, want a fatal error", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestKeylessSnapshotByCtid snapshots a table without any unique index,
// duplicate rows included, by ctid ranges under an exported snapshot while
// a writer inserts, updates and deletes rows; a restart after it does not
// read the table again. The rows the events leave (a multiset, keyed by the
// whole row) equal the table's.
func TestKeylessSnapshotByCtid(t *testing.T) {
	const rows = 5000
	e := startPG(t)
	e.exec(t, `CREATE TABLE heap (a int, b text);
ALTER TABLE heap REPLICA IDENTITY FULL;
INSERT INTO heap SELECT g % 4000, 'row ' || (g % 4000) FROM generate_series(1, 5000) g; ANALYZE heap`)
	cfg := e.config("public.heap")
	cfg.Source.Keyless = []string{"public.heap"}
	cfg.Source.SnapshotChunkSize = 700
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	rep.Print(&sb)
	if !strings.Contains(sb.String(), "by ctid ranges") {
		t.Errorf("check does not say the table is read by ctid ranges:\n%s", sb.String())
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	conn := e.pg.Conn(t, testDB)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch x := rand.IntN(10); {
			case x < 4:
				_, err = conn.Exec(context.Background(), "INSERT INTO heap VALUES ($1, 'new')", rand.IntN(100))
			case x < 7:
				_, err = conn.Exec(context.Background(), "UPDATE heap SET b = b || '+' WHERE ctid = (SELECT ctid FROM heap WHERE a = $1 LIMIT 1)", rand.IntN(4000))
			default:
				_, err = conn.Exec(context.Background(), "DELETE FROM heap WHERE ctid = (SELECT ctid FROM heap WHERE a = $1 LIMIT 1)", rand.IntN(4000))
			}
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	r := runLoop(t, s, nil)
	var before []*change.Event // committed by the first run
	all := func() []*change.Event { return append(append([]*change.Event(nil), before...), r.events()...) }
	reads := func() int {
		n := 0
		for _, ev := range all() {
			if ev.Op == change.OpRead {
				n++
			}
		}
		return n
	}
	waitFor(t, 60*time.Second, "the snapshot", func() bool { return reads() > 0 })
	// A restart after the snapshot committed must not read the table again.
	time.Sleep(300 * time.Millisecond)
	r.stop()
	before = r.events()
	r = runLoop(t, s, r.lastState())
	time.Sleep(time.Second)
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
	r.stop()
	t.Logf("%d rows read by the snapshot", reads())
	if n := reads(); n < rows-500 || n > rows+500 {
		t.Errorf("%d snapshot rows for a table of about %d", n, rows)
	}
	count := map[string]int{}
	for _, ev := range all() {
		switch ev.Op {
		case change.OpDelete:
			count[string(ev.Key)]--
		case change.OpCreate, change.OpRead:
			count[string(ev.Key)]++
		default:
			t.Fatalf("op %s on a keyless table", ev.Op)
		}
	}
	dbRows, err := e.admin.Query(context.Background(), "SELECT a, b FROM heap")
	if err != nil {
		t.Fatal(err)
	}
	for dbRows.Next() {
		var a int
		var b string
		dbRows.Scan(&a, &b)
		k, _ := json.Marshal(map[string]any{"a": a, "b": b})
		count[string(k)]--
	}
	dbRows.Close()
	bad := 0
	for k, n := range count {
		if n != 0 && bad < 10 {
			bad++
			t.Errorf("row %s: the events leave %+d copies more than the table holds", k, n)
		}
	}
}

// TestKeyColumnsOnKeyedTable keys a table with a primary key by other
// columns (source.key_columns): snapshot and stream events carry the chosen
// key, an update that keeps it is an update, and one that changes it is a
// delete of the old key and a create of the new.
func TestKeyColumnsOnKeyedTable(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE acct (id int PRIMARY KEY, region text NOT NULL, v int);
ALTER TABLE acct REPLICA IDENTITY FULL;
INSERT INTO acct VALUES (1, 'eu', 0)`)
	cfg := e.config("public.acct")
	cfg.Source.KeyColumns = []string{"public.acct:region,id"}
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, nil)
	r.waitEvents(t, 1, 20*time.Second)
	e.exec(t, `UPDATE acct SET v = 1 WHERE id = 1; UPDATE acct SET region = 'us' WHERE id = 1`)
	evs := r.waitEvents(t, 4, 20*time.Second)
	var got []string
	for _, ev := range evs {
		got = append(got, string(ev.Op)+" "+string(ev.Key))
	}
	want := []string{`r {"region":"eu","id":1}`, `u {"region":"eu","id":1}`, `d {"region":"eu","id":1}`, `c {"region":"us","id":1}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestKeylessCtidCrashMidRead stops the source while it sends the rows of a
// table read by ctid ranges, before their Kafka transaction could commit
// (as a kill -9 of the relay would): nothing of the read is committed, and
// the next run reads the table again at a new snapshot point, so the rows
// the events leave equal the table's, with a writer busy all along.
func TestKeylessCtidCrashMidRead(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE heap (a int, b text);
ALTER TABLE heap REPLICA IDENTITY FULL;
INSERT INTO heap SELECT g % 20000, 'row ' || g FROM generate_series(1, 40000) g; ANALYZE heap`)
	cfg := e.config("public.heap")
	cfg.Source.Keyless = []string{"public.heap"}
	cfg.Source.SnapshotChunkSize = 500
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	conn := e.pg.Conn(t, testDB)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch x := rand.IntN(3); x {
			case 0:
				_, err = conn.Exec(context.Background(), "INSERT INTO heap VALUES ($1, 'new')", rand.IntN(100))
			case 1:
				_, err = conn.Exec(context.Background(), "UPDATE heap SET b = b || '+' WHERE ctid = (SELECT ctid FROM heap WHERE a = $1 LIMIT 1)", rand.IntN(20000))
			default:
				_, err = conn.Exec(context.Background(), "DELETE FROM heap WHERE ctid = (SELECT ctid FROM heap WHERE a = $1 LIMIT 1)", rand.IntN(20000))
			}
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	r := runSource(t, s, nil)
	// Hold every checkpoint back so the read cannot commit, and stop once
	// some of its rows have been sent.
	r.mu.Lock()
	r.noAck = true
	r.mu.Unlock()
	waitFor(t, 60*time.Second, "rows of the read in flight", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := 0
		for _, ev := range r.pending {
			if ev.Op == change.OpRead {
				n++
			}
		}
		return n >= 2000
	})
	// The state the crash leaves: the last checkpoint before the read.
	r.mu.Lock()
	state := r.state
	var before []*change.Event
	before = append(before, r.committed...)
	r.mu.Unlock()
	r.stop()
	for _, ev := range before {
		if ev.Op == change.OpRead {
			t.Fatal("a row of the read was committed before the read ended")
		}
	}
	r = runSource(t, s, state)
	waitFor(t, 90*time.Second, "the second read", func() bool {
		for _, ev := range r.events() {
			if ev.Source.Snapshot == change.SnapshotLast {
				return true
			}
		}
		return false
	})
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
	r.stop()
	count := map[string]int{}
	reads := 0
	for _, ev := range append(before, r.events()...) {
		switch ev.Op {
		case change.OpDelete:
			count[string(ev.Key)]--
		case change.OpRead:
			reads++
			count[string(ev.Key)]++
		case change.OpCreate:
			count[string(ev.Key)]++
		}
	}
	t.Logf("%d rows read by the second snapshot", reads)
	dbRows, err := e.admin.Query(context.Background(), "SELECT a, b FROM heap")
	if err != nil {
		t.Fatal(err)
	}
	for dbRows.Next() {
		var a int
		var b string
		dbRows.Scan(&a, &b)
		k, _ := json.Marshal(map[string]any{"a": a, "b": b})
		count[string(k)]--
	}
	dbRows.Close()
	bad := 0
	for k, n := range count {
		if n != 0 && bad < 10 {
			bad++
			t.Errorf("row %s: the events leave %+d copies more than the table holds", k, n)
		}
	}
}
