package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestMySQLKillsDuringSnapshotAndStream runs `cdcrelay run` against
// MariaDB while a versioned writer changes the captured table, and kills
// the relay with SIGKILL six times: during the snapshot and while
// streaming. The topic, read read_committed, must hold every version of
// every key once and in order, equal the table at the end, and hold at most
// one snapshot row per key (no chunk read twice).
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
	m.Exec(t, "CREATE TABLE shop.vers (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(100) NOT NULL)")
	m.Exec(t, fmt.Sprintf("INSERT INTO shop.vers SELECT seq, 1, REPEAT('p', 100) FROM shop.seq_1_to_%d", rows))
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

	// The writer: v only grows per key, deleted ids never come back.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	writes := 0
	go func() {
		defer wg.Done()
		c, err := client.Connect(m.Addr(), "root", "", "shop")
		if err != nil {
			t.Errorf("writer: %v", err)
			return
		}
		defer c.Close()
		next := rows + 1
		for {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch n := rand.IntN(10); {
			case n < 7:
				_, err = c.Execute(fmt.Sprintf("UPDATE vers SET v = v + 1 WHERE id = %d", 1+rand.IntN(next-1)))
			case n < 9:
				_, err = c.Execute(fmt.Sprintf("INSERT INTO vers VALUES (%d, 1, 'new')", next))
				next++
			default:
				_, err = c.Execute(fmt.Sprintf("DELETE FROM vers WHERE id = %d", 1+rand.IntN(next-1)))
			}
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			writes++
			time.Sleep(time.Millisecond)
		}
	}()

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
		if st := offsetsState(t, cfg); st == "" || strings.Contains(st, `"queue"`) {
			duringSnapshot++
		}
		p.kill()
		outputs = append(outputs, p.out.String())
		resumable = append(resumable, progress())
		p = startRelay(t, cfg, env)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	// Wait until the stored position reaches the server's.
	res := m.Exec(t, "SELECT @@gtid_binlog_pos")
	want, _ := res.GetString(0, 0)
	eventually(t, 3*time.Minute, "the relay to catch up with "+want, func() bool {
		var st struct{ GTID string }
		s := offsetsState(t, cfg)
		return s != "" && json.Unmarshal([]byte(s), &st) == nil && st.GTID == want
	})
	if code := p.stop(t); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
	outputs = append(outputs, p.out.String())
	t.Logf("%d writes, 6 kills (%d during the snapshot)", writes, duringSnapshot)
	if duringSnapshot == 0 {
		t.Errorf("no kill landed during the snapshot")
	}

	type value struct {
		Op    string          `json:"op"`
		After json.RawMessage `json:"after"`
	}
	type row struct {
		ID  int    `json:"id"`
		V   int    `json:"v"`
		Pad string `json:"pad"`
	}
	recs := readAll(t, b, "mk.shop.vers")
	last := map[string]int{}
	state := map[string]row{}
	reads := map[string]int{}
	seen := map[string]bool{}
	for _, r := range recs {
		if r.Value == nil {
			continue // tombstone
		}
		var v value
		mustJSON(t, r.Value, &v)
		if v.Op == "r" {
			reads[r.Key]++
			if reads[r.Key] > 1 {
				t.Fatalf("key %s has two snapshot rows: a chunk was read twice", r.Key)
			}
		}
		if v.Op == "d" {
			delete(state, r.Key)
			continue
		}
		var a row
		mustJSON(t, v.After, &a)
		ver := fmt.Sprintf("%s/%d", r.Key, a.V)
		if seen[ver] {
			t.Fatalf("version %s sent twice", ver)
		}
		seen[ver] = true
		if p, ok := last[r.Key]; ok && a.V <= p {
			t.Fatalf("key %s: v%d after v%d", r.Key, a.V, p)
		}
		last[r.Key] = a.V
		state[r.Key] = a
	}
	res = m.Exec(t, "SELECT id, v, pad FROM shop.vers")
	if res.RowNumber() != len(state) {
		t.Errorf("topic folds to %d rows, the table has %d", len(state), res.RowNumber())
	}
	bad := 0
	for i := 0; i < res.RowNumber(); i++ {
		id, _ := res.GetInt(i, 0)
		v, _ := res.GetInt(i, 1)
		pad, _ := res.GetString(i, 2)
		got, ok := state[fmt.Sprintf(`{"id":%d}`, id)]
		if (!ok || got.V != int(v) || got.Pad != pad) && bad < 5 {
			bad++
			t.Errorf("id %d: table v%d, topic %+v (present %v)", id, v, got, ok)
		}
	}
	if !strings.Contains(strings.Join(outputs, ""), "mode="+mode) {
		t.Errorf("the relay did not log snapshot watermark mode %s", mode)
	}
	// A restarted relay resumes the snapshot; once a chunk is committed it
	// never starts it over.
	for i, o := range outputs {
		for _, l := range strings.Split(o, "\n") {
			if resumable[i] && strings.Contains(l, "snapshot: reading table") && strings.Contains(l, "resumed=false") {
				t.Errorf("run %d started the snapshot of shop.vers from its first key although the stored record held progress", i+1)
			}
		}
	}
	t.Logf("%d records, %d keys, %d snapshot rows", len(recs), len(state), len(reads))
}
