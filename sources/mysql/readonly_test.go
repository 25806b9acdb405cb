package mysql

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/sources"
)

// readOnlyGrants are the only privileges the relay's user gets in the
// read-only tests: read the tables and the binlog, nothing else.
var readOnlyGrants = []string{
	"GRANT SELECT ON shop.* TO 'ro'@'%'",
	"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'ro'@'%'",
}

// readOnlyConfig is testConfig for the user ro on m.
func readOnlyConfig(m *testenv.MariaDB) *config.Config {
	cfg := testConfig(m, "shop.big", "shop.sentinel")
	cfg.Source.DSN = m.DSN("ro", "shop")
	return cfg
}

// fillShop creates shop.big with rows rows and an empty shop.sentinel on m.
func fillShop(t *testing.T, m *testenv.MariaDB, rows int) {
	t.Helper()
	m.Exec(t, "CREATE DATABASE shop")
	m.Exec(t, "CREATE USER 'ro'@'%' IDENTIFIED BY '"+testPassword+"'")
	for _, g := range readOnlyGrants {
		m.Exec(t, g)
	}
	m.Exec(t, "CREATE TABLE shop.big (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(50) NOT NULL)")
	m.Exec(t, fmt.Sprintf("INSERT INTO shop.big SELECT seq, 1, CONCAT('row ', seq) FROM shop.seq_1_to_%d", rows))
	m.Exec(t, "CREATE TABLE shop.sentinel (id INT PRIMARY KEY)")
}

// checkBinlogMode runs Check and Setup as the relay would and requires
// that they choose binlog mode for the reason given, and that Setup leaves
// the server as it was.
func checkBinlogMode(t *testing.T, src *Source, m *testenv.MariaDB, reason string) {
	t.Helper()
	rep, err := src.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range rep {
		if f.Level == sources.Block {
			t.Errorf("check blocks: %s: %s", f.Subject, f.Detail)
		}
		if f.Subject == "snapshot watermark" {
			found = true
			t.Logf("check: %s: %s", f.Subject, f.Detail)
			if !strings.HasPrefix(f.Detail, "binlog:") || !strings.Contains(f.Detail, reason) {
				t.Errorf("check reports %q, want binlog mode because %s", f.Detail, reason)
			}
		}
	}
	if !found {
		t.Error("check does not report the snapshot watermark mode")
	}
	before := m.Exec(t, "SELECT @@gtid_binlog_pos")
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	after := m.Exec(t, "SELECT @@gtid_binlog_pos")
	b, _ := before.GetString(0, 0)
	a, _ := after.GetString(0, 0)
	if a != b {
		t.Errorf("Setup wrote to the server: gtid_binlog_pos %s -> %s", b, a)
	}
}

// snapshotWithRestarts runs src while w changes the rows on the primary,
// stops it twice mid-snapshot (what an uncommitted Kafka transaction held
// is dropped, as after a kill), lets it finish, and requires that the
// folded events equal shop.big on the server read, with each key's
// versions in order and no row read twice.
func snapshotWithRestarts(t *testing.T, src *Source, primary, read *testenv.MariaDB, rows int) []*change.Event {
	t.Helper()
	w := startWriter(t, primary, rows)
	var k sink
	for stop := 1; stop <= 2; stop++ {
		r := k.start(t, src)
		k.waitFor(t, 3*time.Minute, "some chunks", func(evs []*change.Event) bool {
			return countOps(evs, "big", change.OpRead) >= stop*rows/4
		})
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		evs, _ := k.snapshot()
		t.Logf("stopped after %d snapshot rows", countOps(evs, "big", change.OpRead))
	}
	k.start(t, src)
	k.waitFor(t, 5*time.Minute, "snapshot end", func(evs []*change.Event) bool {
		for _, e := range evs {
			if e.Source.Snapshot == change.SnapshotLast && e.Table.Name == "big" {
				return true
			}
		}
		return false
	})
	ops := w.finish()
	primary.Exec(t, "INSERT INTO shop.sentinel VALUES (1)")
	evs := k.waitFor(t, 2*time.Minute, "sentinel", func(evs []*change.Event) bool { return countOps(evs, "sentinel", change.OpCreate) == 1 })
	t.Logf("%d concurrent writes, %d events, %d snapshot rows", ops, len(evs), countOps(evs, "big", change.OpRead))
	checkOrder(t, evs)
	checkFold(t, evs, read)
	return evs
}

// TestBinlogSnapshotReadOnlyServer snapshots from a read_only MariaDB with
// a user that may only SELECT and replicate: auto picks binlog mode, and
// the events, under concurrent writes and two restarts, fold to the table.
func TestBinlogSnapshotReadOnlyServer(t *testing.T) {
	t.Parallel()
	const rows = 40_000
	m := testenv.StartMariaDB(t)
	fillShop(t, m, rows)
	m.Exec(t, "SET GLOBAL read_only = ON")
	src, _ := newSource(t, readOnlyConfig(m))
	checkBinlogMode(t, src, m, "read_only")
	snapshotWithRestarts(t, src, m, m, rows)
	if n, _ := m.Exec(t, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = '"+WatermarkTable+"'").GetInt(0, 0); n != 0 {
		t.Error("the watermark table was created")
	}
}

// TestBinlogSnapshotWithoutWriteGrants: on a server that is not read_only,
// a user without INSERT and UPDATE on the watermark table also gets binlog
// mode, and an idle table is snapshotted without waiting on writes.
func TestBinlogSnapshotWithoutWriteGrants(t *testing.T) {
	t.Parallel()
	const rows = 5000
	m := testenv.StartMariaDB(t)
	fillShop(t, m, rows)
	src, _ := newSource(t, readOnlyConfig(m))
	checkBinlogMode(t, src, m, "lacks INSERT, UPDATE, CREATE")
	var k sink
	start := time.Now()
	k.start(t, src)
	evs := k.waitFor(t, 2*time.Minute, "snapshot end", func(evs []*change.Event) bool {
		return countOps(evs, "big", change.OpRead) == rows
	})
	t.Logf("idle snapshot of %d rows in chunks of 1000: %v", rows, time.Since(start).Round(time.Millisecond))
	checkOrder(t, evs)
	if got, want := applyEvents(evs, "big"), tableState(t, m); len(got) != len(want) {
		t.Errorf("folded events hold %d rows, the table %d", len(got), len(want))
	}
}

// TestBinlogSnapshotFromReplica snapshots and streams from a read_only
// MariaDB replica (GTID replication, log_slave_updates) while the writes
// go to its primary; the events fold to the replica's table, which equals
// the primary's.
func TestBinlogSnapshotFromReplica(t *testing.T) {
	t.Parallel()
	const rows = 40_000
	primary := testenv.StartMariaDB(t)
	replica := testenv.StartMariaDB(t, testenv.MariaConf("server_id = 2", "read_only = ON"))
	fillShop(t, primary, rows)
	replica.Exec(t, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %d, MASTER_USER = 'root', MASTER_USE_GTID = slave_pos", primary.Port))
	replica.Exec(t, "START SLAVE")
	waitReplica(t, primary, replica)
	src, _ := newSource(t, readOnlyConfig(replica))
	checkBinlogMode(t, src, replica, "read_only")
	snapshotWithRestarts(t, src, primary, replica, rows)
	if got, want := tableState(t, replica), tableState(t, primary); len(got) != len(want) {
		t.Errorf("replica has %d rows, primary %d", len(got), len(want))
	}
}

// waitReplica waits until the replica has applied everything in the
// primary's binlog.
func waitReplica(t *testing.T, primary, replica *testenv.MariaDB) {
	t.Helper()
	want, _ := primary.Exec(t, "SELECT @@gtid_binlog_pos").GetString(0, 0)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, _ := replica.Exec(t, "SELECT @@gtid_slave_pos").GetString(0, 0)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			st := replica.Exec(t, "SHOW SLAVE STATUS")
			errStr, _ := st.GetStringByName(0, "Last_Error")
			ioErr, _ := st.GetStringByName(0, "Last_IO_Error")
			t.Fatalf("replica at %q, primary at %q; last error %q, io error %q", got, want, errStr, ioErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBinlogPosOrder: binlog points order by file number, then offset, and
// the zero point is before every other.
func TestBinlogPosOrder(t *testing.T) {
	ordered := []binlogPos{
		{},
		{"binlog.000009", 4},
		{"binlog.000009", 1200},
		{"binlog.000010", 4},
		{"binlog.100000", 4},
	}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := a.compare(b); got != want {
				t.Errorf("%v compare %v = %d, want %d", a, b, got, want)
			}
		}
	}
}

// TestBinlogSnapshotServerKill kills a read_only MariaDB with SIGKILL in
// the middle of a binlog-mode snapshot. The source reconnects to the
// restarted server, whose binlog has moved to a new file, resumes at the
// next chunk, and the events, with writes after the restart, fold to the
// table with no row read twice.
func TestBinlogSnapshotServerKill(t *testing.T) {
	t.Parallel()
	const rows = 40_000
	m := testenv.StartMariaDB(t, testenv.MariaConf("read_only = ON"))
	fillShop(t, m, rows)
	src, _ := newSource(t, readOnlyConfig(m))
	var k sink
	sv := k.supervise(t, src)
	k.waitFor(t, 3*time.Minute, "some chunks", func(evs []*change.Event) bool {
		return countOps(evs, "big", change.OpRead) >= rows/4
	})
	m.Kill(t)
	time.Sleep(500 * time.Millisecond)
	m.Start(t)
	evs, _ := k.snapshot()
	t.Logf("server killed after %d snapshot rows", countOps(evs, "big", change.OpRead))
	w := startWriter(t, m, rows)
	k.waitFor(t, 5*time.Minute, "snapshot end", func(evs []*change.Event) bool {
		for _, e := range evs {
			if e.Source.Snapshot == change.SnapshotLast && e.Table.Name == "big" {
				return true
			}
		}
		return false
	})
	ops := w.finish()
	m.Exec(t, "INSERT INTO shop.sentinel VALUES (1)")
	evs = k.waitFor(t, 2*time.Minute, "sentinel", func(evs []*change.Event) bool { return countOps(evs, "sentinel", change.OpCreate) == 1 })
	t.Logf("%d writes after the restart, %d Run restarts, %d events", ops, sv.restartCount(), len(evs))
	checkOrder(t, evs)
	checkFold(t, evs, m)
}
