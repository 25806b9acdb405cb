package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The restart story of docs/deploy.md, measured: with a writer changing
// both databases, kill -9 the Flink runner (checkpointing off), then both
// relays, then restart both databases. After each, every sink must equal
// the databases again, and the relays must have read no row of a captured
// table again (no snapshot).

// restartFigures are what one fault cost.
type restartFigures struct {
	fault       string
	startup     time.Duration // restart to the restarted part ready
	firstRecord time.Duration // restart to the first new record in a sink
	converge    time.Duration // writer stopped to both sinks equal
	writes      int64
}

// faultWriter changes both databases until stopped: new orders (most of
// the writes, so that a lost change shows as a missing row), status and
// amount updates, key changes and deletes in PostgreSQL; quantities, new
// stock rows and deletes in MariaDB. It reconnects after errors, so that it
// rides out a database restart.
type faultWriter struct {
	s      *flinkStack
	stop   chan struct{}
	wg     sync.WaitGroup
	writes atomic.Int64
	errs   atomic.Int64
	errMu  sync.Mutex
	errMsg map[string]int // error text -> count, for the log
	nextID atomic.Int64
	pause  time.Duration // between two changes of one database
}

func startWriter(t *testing.T, s *flinkStack, firstID int64, pause time.Duration) *faultWriter {
	w := &faultWriter{s: s, stop: make(chan struct{}), pause: pause}
	w.nextID.Store(firstID)
	w.wg.Add(2)
	go w.postgres(t)
	go w.mariadb(t)
	return w
}

// halt stops the writer and returns how many changes it committed.
func (w *faultWriter) halt() int64 {
	close(w.stop)
	w.wg.Wait()
	return w.writes.Load()
}

func (w *faultWriter) noteErr(db string, err error) {
	w.errs.Add(1)
	msg := err.Error()
	if len(msg) > 80 {
		msg = msg[:80]
	}
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.errMsg == nil {
		w.errMsg = map[string]int{}
	}
	w.errMsg[db+": "+msg]++
}

// errors describes the errors the writer met, by text.
func (w *faultWriter) errors() string {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	var b strings.Builder
	for m, n := range w.errMsg {
		fmt.Fprintf(&b, "\n  %dx %s", n, m)
	}
	return b.String()
}

func (w *faultWriter) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *faultWriter) postgres(t *testing.T) {
	defer w.wg.Done()
	ctx := context.Background()
	var c *pgx.Conn
	for !w.stopped() {
		if c == nil {
			var err error
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err = pgx.Connect(cctx, w.s.pg.DSN("postgres", "shop"))
			cancel()
			if err != nil {
				c = nil
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		var err error
		switch n := rand.IntN(20); {
		case n < 12:
			_, err = c.Exec(ctx, `INSERT INTO orders (id, customer_id, amount, status) VALUES ($1, $2, $3, 'new')`,
				w.nextID.Add(1), 1+rand.IntN(3), // the three seeded customers
				fmt.Sprintf("%d.%02d", rand.IntN(500), rand.IntN(100)))
		case n < 17:
			_, err = c.Exec(ctx, `UPDATE orders SET status = 'paid', amount = amount + 1
				WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1)`)
		case n < 19:
			_, err = c.Exec(ctx, `DELETE FROM orders WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1)`)
		default:
			_, err = c.Exec(ctx, `UPDATE orders SET id = $1 WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1)`,
				w.nextID.Add(1))
		}
		if err != nil {
			w.noteErr("postgres", err)
			c.Close(ctx)
			c = nil
			continue
		}
		w.writes.Add(1)
		time.Sleep(w.pause)
	}
	if c != nil {
		c.Close(ctx)
	}
}

func (w *faultWriter) mariadb(t *testing.T) {
	defer w.wg.Done()
	var conn *client.Conn
	for !w.stopped() {
		if conn == nil {
			var err error
			conn, err = client.Connect(w.s.my.Addr(), "root", "", "inventory", func(c *client.Conn) error {
				c.ReadTimeout, c.WriteTimeout = 5*time.Second, 5*time.Second
				return nil
			})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		var err error
		switch n := rand.IntN(10); {
		case n < 5:
			_, err = conn.Execute(`UPDATE stock_levels SET qty = qty + 1 WHERE product_id = (SELECT id FROM products ORDER BY RAND() LIMIT 1) LIMIT 1`)
		case n < 8:
			_, err = conn.Execute(fmt.Sprintf(`INSERT IGNORE INTO stock_levels (product_id, warehouse, qty)
				SELECT id, 'w-%d', %d FROM products ORDER BY RAND() LIMIT 1`, rand.IntN(20), rand.IntN(100)))
		case n < 9:
			_, err = conn.Execute(`UPDATE products SET price = price + 0.05 WHERE id = (SELECT id FROM (SELECT id FROM products ORDER BY RAND() LIMIT 1) AS x)`)
		default:
			_, err = conn.Execute(`DELETE FROM stock_levels ORDER BY RAND() LIMIT 1`)
		}
		if err != nil {
			w.noteErr("mariadb", err)
			conn.Close()
			conn = nil
			continue
		}
		w.writes.Add(1)
		time.Sleep(w.pause)
	}
	if conn != nil {
		conn.Close()
	}
}

// sinkWatch consumes both sink topics from their end and notes when the
// first record arrives.
type sinkWatch struct {
	first chan time.Time
}

func (s *flinkStack) watchSinks(t *testing.T) *sinkWatch {
	t.Helper()
	cl := s.b.Client(t, kgo.ConsumeTopics("shop.flink.orders_normalized", "inv.flink.product_stock"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	// Join the partitions at their current end before anything restarts.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	cl.PollFetches(ctx)
	cancel()
	w := &sinkWatch{first: make(chan time.Time, 1)}
	go func() {
		deadline := time.Now().Add(5 * time.Minute)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			fs := cl.PollFetches(ctx)
			cancel()
			if fs.NumRecords() > 0 {
				w.first <- time.Now()
				return
			}
			if fs.IsClientClosed() {
				return
			}
		}
	}()
	return w
}

// wait returns when the first new record arrived.
func (w *sinkWatch) wait(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-w.first:
		return at
	case <-time.After(5 * time.Minute):
		t.Fatal("no new sink record within 5 minutes")
		return time.Time{}
	}
}

// TestFlinkRestarts is the restart story with numbers: a Flink crash, a
// relay crash and a database restart, each under writes.
func TestFlinkRestarts(t *testing.T) {
	requireFlinkE2E(t)
	s := startFlinkStack(t)
	s.converged(t, "snapshot", 3*time.Minute)
	pgReads0, myReads0 := s.snapshotReads(t)
	var myReadsBefore int64 // MariaDB's counters restart at 0 with the server
	var figures []restartFigures
	nextID := int64(1_000_000)

	// run starts the writer, lets it write for a while, crashes part of
	// the stack, waits, restarts it and measures, stops the writer and
	// waits for the sinks to equal the databases.
	run := func(fault string, crash, restart func()) {
		t.Helper()
		w := startWriter(t, s, nextID, 10*time.Millisecond)
		time.Sleep(3 * time.Second) // mid-stream
		crash()
		time.Sleep(2 * time.Second) // the rest keeps going
		watch := s.watchSinks(t)
		f := restartFigures{fault: fault}
		start := time.Now()
		restart()
		f.startup = time.Since(start)
		f.firstRecord = watch.wait(t).Sub(start)
		time.Sleep(3 * time.Second)
		f.writes = w.halt()
		nextID = w.nextID.Load() + 1
		f.converge = s.converged(t, "after "+fault, 3*time.Minute)
		t.Logf("%s: restarted part ready after %v, first new sink record %v after the restart, %d writes (%d errors), converged %v after the writes stopped",
			fault, f.startup.Round(time.Millisecond), f.firstRecord.Round(time.Millisecond), f.writes, w.errs.Load(), f.converge.Round(time.Millisecond))
		if w.errs.Load() > 0 {
			t.Logf("%s: the writer's errors (it reconnects after each):%s", fault, w.errors())
		}
		figures = append(figures, f)
	}

	run("flink kill -9",
		func() { s.flink.Kill(t) },
		func() { s.flink.Start(t) })
	run("relay kill -9 (both)",
		func() { s.pgRelay.kill(); s.myRelay.kill() },
		func() { s.startRelays(t) })
	run("database restart (both)",
		func() {
			_, my := s.snapshotReads(t)
			myReadsBefore += my
			s.pg.Stop(t)
			s.my.Stop(t)
		},
		func() { s.pg.Start(t); s.my.Start(t) })

	pgReads, myReads := s.snapshotReads(t)
	myReads += myReadsBefore
	t.Logf("rows the relays read from the databases: postgres %d after the snapshot, %d at the end; mariadb %d after the snapshot, %d at the end",
		pgReads0, pgReads, myReads0, myReads)
	if pgReads != pgReads0 || myReads != myReads0 {
		t.Errorf("the relays read rows again after the snapshot: postgres %d -> %d, mariadb %d -> %d", pgReads0, pgReads, myReads0, myReads)
	}
	t.Log("| fault | restart to ready | restart to first new sink record | writes | converged after the writes stopped |")
	t.Log("|---|---|---|---|---|")
	for _, f := range figures {
		t.Logf("| %s | %v | %v | %d | %v |", f.fault, f.startup.Round(10*time.Millisecond),
			f.firstRecord.Round(10*time.Millisecond), f.writes, f.converge.Round(10*time.Millisecond))
	}
}

// TestFlinkCrashLoss kills the Flink runner with SIGKILL again and again
// while the writer runs, at random moments shortly after each restart, when
// the job works through the backlog that built up while it was down. Then
// it counts the sink rows that differ from the database. It runs the
// shipped jobs, and with CDCRELAY_FLINK_RECIPE=autocommit the stateless job
// with the offsets auto-committed by the Kafka consumer instead
// (testdata/flink/orders-autocommit.sql), to measure that recipe's
// at-most-once window. CDCRELAY_FLINK_KILLS sets the number of kills (5).
func TestFlinkCrashLoss(t *testing.T) {
	requireFlinkE2E(t)
	kills := 5
	if v := os.Getenv("CDCRELAY_FLINK_KILLS"); v != "" {
		if _, err := fmt.Sscan(v, &kills); err != nil {
			t.Fatalf("CDCRELAY_FLINK_KILLS=%q: %v", v, err)
		}
	}
	recipe := os.Getenv("CDCRELAY_FLINK_RECIPE")
	var jobs []string
	switch recipe {
	case "", "shipped":
		recipe = "shipped"
	case "autocommit":
		abs, err := filepath.Abs("testdata/flink/orders-autocommit.sql")
		if err != nil {
			t.Fatal(err)
		}
		jobs = []string{abs, deployPath(t, "flink/sql/20-product-stock.sql")}
	default:
		t.Fatalf("CDCRELAY_FLINK_RECIPE=%q: want shipped or autocommit", recipe)
	}
	s := startFlinkStack(t, jobs...)
	s.converged(t, "snapshot", 3*time.Minute)
	w := startWriter(t, s, 1_000_000, time.Millisecond)
	for i := 0; i < kills; i++ {
		time.Sleep(time.Duration(500+rand.IntN(2500)) * time.Millisecond)
		s.flink.Kill(t)
		time.Sleep(time.Second)
		s.flink.Start(t)
	}
	time.Sleep(3 * time.Second)
	writes := w.halt()
	n, diff, took := s.awaitSinks(t, 2*time.Minute)
	t.Logf("recipe %s: %d kills of Flink, %d changes written, %d sink rows differ from the databases after %v",
		recipe, kills, writes, n, took.Round(time.Millisecond))
	if n > 0 {
		msg := fmt.Sprintf("recipe %s lost changes across a Flink crash:\n%s", recipe, diff)
		if recipe == "shipped" {
			t.Fatal(msg)
		}
		t.Log(msg)
	}
}
