package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestMySQLKillsDuringSnapshotAndStream runs `cdcrelay run` against
// MariaDB while a versioned writer changes the captured table, and kills
// the relay with SIGKILL six times: during the snapshot and while
// streaming. The topic, read read_committed, must pass the checker against
// the writer's ledger (judgeKillTopic), and no run that starts from stored
// snapshot progress may start the snapshot over.
func TestMySQLKillsDuringSnapshotAndStream(t *testing.T) {
	mysqlKills(t, "table", false,
		"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'relay'@'%'",
		"GRANT SELECT, INSERT, UPDATE, CREATE ON shop.* TO 'relay'@'%'")
}

// TestMySQLReadOnlyKills is the same against a read_only MariaDB with a
// user that may only SELECT and replicate: the snapshot runs in binlog
// watermark mode and survives the kills alike.
func TestMySQLReadOnlyKills(t *testing.T) {
	mysqlKills(t, "binlog", true,
		"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'relay'@'%'",
		"GRANT SELECT ON shop.* TO 'relay'@'%'")
}

// mysqlKills runs the kill test with these grants for the relay's user,
// requiring the relay to log this snapshot watermark mode.
func mysqlKills(t *testing.T, mode string, readOnly bool, grants ...string) {
	const rows = 100000
	b := testenv.StartBroker(t)
	m := testenv.StartMariaDB(t)
	m.Exec(t, "CREATE DATABASE shop")
	m.Exec(t, "CREATE USER 'relay'@'%' IDENTIFIED BY 'relay-pw'")
	for _, g := range grants {
		m.Exec(t, g)
	}
	m.Exec(t, "CREATE TABLE shop.vers (id INT PRIMARY KEY, ver INT NOT NULL, pad VARCHAR(100) NOT NULL)")
	m.Exec(t, fmt.Sprintf("INSERT INTO shop.vers SELECT seq, 1, '%s' FROM shop.seq_1_to_%d", killPad, rows))
	if readOnly {
		m.Exec(t, "SET GLOBAL read_only = ON")
	}
	cfg := writeConfig(t, fmt.Sprintf(`id: mk
source:
  type: mysql
  dsn: %s
  tables: [shop.vers]
  snapshot_chunk_size: 200
kafka:
  brokers: [%s]
  topic_prefix: mk
  batch_linger: 50ms
  batch_max_events: 2000
metrics:
  listen: "off"
`, m.DSN("relay", "shop"), b.Addr))
	env := "CDCRELAY_SOURCE_PASSWORD=relay-pw"

	// The writer: ver grows by one per update; deleted ids never come back.
	ledger := newKillLedger(rows)
	stopWriter := ledger.startWriter(t, func() (func(string) error, func(), error) {
		c, err := client.Connect(m.Addr(), "root", "", "shop")
		if err != nil {
			return nil, nil, err
		}
		exec := func(sql string) error { _, err := c.Execute(sql); return err }
		return exec, func() { c.Close() }, nil
	})

	var outputs []string
	// resumable[i] says whether the offsets record that run i started from
	// held snapshot progress: from then on no run may start the snapshot
	// from its first key. Before the first chunk commits, a run that
	// starts over reads nothing twice.
	var resumable []bool
	progress := func() bool {
		st := offsetsState(t, cfg)
		return strings.Contains(st, `"last_key"`) || strings.Contains(st, `"done"`)
	}
	resumable = append(resumable, false)
	p := startRelay(t, cfg, env)
	duringSnapshot := 0
	for i := 0; i < 6; i++ {
		// the first three land while the snapshot runs, the others while
		// streaming
		pause := 200 + rand.IntN(400)
		if i >= 3 {
			pause = 800 + rand.IntN(1500)
		}
		time.Sleep(time.Duration(pause) * time.Millisecond)
		if ledger.killDuringSnapshot(t, cfg) {
			duringSnapshot++
		}
		p.kill()
		outputs = append(outputs, p.out.String())
		resumable = append(resumable, progress())
		p = startRelay(t, cfg, env)
	}
	ledger.writeOnPastSnapshot(t, cfg)
	writes := stopWriter()

	waitMyCaughtUp(t, m, cfg)
	outputs = append(outputs, stopClean(t, p))
	t.Logf("%d writes, 6 kills (%d during the snapshot)", writes, duringSnapshot)
	if duringSnapshot == 0 {
		t.Errorf("no kill landed during the snapshot")
	}

	final := map[int64]int64{}
	res := m.Exec(t, "SELECT id, ver FROM shop.vers")
	for i := range res.RowNumber() {
		id, _ := res.GetInt(i, 0)
		v, _ := res.GetInt(i, 1)
		final[id] = v
	}
	snapKeys := judgeKillTopic(t, b, "mk.shop.vers", ledger, final)
	// A restarted relay resumes the snapshot; once a chunk is committed it
	// never starts it over.
	for i, o := range outputs {
		if resumable[i] && snapshotStarts(o) > 0 {
			t.Errorf("run %d started the snapshot of shop.vers from its first key although the stored record held progress", i+1)
		}
	}
	if !strings.Contains(strings.Join(outputs, ""), "mode="+mode) {
		t.Errorf("the relay did not log snapshot watermark mode %s", mode)
	}
	t.Logf("%d rows in the table, %d keys with a snapshot row", len(final), snapKeys)
}

// waitMyCaughtUp waits until the stored offsets record says the snapshot is
// done and its position has reached the server's; the snapshot's last
// watermarks may take it further.
func waitMyCaughtUp(t *testing.T, m *testenv.MariaDB, cfg string) {
	t.Helper()
	want, _ := m.Exec(t, "SELECT @@gtid_binlog_pos").GetString(0, 0)
	eventually(t, 3*time.Minute, "the relay to finish the snapshot and catch up with "+want, func() bool {
		var st struct{ GTID string }
		s := offsetsState(t, cfg)
		return s != "" && json.Unmarshal([]byte(s), &st) == nil && !strings.Contains(s, `"queue"`) && gtidAtLeast(st.GTID, want)
	})
}
