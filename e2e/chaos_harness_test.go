package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/checker"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/offsets"
	"github.com/cdcrelay/cdcrelay/sources/mysql"
)

// The nemesis suite runs the real binary against a real PostgreSQL or
// MariaDB with the versioned workload of package checker writing, injects
// one kind of fault per scenario, lets the relay catch up, and has the
// checker judge every event against the workload's ledger.
//
// It is gated: CDCRELAY_CHAOS=short (what CI runs, `make chaos-short`) or
// CDCRELAY_CHAOS=full (`make chaos`); without it the tests skip, so that
// `go test ./...` stays fast.

const (
	chaosID       = "chaos"
	chaosDB       = "shop"
	chaosRole     = "relay"
	chaosPassword = "relay-secret"
)

// chaosLevel returns "short", "full", or skips the test.
func chaosLevel(t *testing.T) string {
	t.Helper()
	switch lvl := os.Getenv("CDCRELAY_CHAOS"); lvl {
	case "short", "full":
		return lvl
	case "":
		t.Skip("nemesis suite: set CDCRELAY_CHAOS=short or full (make chaos-short, make chaos)")
	default:
		t.Fatalf("CDCRELAY_CHAOS=%q: want short or full", lvl)
	}
	return ""
}

// chaosEnv is one scenario's world: a database, a broker, the workload and
// the relay.
type chaosEnv struct {
	t      *testing.T
	kind   string // postgres or mysql
	full   bool
	pg     *testenv.Postgres
	my     *testenv.MariaDB
	b      *testenv.Broker       // the broker; in a cluster, its first node
	kc     *testenv.KafkaCluster // the three-node cluster, for scenarios that ask for one
	cfg    string
	env    []string // the relay's extra environment
	wl     *checker.Workload
	tables []string // captured tables (names without namespace)

	relay *relayProc
	adm   *kadm.Client

	stopWorkload context.CancelFunc
	workloadDone chan struct{}
	strictFrom   int64
	invariants   []string
	broken       []string
}

// chaosOptions vary the world of a scenario.
type chaosOptions struct {
	// captured overrides the captured tables (default: the workload's
	// tables and chaos_big).
	captured []string
	seed     int // rows per workload table before the relay starts
	// cluster runs a three-node Apache Kafka cluster instead of one
	// broker: topics of replication factor 3, min.insync.replicas=2.
	cluster bool
}

var workloadTables = []string{"chaos_a", "chaos_b"}

func newChaosEnv(t *testing.T, kind string, full bool, o chaosOptions) *chaosEnv {
	t.Helper()
	e := &chaosEnv{t: t, kind: kind, full: full}
	brokers, replication := "", 1
	if o.cluster {
		if testenv.BrokerKind() != testenv.KindApache {
			t.Skip("a three-node cluster needs Apache Kafka (CDCRELAY_TEST_KAFKA=apache)")
		}
		e.kc = testenv.StartKafkaCluster(t, 3)
		e.b, brokers, replication = e.kc.Brokers[0], strings.Join(e.kc.Seeds(), ", "), 3
	} else {
		e.b = testenv.StartBroker(t)
		brokers = e.b.Addr
	}
	var db checker.DB
	var dsn string
	switch kind {
	case "postgres":
		e.pg = testenv.StartPostgres(t)
		e.pg.Exec(t, "postgres", "CREATE ROLE "+chaosRole+" LOGIN REPLICATION PASSWORD '"+chaosPassword+"'")
		e.pg.Exec(t, "postgres", "CREATE DATABASE "+chaosDB+" OWNER "+chaosRole)
		e.pg.Exec(t, chaosDB, "ALTER SCHEMA public OWNER TO "+chaosRole)
		db = checker.NewPostgres(e.pg.DSN(e.pg.SuperUser, chaosDB))
		dsn = e.pg.DSN(chaosRole, chaosDB)
	case "mysql":
		e.my = testenv.StartMariaDB(t)
		e.my.Exec(t, "CREATE DATABASE "+chaosDB)
		e.my.Exec(t, "CREATE USER '"+chaosRole+"'@'%' IDENTIFIED BY '"+chaosPassword+"'")
		e.my.Exec(t, "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '"+chaosRole+"'@'%'")
		e.my.Exec(t, "GRANT SELECT, INSERT, UPDATE, CREATE ON "+chaosDB+".* TO '"+chaosRole+"'@'%'")
		db = checker.NewMariaDB(e.my.Addr(), "root", "", chaosDB)
		dsn = e.my.DSN(chaosRole, chaosDB)
	}
	e.wl = checker.NewWorkload(db, checker.Config{
		Tables: workloadTables, Keys: 400, Workers: 3, WritesPerTxn: 4,
		RollbackRatio: 0.1, DeleteRatio: 0.05, Pause: 5 * time.Millisecond,
	})
	ctx := context.Background()
	if err := e.wl.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	extra := []string{"chaos_big", "chaos_idle"}
	for _, tb := range extra {
		e.exec(db.CreateTable(tb)...)
	}
	if kind == "postgres" {
		for _, tb := range append(append([]string{}, workloadTables...), extra...) {
			e.exec("ALTER TABLE public." + tb + " OWNER TO " + chaosRole)
		}
	}
	seed := o.seed
	if seed == 0 {
		seed = 1500
	}
	for _, tb := range workloadTables {
		if err := e.wl.Seed(ctx, tb, seed); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.wl.Seed(ctx, "chaos_idle", 10); err != nil {
		t.Fatal(err)
	}
	e.tables = o.captured
	if e.tables == nil {
		e.tables = append(append([]string{}, workloadTables...), "chaos_big")
	}
	qualified := make([]string, len(e.tables))
	for i, tb := range e.tables {
		qualified[i] = e.namespace() + "." + tb
	}
	e.cfg = writeConfig(t, fmt.Sprintf(`id: %s
source:
  type: %s
  dsn: %s
  tables: [%s]
  snapshot_chunk_size: 500
  heartbeat_interval: 1s
kafka:
  brokers: [%s]
  topic_prefix: %s
  topic_replication_factor: %d
  batch_linger: 50ms
  batch_max_events: 5000
  transaction_timeout: 10m
metrics:
  listen: "off"
`, chaosID, kind, dsn, strings.Join(qualified, ", "), brokers, chaosID, replication))
	e.env = []string{"CDCRELAY_SOURCE_PASSWORD=" + chaosPassword}
	return e
}

func (e *chaosEnv) namespace() string {
	if e.kind == "postgres" {
		return "public"
	}
	return chaosDB
}

// exec runs statements as the superuser.
func (e *chaosEnv) exec(stmts ...string) {
	e.t.Helper()
	for _, s := range stmts {
		if e.kind == "postgres" {
			e.pg.Exec(e.t, chaosDB, s)
		} else {
			e.my.Exec(e.t, s)
		}
	}
}

// startWorkload runs the workload until stopWorkloadNow.
func (e *chaosEnv) startWorkload() {
	ctx, cancel := context.WithCancel(context.Background())
	e.stopWorkload = cancel
	e.workloadDone = make(chan struct{})
	go func() {
		defer close(e.workloadDone)
		e.wl.Run(ctx)
	}()
	e.t.Cleanup(e.stopWorkloadNow)
}

func (e *chaosEnv) stopWorkloadNow() {
	if e.stopWorkload != nil {
		e.stopWorkload()
		<-e.workloadDone
		e.stopWorkload = nil
	}
}

func (e *chaosEnv) startRelay(env ...string) *relayProc {
	e.t.Helper()
	p := startRelay(e.t, e.cfg, append(append([]string{}, e.env...), env...)...)
	e.relay = p
	return p
}

func (e *chaosEnv) running() bool {
	if e.relay == nil {
		return false
	}
	select {
	case <-e.relay.done:
		return false
	default:
		return true
	}
}

// invariant records a property the scenario checked.
func (e *chaosEnv) invariant(ok bool, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if ok {
		e.invariants = append(e.invariants, "ok: "+msg)
	} else {
		e.broken = append(e.broken, msg)
		e.invariants = append(e.invariants, "BROKEN: "+msg)
	}
	e.t.Logf("invariant %s: %s", map[bool]string{true: "holds", false: "BROKEN"}[ok], msg)
}

func (e *chaosEnv) kopts() []kgo.Opt {
	if e.kc != nil {
		return []kgo.Opt{kgo.SeedBrokers(e.kc.Seeds()...)}
	}
	return []kgo.Opt{kgo.SeedBrokers(e.b.Addr)}
}

// record returns the stored offsets record (nil when none).
func (e *chaosEnv) record() *offsets.Record {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := offsets.Load(ctx, e.kopts(), "cdcrelay_offsets", chaosID)
	if err != nil {
		e.t.Logf("offsets: %v", err)
		return nil
	}
	return r
}

// waitSnapshot waits until the initial snapshot is done, then notes the
// first transaction id the checker holds strictly.
func (e *chaosEnv) waitSnapshot(d time.Duration) {
	e.t.Helper()
	eventually(e.t, d, "the initial snapshot to finish", func() bool {
		r := e.record()
		if r == nil {
			return false
		}
		var st struct {
			Snapshot *struct {
				Queue []any    `json:"queue"`
				Done  []string `json:"done"`
			} `json:"snapshot"`
		}
		mustJSON(e.t, r.State, &st)
		return st.Snapshot != nil && len(st.Snapshot.Queue) == 0 && len(st.Snapshot.Done) >= len(e.tables)
	})
	e.strictFrom = e.wl.NextTxID()
	e.t.Logf("snapshot done; transactions from %d on are held strictly", e.strictFrom)
}

// sourcePosition returns a predicate that holds once a stored record is at
// or past the source's current position.
func (e *chaosEnv) sourcePosition() (string, func(*offsets.Record) bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if e.kind == "postgres" {
		c := e.pg.Conn(e.t, chaosDB)
		var s string
		if err := c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		at, _ := pglogrepl.ParseLSN(s)
		return s, func(r *offsets.Record) bool {
			got, err := pglogrepl.ParseLSN(r.Position)
			return err == nil && got >= at
		}
	}
	res := e.my.Exec(e.t, "SELECT @@gtid_binlog_pos")
	s, _ := res.GetString(0, 0)
	if _, err := mysql.MariaDBSeqs(s); err != nil {
		e.t.Fatal(err)
	}
	return s, func(r *offsets.Record) bool { return gtidAtLeast(r.Position, s) }
}

// gtidAtLeast reports whether the MariaDB GTID position got is at or past
// want in every replication domain of want.
func gtidAtLeast(got, want string) bool {
	w, err := mysql.MariaDBSeqs(want)
	if err != nil {
		return false
	}
	g, _ := mysql.MariaDBSeqs(got)
	for dom, seq := range w {
		if g[dom] < seq {
			return false
		}
	}
	return true
}

// settle stops the workload, makes sure a relay runs, waits until it has
// committed everything the source holds, and stops it with SIGTERM.
func (e *chaosEnv) settle() {
	e.t.Helper()
	e.stopWorkloadNow()
	if !e.running() {
		e.startRelay()
	}
	label, passed := e.sourcePosition()
	ok := e.waitCaughtUp(passed)
	e.invariant(ok, "the relay caught up with the source position %s after the faults", label)
	if !ok {
		// Judge what a fresh relay delivers: a hang is a broken
		// invariant, loss is what the checker finds after a restart.
		if e.running() {
			e.stopRelay()
		} else {
			e.t.Logf("relay exited: %s", lastLines(e.relay.out.String(), 3))
		}
		e.startRelay()
		e.invariant(e.waitCaughtUp(passed), "a fresh relay caught up with %s", label)
	}
	if e.running() {
		code := e.stopRelay()
		e.invariant(code == 0, "SIGTERM at the end exits 0 (got %d)", code)
	}
}

// stopRelay sends SIGTERM and returns the exit code. A relay that has not
// exited a minute later gets SIGQUIT, so that its goroutine dump lands in
// the test log, and -1 is returned.
func (e *chaosEnv) stopRelay() int {
	p := e.relay
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(time.Minute):
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
	e.t.Logf("relay ignored SIGTERM for a minute; its goroutines:\n%s", lastLines(p.out.String(), 400))
	return -1
}

// waitCaughtUp waits until the stored position passes, for as long as the
// relay makes progress: the stored position moves, or the captured topics
// grow (a huge source transaction is one Kafka transaction, so the position
// only moves at its end). It gives up after 90s without progress.
func (e *chaosEnv) waitCaughtUp(passed func(*offsets.Record) bool) bool {
	last, moved := "", time.Now()
	for {
		r := e.record()
		if r != nil && passed(r) {
			return true
		}
		mark := fmt.Sprint(e.topicSize())
		if r != nil {
			mark += "/" + r.Position
		}
		if mark != last {
			last, moved = mark, time.Now()
		}
		if !e.running() || time.Since(moved) > 90*time.Second {
			return false
		}
		time.Sleep(time.Second)
	}
}

// topicSize is the sum of the high watermarks of the captured topics.
func (e *chaosEnv) topicSize() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var names []string
	for _, tb := range e.tables {
		names = append(names, format.Topic(chaosID, change.TableID{Namespace: e.namespace(), Name: tb}))
	}
	if e.adm == nil {
		cl, err := kgo.NewClient(e.kopts()...)
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(cl.Close)
		e.adm = kadm.NewClient(cl)
	}
	ends, err := e.adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return -1
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// judge reads every captured topic and runs the checker.
func (e *chaosEnv) judge() *checker.Report {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	captured := map[string]bool{}
	topics := map[string]string{}
	for _, tb := range e.tables {
		captured[tb] = true
		topics[format.Topic(chaosID, change.TableID{Namespace: e.namespace(), Name: tb})] = tb
	}
	names := make([]string, 0, len(topics))
	for name := range topics {
		names = append(names, name)
	}
	names = append(names, "cdcrelay_offsets")
	stuck, err := checker.StuckPartitions(ctx, e.kopts(), names...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.invariant(len(stuck) == 0, "no transaction is left open once the relay has stopped (%s)", strings.Join(stuck, "; "))
	events, err := checker.ReadTopics(ctx, e.kopts(), topics)
	if err != nil {
		e.t.Fatalf("read topics: %v", err)
	}
	ledger, err := e.wl.Ledger(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	// Only the captured tables count.
	for i := range ledger {
		ws := ledger[i].Writes[:0:0]
		for _, w := range ledger[i].Writes {
			if captured[w.Row.Table] {
				ws = append(ws, w)
			}
		}
		ledger[i].Writes = ws
	}
	final := map[checker.RowID]int64{}
	if err := e.wl.FinalOf(ctx, final, e.tables...); err != nil {
		e.t.Fatal(err)
	}
	rep := checker.Check(ledger, events, final, checker.Options{StrictFrom: e.strictFrom})
	e.t.Logf("checker: %s", rep)
	e.t.Logf("workload: %d transactions committed, %d failed and retried (last error: %s)", e.wl.Committed(), e.wl.Failed(), e.wl.LastError())
	return rep
}

// pgConnAs opens a connection as the relay's role.
func (e *chaosEnv) pgConnAs(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", chaosRole, chaosPassword, e.pg.Host, e.pg.Port, chaosDB))
}

// chaosRow is one line of the summary table.
type chaosRow struct {
	source, scenario, faults string
	events, lost, dup        string
	verdict                  string
}

var chaosSummary struct {
	mu   sync.Mutex
	rows []chaosRow
}

func addChaosRow(r chaosRow) {
	chaosSummary.mu.Lock()
	defer chaosSummary.mu.Unlock()
	chaosSummary.rows = append(chaosSummary.rows, r)
}

// writeChaosSummary writes the table to $CDCRELAY_CHAOS_REPORT (default
// chaos-report.md in the temp directory) and logs it.
func writeChaosSummary(t *testing.T, level string) {
	chaosSummary.mu.Lock()
	defer chaosSummary.mu.Unlock()
	if len(chaosSummary.rows) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Nemesis suite (%s), %s\n\n", level, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString("| scenario | faults injected | events checked | lost | duplicated | verdict |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range chaosSummary.rows {
		fmt.Fprintf(&b, "| %s: %s | %s | %s | %s | %s | %s |\n", r.source, r.scenario, r.faults, r.events, r.lost, r.dup, r.verdict)
	}
	path := os.Getenv("CDCRELAY_CHAOS_REPORT")
	if path == "" {
		path = filepath.Join(os.TempDir(), "chaos-report.md")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Errorf("write %s: %v", path, err)
	}
	t.Logf("summary (also in %s):\n%s", path, b.String())
}

// logServerActivity logs what every database session is doing, to explain
// a relay that waits.
func (e *chaosEnv) logServerActivity() {
	var b strings.Builder
	if e.kind == "postgres" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c := e.pg.Conn(e.t, chaosDB)
		rows, err := c.Query(ctx, `SELECT pid, usename, coalesce(state, ''), coalesce(wait_event_type || '/' || wait_event, ''),
			coalesce(left(query, 160), '') FROM pg_stat_activity ORDER BY pid`)
		if err != nil {
			e.t.Logf("pg_stat_activity: %v", err)
			return
		}
		for rows.Next() {
			var pid int32
			var user, state, wait, query *string
			if err := rows.Scan(&pid, &user, &state, &wait, &query); err != nil {
				break
			}
			fmt.Fprintf(&b, "%d %s %s %s %s\n", pid, deref(user), deref(state), deref(wait), deref(query))
		}
		rows.Close()
	} else {
		res := e.my.Exec(e.t, "SELECT id, user, command, time, coalesce(state, ''), left(coalesce(info, ''), 160) FROM information_schema.processlist ORDER BY id")
		for i := range res.Values {
			for j := range res.Values[i] {
				v, _ := res.GetString(i, j)
				b.WriteString(v + " ")
			}
			b.WriteString("\n")
		}
	}
	e.t.Logf("database sessions:\n%s", b.String())
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// keepEvidence copies the broker's data directory and log, and the relay's
// output, out of the test's temporary directories for a failed scenario, to
// $CDCRELAY_CHAOS_EVIDENCE (default: the system temp dir), and says where.
func (e *chaosEnv) keepEvidence() {
	root := os.Getenv("CDCRELAY_CHAOS_EVIDENCE")
	if root == "" {
		root = os.TempDir()
	}
	dir, err := os.MkdirTemp(root, "cdcrelay-chaos-"+e.kind+"-")
	if err != nil {
		e.t.Logf("keep evidence: %v", err)
		return
	}
	if err := os.CopyFS(filepath.Join(dir, "broker-data"), os.DirFS(e.b.DataDir)); err != nil {
		e.t.Logf("keep evidence: copy the broker's data: %v", err)
	}
	_ = os.WriteFile(filepath.Join(dir, "broker.log"), []byte(e.b.Log(e.t)), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "relay.log"), []byte(e.relay.out.String()), 0o644)
	e.t.Logf("evidence kept in %s", dir)
}
