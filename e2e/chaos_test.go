package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/checker"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/offsets"
)

// scenario is one nemesis. run injects the faults with the workload
// running and returns what it injected, for the summary table.
type scenario struct {
	name    string
	sources []string // default: both
	opts    chaosOptions
	// run injects the faults. loud scenarios expect the relay to refuse to
	// go on: their verdict is about that failure, not the checker.
	run  func(e *chaosEnv) string
	loud bool
	// control forges a duplicate and a rolled-back write into a topic
	// after the run: the checker must report both.
	control bool
}

func scenarios() []scenario {
	return append([]scenario{
		{name: "checker-control", run: func(*chaosEnv) string { return "none; a duplicate and a rolled-back write forged into the topic" }, control: true},
		{name: "kill-9", run: nemesisKills},
		{name: "crash-after-produce", run: func(e *chaosEnv) string { return nemesisCrashPoint(e, "after-produce") }},
		{name: "crash-after-commit", run: func(e *chaosEnv) string { return nemesisCrashPoint(e, "after-commit") }},
		{name: "sigterm", run: nemesisSigterm},
		{name: "db-restart", run: nemesisDBRestart},
		{name: "connection-limit", run: nemesisConnLimit},
		{name: "broker-kill", run: nemesisBrokerKill},
		{name: "two-relays", run: nemesisTwoRelays},
		{name: "big-transaction", run: nemesisBigTxn},
		{name: "position-lost", run: nemesisPositionLost, loud: true},
		{name: "idle-tables", sources: []string{"postgres"}, run: nemesisIdle,
			opts: chaosOptions{captured: []string{"chaos_idle"}, seed: 200}},
	}, kafkaScenarios()...)
}

func TestChaosPostgres(t *testing.T) { runChaos(t, "postgres") }
func TestChaosMariaDB(t *testing.T)  { runChaos(t, "mysql") }

func runChaos(t *testing.T, kind string) {
	level := chaosLevel(t)
	defer writeChaosSummary(t, level)
	for _, sc := range scenarios() {
		if len(sc.sources) > 0 && !contains(sc.sources, kind) {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			e := newChaosEnv(t, kind, level == "full", sc.opts)
			row := chaosRow{source: kind, scenario: sc.name, events: "-", lost: "-", dup: "-"}
			defer func() {
				if row.verdict == "" {
					row.verdict = "test aborted: " + firstLine(t)
				}
				addChaosRow(row)
			}()
			e.startWorkload()
			e.startRelay()
			e.waitSnapshot(3 * time.Minute)
			row.faults = sc.run(e)
			if sc.loud {
				e.stopWorkloadNow()
				if len(e.broken) == 0 {
					row.verdict = "failed loudly as required"
				} else {
					row.verdict = "FAIL: " + strings.Join(e.broken, "; ")
					t.Errorf("invariants broken: %v", e.broken)
				}
				return
			}
			e.settle()
			if sc.control {
				forgeFaults(e)
			}
			rep := e.judge()
			row.events = strconv.Itoa(rep.Events)
			row.lost = strconv.Itoa(rep.Counts[checker.Lost])
			row.dup = strconv.Itoa(rep.Counts[checker.Duplicated])
			row.verdict = rep.Verdict()
			if len(e.broken) > 0 {
				row.verdict += "; invariants broken: " + strings.Join(e.broken, "; ")
			}
			if sc.control {
				caught := rep.Counts[checker.Duplicated] == 1 && rep.Counts[checker.AbortedRead] == 1 && rep.Counts[checker.Lost] == 0
				row.verdict = "ok: the forged faults were reported (" + strings.TrimPrefix(rep.Verdict(), "FAIL ") + ")"
				if !caught {
					row.verdict = "CONTROL FAILED: " + rep.Verdict()
					t.Errorf("the checker missed the forged faults: %s", rep.Verdict())
				}
				return
			}
			if !rep.OK() || len(e.broken) > 0 {
				t.Errorf("%s: %s", sc.name, row.verdict)
				e.keepEvidence()
			}
		})
	}
}

// firstLine is a placeholder verdict for a scenario that stopped early.
func firstLine(t *testing.T) string {
	if t.Failed() {
		return "see the test log"
	}
	return "stopped"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (e *chaosEnv) rounds(short, full int) int {
	if e.full {
		return full
	}
	return short
}

func pause(minMs, maxMs int) {
	time.Sleep(time.Duration(minMs+rand.IntN(maxMs-minMs)) * time.Millisecond)
}

// nemesisKills kills the relay with SIGKILL at random moments.
func nemesisKills(e *chaosEnv) string {
	n := e.rounds(4, 15)
	for i := 0; i < n; i++ {
		pause(500, 4000)
		e.relay.kill()
		e.startRelay()
	}
	pause(1000, 2000)
	return fmt.Sprintf("%d× kill -9 at random moments", n)
}

// nemesisCrashPoint restarts the relay with a crash point armed at a random
// passage, waits for the crash, and checks only committed data is visible.
func nemesisCrashPoint(e *chaosEnv, point string) string {
	n := e.rounds(2, 6)
	for i := 0; i < n; i++ {
		at := 2 + rand.IntN(20)
		e.relay.kill()
		p := e.startRelay("CDCRELAY_TEST_CRASH=" + point + ":" + strconv.Itoa(at))
		select {
		case <-p.done:
		case <-time.After(3 * time.Minute):
			e.invariant(false, "relay with %s:%d did not crash within 3 minutes", point, at)
			continue
		}
		e.invariant(strings.Contains(p.out.String(), "test crash point reached"), "the relay died at %s:%d (and not of something else)", point, at)
		e.startRelay()
		pause(500, 1500)
	}
	return fmt.Sprintf("%d× SIGKILL at %s", n, point)
}

// nemesisSigterm stops the relay cleanly and starts it again.
func nemesisSigterm(e *chaosEnv) string {
	n := e.rounds(3, 10)
	for i := 0; i < n; i++ {
		pause(500, 3000)
		code := e.stopRelay()
		e.invariant(code == 0, "SIGTERM %d exits 0 (got %d)", i+1, code)
		e.startRelay()
	}
	return fmt.Sprintf("%d× SIGTERM and restart", n)
}

// nemesisDBRestart restarts the database under the relay: a clean fast
// stop, then a SIGKILL with crash recovery.
func nemesisDBRestart(e *chaosEnv) string {
	n := e.rounds(1, 3)
	for i := 0; i < n; i++ {
		pause(1000, 3000)
		if e.kind == "postgres" {
			e.pg.Restart(e.t)
		} else {
			e.my.Restart(e.t)
		}
		pause(2000, 4000)
		if e.kind == "postgres" {
			e.pg.Kill(e.t)
			e.pg.Start(e.t)
		} else {
			e.my.Kill(e.t)
			e.my.Start(e.t)
		}
		pause(1000, 2000)
	}
	e.invariant(e.running(), "the relay survives %d database restarts and kills without exiting", 2*n)
	return fmt.Sprintf("%d× clean restart + %d× kill -9 of the database", n, n)
}

// nemesisConnLimit fills the relay user's connection limit while the relay
// must reconnect, then frees it.
func nemesisConnLimit(e *chaosEnv) string {
	ctx := context.Background()
	var release func()
	if e.kind == "postgres" {
		// While streaming: cut the relay's sessions and take every slot
		// its role may use, so it must reconnect against a full limit.
		e.exec("ALTER ROLE " + chaosRole + " CONNECTION LIMIT 2")
		e.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + chaosRole + "'")
		var held []*pgx.Conn
		for i := 0; i < 50 && len(held) < 2; i++ {
			if c, err := e.pgConnAs(ctx); err == nil {
				held = append(held, c)
			} else {
				time.Sleep(100 * time.Millisecond)
			}
		}
		time.Sleep(8 * time.Second)
		alive := e.running()
		for _, c := range held {
			c.Close(ctx)
		}
		e.exec("ALTER ROLE " + chaosRole + " CONNECTION LIMIT -1")
		e.invariant(alive, "while streaming, the relay keeps retrying against a full connection limit (%d of 2 slots held by the nemesis)", len(held))
		if !alive {
			e.t.Logf("relay: %s", lastLines(e.relay.out.String(), 2))
			e.startRelay()
		}
		pause(2000, 3000)
	}
	// At start: the relay starts while the limit is full.
	e.relay.kill()
	if e.kind == "postgres" {
		e.exec("ALTER ROLE " + chaosRole + " CONNECTION LIMIT 2")
		var held []*pgx.Conn
		// The killed relay's sessions count until the server notices.
		eventually(e.t, time.Minute, "two sessions as the relay's role", func() bool {
			c, err := e.pgConnAs(ctx)
			if err == nil {
				held = append(held, c)
			}
			return len(held) == 2
		})
		release = func() {
			for _, c := range held {
				c.Close(ctx)
			}
			e.exec("ALTER ROLE " + chaosRole + " CONNECTION LIMIT -1")
		}
	} else {
		e.exec("ALTER USER '" + chaosRole + "'@'%' WITH MAX_USER_CONNECTIONS 1")
		// The limit applies to new sessions; hold the only one allowed.
		var holder *chaosHolder
		eventually(e.t, time.Minute, "a session as the relay user", func() bool {
			h, err := holdMaria(e)
			holder = h
			return err == nil
		})
		release = func() {
			holder.close()
			e.exec("ALTER USER '" + chaosRole + "'@'%' WITH MAX_USER_CONNECTIONS 0")
		}
	}
	p := e.startRelay()
	time.Sleep(8 * time.Second)
	alive := e.running()
	release()
	e.invariant(alive, "at start, the relay keeps retrying (does not exit) while the connection limit is full")
	if !alive {
		e.t.Logf("relay output:\n%s", p.out.String())
		e.startRelay()
	}
	pause(2000, 3000)
	if e.kind == "postgres" {
		return "connection limit full for 8s while streaming and for 8s at a start"
	}
	return "connection limit full for 8s at a start"
}

// nemesisBrokerKill kills the broker with SIGKILL and starts it again.
func nemesisBrokerKill(e *chaosEnv) string {
	n := e.rounds(2, 5)
	for i := 0; i < n; i++ {
		pause(1000, 3000)
		e.b.Kill(e.t)
		pause(1000, 4000)
		e.b.Start(e.t)
	}
	pause(3000, 5000)
	if !e.running() {
		e.t.Logf("relay exited after the broker kills:\n%s", lastLines(e.relay.out.String(), 5))
	}
	e.invariant(e.running(), "the relay survives %d broker restarts without exiting", n)
	return fmt.Sprintf("%d× kill -9 of the broker", n)
}

// nemesisTwoRelays starts a second relay with the same id: one of the two
// must be fenced and exit non-zero saying so, and the other go on. Usually
// the first is fenced by the second's start. Apache Kafka may instead answer
// the first relay's EndTxn, racing the second's InitProducerID, with
// UNKNOWN_SERVER_ERROR (its coordinator finds the transaction mid-fence); the
// first then cannot know whether its commit happened, restarts from the
// offsets topic and fences the second in turn. Either way one writer is
// left.
func nemesisTwoRelays(e *chaosEnv) string {
	pause(1000, 3000)
	first := e.relay
	second := e.startRelay()
	fencedMsg := func(p *relayProc) bool {
		return p.cmd.ProcessState.ExitCode() != 0 && strings.Contains(p.out.String(), "fenced")
	}
	var fenced bool
	which := "neither"
	select {
	case <-first.done:
		fenced, which = fencedMsg(first), "the first"
		e.relay = second
	case <-second.done:
		fenced, which = fencedMsg(second), "the second"
		e.relay = first
	case <-time.After(3 * time.Minute):
		// Dump where both relays wait, and what the database is doing.
		for _, p := range []*relayProc{first, second} {
			_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		}
		time.Sleep(2 * time.Second)
		e.t.Logf("first relay, neither fenced after 3 minutes:\n%s", lastLines(first.out.String(), 300))
		e.t.Logf("second relay:\n%s", lastLines(second.out.String(), 300))
		e.logServerActivity()
		e.startRelay()
	}
	e.invariant(fenced, "one relay (%s) exits non-zero saying it was fenced", which)
	pause(2000, 4000)
	e.invariant(e.running(), "the other relay goes on")
	return "a second relay with the same id (" + which + " was fenced)"
}

func nemesisBigTxn(e *chaosEnv) string {
	n := e.rounds(100_000, 1_000_000)
	start := time.Now()
	if err := e.wl.BigTxn(context.Background(), "chaos_big", 1, n); err != nil {
		e.t.Fatalf("big transaction: %v", err)
	}
	e.t.Logf("big transaction of %d rows committed in %s", n, time.Since(start).Round(time.Millisecond))
	return fmt.Sprintf("one %d-row transaction", n)
}

// nemesisPositionLost removes the stored position's log while the relay is
// down: the next start must fail loudly and leave the offsets record alone.
func nemesisPositionLost(e *chaosEnv) string {
	pause(1000, 2000)
	code := e.stopRelay()
	e.invariant(code == 0, "SIGTERM exits 0 (got %d)", code)
	before := e.record()
	what := ""
	if e.kind == "postgres" {
		e.exec("SELECT pg_drop_replication_slot('cdcrelay_" + chaosID + "')")
		what = "replication slot dropped while the relay was down"
	} else {
		time.Sleep(time.Second) // let the workload write more binlog
		// A binlog dump thread that outlives its client, or a binlog that
		// InnoDB still needs for crash recovery, keeps a file from being
		// purged; PURGE says nothing then. End the dump threads and purge
		// until the file made by the FLUSH is the oldest one left.
		e.exec("FLUSH BINARY LOGS")
		res := e.my.Exec(e.t, "SHOW MASTER STATUS")
		file, _ := res.GetString(0, 0)
		eventually(e.t, 2*time.Minute, "every binlog before "+file+" purged", func() bool {
			dumps := e.my.Exec(e.t, "SELECT id FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'")
			for i := range dumps.Values {
				id, _ := dumps.GetString(i, 0)
				e.my.Exec(e.t, "KILL "+id)
			}
			e.exec("PURGE BINARY LOGS TO '" + file + "'")
			logs := e.my.Exec(e.t, "SHOW BINARY LOGS")
			first, _ := logs.GetString(0, 0)
			return first == file
		})
		what = "binlogs purged while the relay was down"
	}
	time.Sleep(time.Second)
	p := e.startRelay()
	var exited bool
	select {
	case <-p.done:
		exited = true
	case <-time.After(2 * time.Minute):
	}
	if !exited {
		e.t.Logf("the relay is still running two minutes after the start; stopping it")
		e.stopRelay()
	}
	out := p.out.String()
	e.invariant(exited && p.cmd.ProcessState.ExitCode() != 0, "the relay exits non-zero")
	e.t.Logf("the relay's log lines about the position: %s", grepLines(out, "slot", 5))
	e.t.Logf("the relay's last words: %s", lastLines(out, 3))
	lower := strings.ToLower(out)
	e.invariant(strings.Contains(lower, "slot") || strings.Contains(lower, "binlog") || strings.Contains(lower, "purged"),
		"the error names what was lost")
	after := e.record()
	same := before != nil && after != nil && bytes.Equal(before.Encode(), after.Encode())
	e.invariant(same, "the offsets record is unchanged (%s)", recordPos(after))
	if e.kind == "postgres" {
		ctx := context.Background()
		c := e.pg.Conn(e.t, chaosDB)
		var n int
		_ = c.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", "cdcrelay_"+chaosID).Scan(&n)
		e.invariant(n == 0, "no slot was silently created again (found %d)", n)
	}
	return what
}

func recordPos(r *offsets.Record) string {
	if r == nil {
		return "no record"
	}
	return r.Position
}

// nemesisIdle captures only an idle table while the workload writes other
// tables: heartbeats must move the slot, so WAL is not pinned.
func nemesisIdle(e *chaosEnv) string {
	ctx := context.Background()
	c := e.pg.Conn(e.t, chaosDB)
	var cur, flushed0 string
	if err := c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
		"cdcrelay_"+chaosID).Scan(&cur, &flushed0); err != nil {
		e.t.Fatal(err)
	}
	var flushed string
	var lag int64
	advanced := false
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		if err := c.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, pg_current_wal_lsn() - confirmed_flush_lsn
			FROM pg_replication_slots WHERE slot_name = $1`, "cdcrelay_"+chaosID).Scan(&flushed, &lag); err != nil {
			e.t.Fatal(err)
		}
		f, _ := pglogrepl.ParseLSN(flushed)
		at, _ := pglogrepl.ParseLSN(cur)
		if f >= at {
			advanced = true
			break
		}
	}
	e.invariant(advanced, "confirmed_flush_lsn moved from %s past %s (the WAL position when the idle phase began) to %s; lag %d bytes",
		flushed0, cur, flushed, lag)
	return fmt.Sprintf("idle captured table, %d workload transactions on other tables; slot lag %d bytes at the end", e.wl.Committed(), lag)
}

// holdMaria opens one session as the relay user and keeps it.
type chaosHolder struct{ close func() }

func holdMaria(e *chaosEnv) (*chaosHolder, error) {
	db := checker.NewMariaDB(e.my.Addr(), chaosRole, chaosPassword, chaosDB)
	s, err := db.Connect(context.Background())
	if err != nil {
		return nil, err
	}
	return &chaosHolder{close: s.Close}, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// forgeFaults writes, in one committed Kafka transaction, a copy of an
// event already in the topic and a row of a rolled-back transaction.
func forgeFaults(e *chaosEnv) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	table := workloadTables[0]
	topic := format.Topic(chaosID, change.TableID{Namespace: e.namespace(), Name: table})
	events, err := checker.ReadTopics(ctx, e.kopts(), map[string]string{topic: table})
	if err != nil || len(events) == 0 {
		e.t.Fatalf("read %s: %v (%d events)", topic, err, len(events))
	}
	ledger, err := e.wl.Ledger(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var dup *checker.Event
	for i := range events {
		if !events[i].Delete && events[i].TxID != 0 {
			dup = &events[i]
			break
		}
	}
	var rolled *checker.Txn
	for i := range ledger {
		if !ledger[i].Committed && len(ledger[i].Writes) > 0 && ledger[i].Writes[0].Row.Table == table && !ledger[i].Writes[0].Delete {
			rolled = &ledger[i]
			break
		}
	}
	if dup == nil || rolled == nil {
		e.t.Fatalf("nothing to forge from (event %v, rolled-back txn %v)", dup, rolled)
	}
	value := func(key, ver, txid int64) []byte {
		return []byte(fmt.Sprintf(`{"before":null,"after":{"id":%d,"ver":%d,"txid":%d,"pad":"forged"},"op":"u"}`, key, ver, txid))
	}
	w := rolled.Writes[0]
	cl := e.b.Client(e.t, kgo.TransactionalID("chaos-forger"))
	if err := cl.BeginTransaction(); err != nil {
		e.t.Fatal(err)
	}
	res := cl.ProduceSync(ctx,
		&kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf(`{"id":%d}`, dup.Row.Key)), Value: value(dup.Row.Key, dup.Version, dup.TxID)},
		&kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf(`{"id":%d}`, w.Row.Key)), Value: value(w.Row.Key, w.Version, rolled.ID)},
	)
	if err := res.FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("forged: a copy of %s v%d, and %s v%d of rolled-back txn %d", dup.Row, dup.Version, w.Row, w.Version, rolled.ID)
}

// grepLines returns up to n lines of s that contain sub.
func grepLines(s, sub string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && len(out) < n {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
