package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/checker"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// pgRelayObjects lists the logical slots and publications on a server: what
// a relay would have created.
func pgRelayObjects(t *testing.T, pg *testenv.Postgres) []string {
	t.Helper()
	rows, err := pg.Conn(t, "shop").Query(context.Background(), `SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_type = 'logical'
		UNION ALL SELECT 'publication ' || pubname FROM pg_publication`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// A relay pointed at a hot standby is refused by check and by run, with one
// line that says why and to use the primary, and creates nothing on the
// primary or in Kafka. PostgreSQL 16 could decode on the standby, but the
// relay's watermarks, heartbeats and publication need a writable server.
func TestPostgresStandbyRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	for _, v := range []int{15, 16} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			b := testenv.StartBroker(t)
			primary := testenv.StartPostgres(t, testenv.PGVersion(v))
			primary.CreateDB(t, "shop")
			primary.Exec(t, "shop", "CREATE ROLE relay LOGIN REPLICATION PASSWORD 'relay-pw'")
			primary.Exec(t, "shop", "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)")
			primary.Exec(t, "shop", "ALTER TABLE items OWNER TO relay")
			primary.Exec(t, "shop", "INSERT INTO items SELECT g, 0 FROM generate_series(1, 100) g")
			standby := testenv.StartPGStandby(t, primary, "standby1")
			cfg := pgRelayConfig(t, standby, b, "standby", "public.items")
			topicsBefore := listTopics(t, b)
			env := append(os.Environ(), "CDCRELAY_SOURCE_PASSWORD=relay-pw")
			const want = "is a standby (pg_is_in_recovery)"

			check := exec.Command(testenv.Binary(t), "check", "--config", cfg)
			check.Env = env
			out, err := check.CombinedOutput()
			if err == nil {
				t.Fatalf("check exited 0 against a standby:\n%s", out)
			}
			var line string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, want) {
					line = l
				}
			}
			if !strings.HasPrefix(line, "FAIL") || !strings.Contains(line, "point source.dsn at the primary") {
				t.Fatalf("check: no FAIL line about the standby naming the fix:\n%s", out)
			}
			t.Logf("PostgreSQL %s, check: %s", standby.Version, line)

			p := startRelay(t, cfg, "CDCRELAY_SOURCE_PASSWORD=relay-pw")
			st := p.wait(t, 2*time.Minute)
			out = []byte(p.out.String())
			if st.Success() {
				t.Fatalf("run exited 0 against a standby:\n%s", out)
			}
			if !strings.Contains(string(out), "server version: PostgreSQL") || !strings.Contains(string(out), want) {
				t.Fatalf("run: the refusal does not name the standby:\n%s", out)
			}
			t.Logf("run: exit %d: %s", st.ExitCode(), strings.TrimSpace(lastLine(string(out))))

			primary.Exec(t, "shop", "INSERT INTO items VALUES (101, 1)")
			standby.CatchUp(t)
			for name, pg := range map[string]*testenv.Postgres{"primary": primary, "standby": standby} {
				if objs := pgRelayObjects(t, pg); len(objs) > 0 {
					t.Errorf("the refused relay left objects on the %s: %v", name, objs)
				}
			}
			if after := listTopics(t, b); strings.Join(after, ",") != strings.Join(topicsBefore, ",") {
				t.Errorf("topics changed: before %v, after %v", topicsBefore, after)
			}
		})
	}
}

// switchDB is the workload's database, pointed at another server while
// the workload runs: its workers keep their memory of the keys across the
// failover, and reconnect to whichever server it names.
type switchDB struct {
	cur atomic.Pointer[checker.Postgres]
}

func (d *switchDB) Connect(ctx context.Context) (checker.Session, error) {
	return d.cur.Load().Connect(ctx)
}
func (d *switchDB) CreateTable(name string) []string { return d.cur.Load().CreateTable(name) }
func (d *switchDB) Ledger() []string                 { return d.cur.Load().Ledger() }
func (d *switchDB) Quote(name string) string         { return d.cur.Load().Quote(name) }

// failoverWorld is a PostgreSQL 17 primary with a hot standby that
// synchronizes failover slots, the checker's workload on one captured
// table, and a broker.
type failoverWorld struct {
	primary, standby *testenv.Postgres
	b                *testenv.Broker
	db               switchDB
	wl               *checker.Workload
	topic            string
	stopWorkload     func()
}

const failoverTable = "fo_items"

// newFailoverWorld starts the servers; waitForStandby sets
// synchronized_standby_slots on the primary to the standby's slot.
func newFailoverWorld(t *testing.T, waitForStandby bool) *failoverWorld {
	t.Helper()
	w := &failoverWorld{b: testenv.StartBroker(t)}
	w.primary = testenv.StartPostgres(t, testenv.PGVersion(17))
	w.primary.Exec(t, "postgres", "CREATE ROLE relay LOGIN REPLICATION PASSWORD 'relay-pw'")
	w.primary.Exec(t, "postgres", "CREATE DATABASE shop OWNER relay")
	w.db.cur.Store(checker.NewPostgres(w.primary.DSN(w.primary.SuperUser, "shop")))
	w.wl = checker.NewWorkload(&w.db, checker.Config{
		Tables: []string{failoverTable}, Keys: 300, Workers: 3, WritesPerTxn: 3,
		RollbackRatio: 0.1, DeleteRatio: 0.05, Pause: 5 * time.Millisecond,
	})
	ctx := context.Background()
	if err := w.wl.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	w.primary.Exec(t, "shop", "ALTER TABLE public."+failoverTable+" OWNER TO relay")
	if err := w.wl.Seed(ctx, failoverTable, 500); err != nil {
		t.Fatal(err)
	}
	w.standby = testenv.StartPGStandby(t, w.primary, "standby1", testenv.PGConf("sync_replication_slots = on"))
	if waitForStandby {
		// Logical walsenders on the primary send nothing the standby lacks.
		w.primary.Exec(t, "postgres", "ALTER SYSTEM SET synchronized_standby_slots = 'standby1'")
		w.primary.Exec(t, "postgres", "SELECT pg_reload_conf()")
	}
	w.topic = format.Topic("failover", change.TableID{Namespace: "public", Name: failoverTable})
	return w
}

func (w *failoverWorld) config(t *testing.T, pg *testenv.Postgres, failover bool) string {
	return writeConfig(t, fmt.Sprintf(`id: failover
source:
  type: postgres
  dsn: %s
  tables: [public.%s]
  failover_slot: %t
  heartbeat_interval: 1s
kafka:
  brokers: [%s]
  batch_linger: 50ms
metrics:
  listen: "off"
`, pg.DSN("relay", "shop"), failoverTable, failover, w.b.Addr))
}

// storedLSN is the LSN of the stored position, 0 when none.
func storedLSN(t *testing.T, cfg string) pglogrepl.LSN {
	t.Helper()
	var st struct {
		LSN string `json:"lsn"`
	}
	s := offsetsState(t, cfg)
	if s == "" {
		return 0
	}
	mustJSON(t, []byte(s), &st)
	lsn, _ := pglogrepl.ParseLSN(st.LSN)
	return lsn
}

func currentLSN(t *testing.T, pg *testenv.Postgres) pglogrepl.LSN {
	t.Helper()
	var s string
	if err := pg.Conn(t, "shop").QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		t.Fatal(err)
	}
	lsn, _ := pglogrepl.ParseLSN(s)
	return lsn
}

// streamThenKill runs the relay against the primary with the workload
// writing, waits until the standby holds a synchronized, persistent copy of
// the slot that has followed the stream, then kills the primary with
// SIGKILL mid-workload, kills the relay, promotes the standby and points
// the still running workload at it. beforeKill, when set, runs just before
// the primary is killed; a standby it stopped is started again. It returns
// the first transaction id written after the snapshot.
func (w *failoverWorld) streamThenKill(t *testing.T, failover bool, beforeKill func(cfg string)) int64 {
	t.Helper()
	cfg := w.config(t, w.primary, failover)
	p := startRelay(t, cfg, "CDCRELAY_SOURCE_PASSWORD=relay-pw")
	eventually(t, 2*time.Minute, "the snapshot committed", func() bool {
		return strings.Contains(offsetsState(t, cfg), `"done"`)
	})
	strictFrom := w.wl.NextTxID()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.wl.Run(ctx) }()
	w.stopWorkload = func() { cancel(); <-done }
	t.Cleanup(w.stopWorkload)

	time.Sleep(3 * time.Second)
	mark := currentLSN(t, w.primary)
	eventually(t, 2*time.Minute, "the relay's position to pass "+mark.String(), func() bool { return storedLSN(t, cfg) >= mark })
	if failover {
		c := w.standby.Conn(t, "shop")
		eventually(t, 3*time.Minute, "the standby's synchronized slot to reach "+mark.String(), func() bool {
			var ok bool
			err := c.QueryRow(context.Background(), `SELECT synced AND NOT temporary AND confirmed_flush_lsn >= $1::pg_lsn
				FROM pg_replication_slots WHERE slot_name = 'cdcrelay_failover'`, mark.String()).Scan(&ok)
			return err == nil && ok
		})
	}
	if beforeKill != nil {
		beforeKill(cfg)
	}
	time.Sleep(time.Second) // the workload writes on while the primary dies
	w.primary.Kill(t)
	p.kill()
	if w.standby.Exited() {
		w.standby.Start(t)
	}
	t.Logf("primary killed; relay stored %s; workload so far: %d committed, %d failed (last error: %s)",
		storedLSN(t, cfg), w.wl.Committed(), w.wl.Failed(), w.wl.LastError())
	w.standby.Promote(t)
	w.db.cur.Store(checker.NewPostgres(w.standby.DSN(w.standby.SuperUser, "shop")))
	return strictFrom
}

// With source.failover_slot on PostgreSQL 17, the relay survives a failover:
// the primary is killed with SIGKILL mid-workload, the standby promoted, and
// the relay, restarted with the promoted server's DSN, resumes from the
// synchronized slot on the new timeline. The checker then finds every
// committed transaction of the promoted server in the topic once, in order,
// and nothing the promoted server lacks.
func TestPostgresFailoverSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	w := newFailoverWorld(t, true)
	strictFrom := w.streamThenKill(t, true, nil)

	// The workload goes on against the promoted server.
	cfg := w.config(t, w.standby, true)
	check := exec.Command(testenv.Binary(t), "check", "--config", cfg)
	check.Env = append(os.Environ(), "CDCRELAY_SOURCE_PASSWORD=relay-pw")
	out, err := check.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "slot cdcrelay_failover: exists (pgoutput") || !strings.Contains(string(out), "failover=true, synced=true") {
		t.Fatalf("check on the promoted server (%v) does not report the synchronized failover slot:\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "slot cdcrelay_failover") || strings.Contains(l, "source.failover_slot") {
			t.Logf("check: %s", l)
		}
	}
	p := startRelay(t, cfg, "CDCRELAY_SOURCE_PASSWORD=relay-pw")
	time.Sleep(5 * time.Second)
	w.stopWorkload()
	end := currentLSN(t, w.standby)
	eventually(t, 3*time.Minute, "the relay to catch up with the promoted server at "+end.String(), func() bool {
		return storedLSN(t, cfg) >= end
	})
	if code := p.stop(t); code != 0 {
		t.Fatalf("relay exit %d:\n%s", code, p.out.String())
	}
	relayOut := p.out.String()
	if !strings.Contains(relayOut, "resuming on a new timeline after a failover") {
		t.Errorf("the relay did not log its resume across the failover:\n%s", relayOut)
	}
	if st := offsetsState(t, cfg); !strings.Contains(st, `"timeline":2`) {
		t.Errorf("stored position does not name timeline 2: %s", st)
	}

	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kopts := []kgo.Opt{kgo.SeedBrokers(w.b.Addr)}
	stuck, err := checker.StuckPartitions(rctx, kopts, w.topic, "cdcrelay_offsets")
	if err != nil || len(stuck) > 0 {
		t.Fatalf("open transactions left: %v %v", stuck, err)
	}
	events, err := checker.ReadTopics(rctx, kopts, map[string]string{w.topic: failoverTable})
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := w.wl.Ledger(rctx)
	if err != nil {
		t.Fatal(err)
	}
	final, err := w.wl.Final(rctx)
	if err != nil {
		t.Fatal(err)
	}
	rep := checker.Check(ledger, events, final, checker.Options{StrictFrom: strictFrom})
	t.Logf("checker: %s", rep)
	inLedger := 0
	for _, tx := range ledger {
		if tx.Committed {
			inLedger++
		}
	}
	// Asynchronous replication: commits the old primary acknowledged but
	// never shipped are gone from the promoted server, and from the topic.
	t.Logf("workload saw %d commits; the promoted server holds %d committed transactions", w.wl.Committed(), inLedger)
	if !rep.OK() {
		t.Fatalf("checker: %s", rep.Verdict())
	}
}

// Without source.failover_slot the slot stays behind on the dead primary:
// the relay pointed at the promoted standby refuses to start, names the
// missing slot and the re-sync command, and creates no slot there.
func TestPostgresFailoverWithoutFailoverSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	w := newFailoverWorld(t, true)
	w.streamThenKill(t, false, nil)
	w.stopWorkload()
	out := w.expectRefusal(t, w.config(t, w.standby, false), "the relay started on the promoted standby without its slot",
		"replication slot cdcrelay_failover is missing", "from timeline 1 to 2: after a failover", "cdcrelay offsets reset --config <file> --yes")
	if objs := pgRelayObjects(t, w.standby); len(objs) != 1 || objs[0] != "publication cdcrelay_failover" {
		t.Errorf("promoted standby holds %v; want only the publication replicated from the primary", objs)
	}
	t.Logf("refusal: %s", lastLine(out))
}

// A failover slot without synchronized_standby_slots: the standby is down
// while the relay streams on, so the relay stores a position the standby
// never received. On the promoted standby the synchronized slot exists, but
// the stored position lies past the point where the standby left timeline
// 1: the relay refuses, naming synchronized_standby_slots and the re-sync
// command, and leaves the offsets record as it was.
func TestPostgresFailoverAheadOfStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	w := newFailoverWorld(t, false)
	w.streamThenKill(t, true, func(cfg string) {
		w.standby.Stop(t)
		time.Sleep(2 * time.Second)
		mark := currentLSN(t, w.primary)
		eventually(t, 2*time.Minute, "the relay's position to pass "+mark.String()+" with the standby down", func() bool {
			return storedLSN(t, cfg) >= mark
		})
	})
	w.stopWorkload()
	out := w.expectRefusal(t, w.config(t, w.standby, true), "the relay resumed on a standby that lacks part of what it sent",
		"where this server left timeline 1", "set synchronized_standby_slots", "cdcrelay offsets reset --config <file> --yes")
	t.Logf("refusal: %s", lastLine(out))
}

// expectRefusal starts the relay with cfg and requires it to exit non-zero
// with every one of wants in its output (started says what a success
// would mean), leaving the offsets record as it was. It returns the output.
func (w *failoverWorld) expectRefusal(t *testing.T, cfg, started string, wants ...string) string {
	t.Helper()
	before := offsetsState(t, cfg)
	p := startRelay(t, cfg, "CDCRELAY_SOURCE_PASSWORD=relay-pw")
	st := p.wait(t, 2*time.Minute)
	out := p.out.String()
	if st.Success() {
		t.Fatalf("%s:\n%s", started, out)
	}
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if after := offsetsState(t, cfg); after != before {
		t.Errorf("offsets record changed:\nbefore %s\nafter  %s", before, after)
	}
	return out
}
