package mysql

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
)

// TestKeylessSnapshotByUniqueIndex snapshots a table without a primary key
// through its unique index on a NOT NULL column while a writer changes it,
// stopping and resuming the source twice mid-snapshot; source.key_columns
// keys the events by that column. The folded events equal the table, each
// key's versions grow, and no row is read twice.
func TestKeylessSnapshotByUniqueIndex(t *testing.T) {
	t.Parallel()
	const rows = 20_000
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.big (id INT NOT NULL, v INT NOT NULL, pad VARCHAR(50) NOT NULL, UNIQUE KEY by_id (id))")
	m.Exec(t, fmt.Sprintf("INSERT INTO shop.big (id, v, pad) SELECT seq, 1, CONCAT('row ', seq) FROM shop.seq_1_to_%d", rows))
	m.Exec(t, "CREATE TABLE shop.sentinel (id INT PRIMARY KEY)")
	cfg := testConfig(m)
	cfg.Source.Keyless = []string{"shop.big"}
	cfg.Source.KeyColumns = []string{"shop.big:id"}
	cfg.Source.SnapshotChunkSize = 1000
	src, _ := newSource(t, cfg)
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	w := startWriter(t, m, rows)
	var k sink
	for stop := 1; stop <= 2; stop++ {
		r := k.start(t, src)
		k.waitFor(t, 60*time.Second, "some chunks", func(evs []*change.Event) bool {
			return countOps(evs, "big", change.OpRead) >= stop*5_000
		})
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
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
	w.finish()
	m.Exec(t, "INSERT INTO shop.sentinel VALUES (1)")
	evs := k.waitFor(t, 60*time.Second, "sentinel", func(evs []*change.Event) bool { return countOps(evs, "sentinel", change.OpCreate) == 1 })
	checkOrder(t, evs)
	checkFold(t, evs, m)
}

// TestKeylessImplicitKeyAndRefusal: a keyless table with a unique index on
// NOT NULL columns and no source.key_columns is keyed by that index, the
// server's implicit primary key, in the snapshot as in the stream (the
// binlog names it as the key); one without any unique NOT NULL index is
// refused with a line that names the fix.
func TestKeylessImplicitKeyAndRefusal(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.wr (a INT NOT NULL, b VARCHAR(10), UNIQUE KEY (a))")
	m.Exec(t, "INSERT INTO shop.wr VALUES (1, 'one')")
	m.Exec(t, "CREATE TABLE shop.loose (a INT, b VARCHAR(10), UNIQUE KEY (a))")
	// A unique index on a prefix reads the snapshot but is not the server's
	// implicit key: the binlog keys the rows by the whole row, and so must
	// the snapshot.
	m.Exec(t, "CREATE TABLE shop.pre (a VARCHAR(20) NOT NULL, c INT, UNIQUE KEY ka (a(5)))")
	m.Exec(t, "INSERT INTO shop.pre VALUES ('alpha', 1)")

	cfg := testConfig(m, "shop.wr")
	cfg.Source.Keyless = []string{"shop.wr"}
	src, _ := newSource(t, cfg)
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	r := k.start(t, src)
	k.waitFor(t, 30*time.Second, "the snapshot row", func(evs []*change.Event) bool { return len(evs) >= 1 })
	m.Exec(t, "INSERT INTO shop.wr VALUES (2, 'two')")
	evs := k.waitFor(t, 30*time.Second, "the insert", func(evs []*change.Event) bool { return len(evs) >= 2 })
	if evs[0].Op != change.OpRead || string(evs[0].Key) != `{"a":1}` || string(evs[1].Key) != `{"a":2}` {
		t.Fatalf("events %s %s, %s %s; want the snapshot row and the insert keyed by the unique column", evs[0].Op, evs[0].Key, evs[1].Op, evs[1].Key)
	}
	r.stop()

	cfg = testConfig(m, "shop.pre")
	cfg.ID = "pre"
	cfg.Source.ServerID = 0
	cfg.Source.Keyless = []string{"shop.pre"}
	src, _ = newSource(t, cfg)
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var kp sink
	rp := kp.start(t, src)
	kp.waitFor(t, 30*time.Second, "the snapshot row", func(evs []*change.Event) bool { return len(evs) >= 1 })
	m.Exec(t, "INSERT INTO shop.pre VALUES ('betas', 2)")
	evs = kp.waitFor(t, 30*time.Second, "the insert", func(evs []*change.Event) bool { return len(evs) >= 2 })
	if evs[0].Op != change.OpRead || string(evs[0].Key) != `{"a":"alpha","c":1}` || string(evs[1].Key) != `{"a":"betas","c":2}` {
		t.Fatalf("events %s %s, %s %s; want the snapshot row and the insert keyed by the whole row", evs[0].Op, evs[0].Key, evs[1].Op, evs[1].Key)
	}
	rp.stop()

	cfg = testConfig(m, "shop.loose")
	cfg.ID = "loose"
	cfg.Source.ServerID = 0
	cfg.Source.Keyless = []string{"shop.loose"}
	src, _ = newSource(t, cfg)
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k2 sink
	err := k2.start(t, src).wait(t, 30*time.Second)
	if !isFatal(err) {
		t.Fatalf("Run returned %v, want a fatal refusal", err)
	}
	for _, want := range []string{"shop.loose has no primary key and no unique index on NOT NULL columns", "source.snapshot: never"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestKeyColumnsOnKeyedTable keys a table with a primary key by other
// columns (source.key_columns): snapshot and stream events carry the chosen
// key, an update that keeps it is an update, and one that changes it is a
// delete of the old key and a create of the new.
func TestKeyColumnsOnKeyedTable(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.acct (id INT PRIMARY KEY, region VARCHAR(8) NOT NULL, v INT)")
	m.Exec(t, "INSERT INTO shop.acct VALUES (1, 'eu', 0)")
	cfg := testConfig(m, "shop.acct")
	cfg.Source.KeyColumns = []string{"shop.acct:region,id"}
	src, _ := newSource(t, cfg)
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	k.start(t, src)
	k.waitFor(t, 30*time.Second, "the snapshot row", func(evs []*change.Event) bool { return len(evs) >= 1 })
	m.Exec(t, "UPDATE shop.acct SET v = 1 WHERE id = 1")
	m.Exec(t, "UPDATE shop.acct SET region = 'us' WHERE id = 1")
	evs := k.waitFor(t, 30*time.Second, "the updates", func(evs []*change.Event) bool { return len(evs) >= 4 })
	var got []string
	for _, ev := range evs {
		got = append(got, string(ev.Op)+" "+string(ev.Key))
	}
	want := []string{`r {"region":"eu","id":1}`, `u {"region":"eu","id":1}`, `d {"region":"eu","id":1}`, `c {"region":"us","id":1}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCheckKeyColumns: check blocks a source.key_columns entry that names a
// column the table lacks, and says how each keyless table is keyed.
func TestCheckKeyColumns(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.acct (id INT PRIMARY KEY, region VARCHAR(8))")
	m.Exec(t, "CREATE TABLE shop.logs (seq INT NOT NULL, msg TEXT, UNIQUE KEY (seq))")
	cfg := testConfig(m, "shop.acct", "shop.logs")
	cfg.Source.Keyless = []string{"shop.logs"}
	cfg.Source.KeyColumns = []string{"shop.acct:region,nope", "shop.logs:seq"}
	src, _ := newSource(t, cfg)
	rep, err := src.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if f := findings(rep, sources.Block)["table shop.acct"]; !strings.Contains(f, "source.key_columns names columns the table does not have: nope") {
		t.Errorf("shop.acct finding %q", f)
	}
	if f := findings(rep, sources.OK)["table shop.logs"]; !strings.Contains(f, "keyed by seq (source.key_columns)") || !strings.Contains(f, "unique index seq") {
		t.Errorf("shop.logs finding %q", f)
	}
}
