package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestPostgresKillsDuringSnapshotAndStream runs `cdcrelay run` against
// PostgreSQL while a versioned writer changes the captured table, and kills
// the relay with SIGKILL six times, during the snapshot and while
// streaming. Read read_committed, the topic must pass the checker against
// the writer's ledger (judgeKillTopic); the snapshot never starts over, and
// a restart once streaming reads no row of the table.
func TestPostgresKillsDuringSnapshotAndStream(t *testing.T) {
	const rows = 100000
	b := testenv.StartBroker(t)
	pg := testenv.StartPostgres(t)
	pg.CreateDB(t, "shop")
	pg.Exec(t, "shop", "CREATE ROLE relay LOGIN REPLICATION PASSWORD 'relay-pw'")
	pg.Exec(t, "shop", "GRANT CREATE ON DATABASE shop TO relay")
	pg.Exec(t, "shop", "CREATE TABLE vers (id int PRIMARY KEY, ver int NOT NULL, pad text NOT NULL)")
	pg.Exec(t, "shop", "ALTER TABLE vers REPLICA IDENTITY FULL")
	pg.Exec(t, "shop", "ALTER TABLE vers OWNER TO relay")
	pg.Exec(t, "shop", fmt.Sprintf("INSERT INTO vers SELECT g, 1, '%s' FROM generate_series(1, %d) g", killPad, rows))
	cfg := writeConfig(t, fmt.Sprintf(`id: pk
source:
  type: postgres
  dsn: %s
  tables: [public.vers]
  snapshot_chunk_size: 200
  heartbeat_interval: 1s
kafka:
  brokers: [%s]
  batch_linger: 50ms
  batch_max_events: 2000
metrics:
  listen: "off"
`, pg.DSN("relay", "shop"), b.Addr))
	env := "CDCRELAY_SOURCE_PASSWORD=relay-pw"

	// The writer: ver grows by one per update; deleted ids never come back.
	ledger := newKillLedger(rows)
	stopWriter := ledger.startWriter(t, func() (func(string) error, func(), error) {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, pg.DSN("postgres", "shop"))
		if err != nil {
			return nil, nil, err
		}
		exec := func(sql string) error { _, err := c.Exec(ctx, sql); return err }
		return exec, func() { c.Close(ctx) }, nil
	})

	var outputs []string
	p := startRelay(t, cfg, env)
	duringSnapshot := 0
	for i := 0; i < 6; i++ {
		if i < 3 {
			// Wait until this run has committed snapshot progress, then
			// kill it at a random moment of the next chunks.
			before := offsetsState(t, cfg)
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if st := offsetsState(t, cfg); st != before || !strings.Contains(st, `"queue"`) && st != "" {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(800+rand.IntN(1500)) * time.Millisecond)
		}
		if ledger.killDuringSnapshot(t, cfg) {
			duringSnapshot++
		}
		p.kill()
		outputs = append(outputs, p.out.String())
		p = startRelay(t, cfg, env)
	}
	ledger.writeOnPastSnapshot(t, cfg)
	writes := stopWriter()

	waitPGCaughtUp(t, pg, cfg)

	// One more restart while nothing is written: it reads no table row.
	readsBefore := tableReads(t, pg)
	outputs = append(outputs, stopClean(t, p))
	p = startRelay(t, cfg, env)
	time.Sleep(3 * time.Second)
	outputs = append(outputs, stopClean(t, p))
	if after := tableReads(t, pg); after != readsBefore {
		t.Errorf("a restart read %d rows of the table; want 0", after-readsBefore)
	}
	t.Logf("%d writes, 6 kills (%d during the snapshot)", writes, duringSnapshot)
	if duringSnapshot < 2 {
		t.Errorf("only %d kills landed during the snapshot; want at least 2", duringSnapshot)
	}

	final := pgVersions(t, pg)
	snapKeys := judgeKillTopic(t, b, "pk.public.vers", ledger, final)
	starts := 0
	for _, o := range outputs {
		starts += snapshotStarts(o)
	}
	if starts > 1 {
		t.Errorf("the snapshot of public.vers started from its first key %d times", starts)
	}
	t.Logf("%d rows in the table, %d keys with a snapshot row", len(final), snapKeys)
}

// waitPGCaughtUp waits until the stored offsets record says the snapshot
// is done and its position has passed the server's current WAL position.
func waitPGCaughtUp(t *testing.T, pg *testenv.Postgres, cfg string) {
	t.Helper()
	var target string
	if err := pg.Conn(t, "shop").QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the relay to pass "+target, func() bool {
		var st struct{ LSN string }
		s := offsetsState(t, cfg)
		return s != "" && json.Unmarshal([]byte(s), &st) == nil && !strings.Contains(s, `"queue"`) && lsnAtLeast(st.LSN, target)
	})
}

// pgVersions returns id -> ver of every row of vers.
func pgVersions(t *testing.T, pg *testenv.Postgres) map[int64]int64 {
	t.Helper()
	rows, err := pg.Conn(t, "shop").Query(context.Background(), "SELECT id, ver FROM vers")
	if err != nil {
		t.Fatal(err)
	}
	final := map[int64]int64{}
	for rows.Next() {
		var id, v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		final[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return final
}

// tableReads is the number of rows of vers read by scans and index fetches.
func tableReads(t *testing.T, pg *testenv.Postgres) int64 {
	t.Helper()
	c := pg.Conn(t, "shop")
	var n int64
	// The statistics are sent at the end of each transaction of the
	// reading backend, a little later; take a fresh snapshot of them.
	time.Sleep(1500 * time.Millisecond)
	if _, err := c.Exec(context.Background(), "SELECT pg_stat_clear_snapshot()"); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(context.Background(),
		"SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = 'vers'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func lsnAtLeast(a, b string) bool {
	parse := func(s string) uint64 {
		var hi, lo uint64
		fmt.Sscanf(s, "%X/%X", &hi, &lo)
		return hi<<32 | lo
	}
	return a != "" && parse(a) >= parse(b)
}
