package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestPostgresKillsDuringSnapshotAndStream runs `cdcrelay run` against
// PostgreSQL while a versioned writer changes the captured table, and kills
// the relay with SIGKILL six times, during the snapshot and while
// streaming. Read read_committed, the topic must hold each version of each
// key at most once and in order, with no gap after a key's first event,
// fold to the table, and hold at most one snapshot row per key; the
// snapshot never starts over, and a restart once streaming reads no row of
// the table.
func TestPostgresKillsDuringSnapshotAndStream(t *testing.T) {
	const rows = 100000
	b := testenv.StartBroker(t)
	pg := testenv.StartPostgres(t)
	pg.CreateDB(t, "shop")
	pg.Exec(t, "shop", "CREATE ROLE relay LOGIN REPLICATION PASSWORD 'relay-pw'")
	pg.Exec(t, "shop", "GRANT CREATE ON DATABASE shop TO relay")
	pg.Exec(t, "shop", "CREATE TABLE vers (id int PRIMARY KEY, v int NOT NULL, pad text NOT NULL)")
	pg.Exec(t, "shop", "ALTER TABLE vers REPLICA IDENTITY FULL")
	pg.Exec(t, "shop", "ALTER TABLE vers OWNER TO relay")
	pg.Exec(t, "shop", fmt.Sprintf("INSERT INTO vers SELECT g, 1, repeat('p', 100) FROM generate_series(1, %d) g", rows))
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

	// The writer: v grows by one per update; deleted ids never come back.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	writes := 0
	go func() {
		defer wg.Done()
		ctx := context.Background()
		c, err := pgx.Connect(ctx, pg.DSN("postgres", "shop"))
		if err != nil {
			t.Errorf("writer: %v", err)
			return
		}
		defer c.Close(ctx)
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
				_, err = c.Exec(ctx, "UPDATE vers SET v = v + 1 WHERE id = $1", 1+rand.IntN(next-1))
			case n < 9:
				_, err = c.Exec(ctx, "INSERT INTO vers VALUES ($1, 1, 'new')", next)
				next++
			default:
				_, err = c.Exec(ctx, "DELETE FROM vers WHERE id = $1", 1+rand.IntN(next-1))
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
		if st := offsetsState(t, cfg); st == "" || strings.Contains(st, `"queue"`) {
			duringSnapshot++
		}
		p.kill()
		outputs = append(outputs, p.out.String())
		p = startRelay(t, cfg, env)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	var target string
	if err := pg.Conn(t, "shop").QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the relay to pass "+target, func() bool {
		var st struct{ LSN string }
		s := offsetsState(t, cfg)
		return s != "" && json.Unmarshal([]byte(s), &st) == nil && !strings.Contains(s, `"queue"`) && lsnAtLeast(st.LSN, target)
	})

	// One more restart while nothing is written: it reads no table row.
	readsBefore := tableReads(t, pg)
	if code := p.stop(t); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
	outputs = append(outputs, p.out.String())
	p = startRelay(t, cfg, env)
	time.Sleep(3 * time.Second)
	if code := p.stop(t); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
	outputs = append(outputs, p.out.String())
	if after := tableReads(t, pg); after != readsBefore {
		t.Errorf("a restart read %d rows of the table; want 0", after-readsBefore)
	}
	t.Logf("%d writes, 6 kills (%d during the snapshot)", writes, duringSnapshot)
	if duringSnapshot < 2 {
		t.Errorf("only %d kills landed during the snapshot; want at least 2", duringSnapshot)
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
	recs := readAll(t, b, "pk.public.vers")
	last := map[string]int{}
	state := map[string]row{}
	snapRows := map[string]int{}
	for _, r := range recs {
		if r.Value == nil {
			continue // tombstone
		}
		var v value
		mustJSON(t, r.Value, &v)
		if v.Op == "r" {
			if snapRows[r.Key]++; snapRows[r.Key] > 1 {
				t.Fatalf("key %s has two snapshot rows: a chunk was read twice", r.Key)
			}
		}
		if v.Op == "d" {
			delete(state, r.Key)
			delete(last, r.Key)
			continue
		}
		var a row
		mustJSON(t, v.After, &a)
		if prev, ok := last[r.Key]; ok && a.V != prev+1 {
			t.Fatalf("key %s: v%d after v%d (gap or repeat)", r.Key, a.V, prev)
		}
		last[r.Key] = a.V
		state[r.Key] = a
	}
	conn := pg.Conn(t, "shop")
	rowsDB, err := conn.Query(context.Background(), "SELECT id, v, pad FROM vers")
	if err != nil {
		t.Fatal(err)
	}
	n, bad := 0, 0
	for rowsDB.Next() {
		var id, v int
		var pad string
		if err := rowsDB.Scan(&id, &v, &pad); err != nil {
			t.Fatal(err)
		}
		n++
		got, ok := state[fmt.Sprintf(`{"id":%d}`, id)]
		if (!ok || got.V != v || got.Pad != pad) && bad < 5 {
			bad++
			t.Errorf("id %d: table v%d, topic %+v (present %v)", id, v, got, ok)
		}
	}
	if n != len(state) {
		t.Errorf("topic folds to %d rows, the table has %d", len(state), n)
	}
	starts := 0
	for _, o := range outputs {
		for _, l := range strings.Split(o, "\n") {
			if strings.Contains(l, "snapshot: reading table") && strings.Contains(l, "resumed=false") {
				starts++
			}
		}
	}
	if starts > 1 {
		t.Errorf("the snapshot of public.vers started from its first key %d times", starts)
	}
	t.Logf("%d records, %d keys, %d snapshot rows; final state equals the table", len(recs), len(state), len(snapRows))
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
