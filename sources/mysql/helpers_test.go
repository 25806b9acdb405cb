package mysql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/sources"
)

const testPassword = "cdc-secret"

// startMaria starts a server with database shop and a user cdc holding
// exactly the grants that docs/mysql.md lists.
func startMaria(t *testing.T, opts ...testenv.MariaOption) *testenv.MariaDB {
	t.Helper()
	m := testenv.StartMariaDB(t, opts...)
	m.Exec(t, "CREATE DATABASE shop")
	m.Exec(t, "CREATE USER 'cdc'@'%' IDENTIFIED BY '"+testPassword+"'")
	m.Exec(t, "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'cdc'@'%'")
	m.Exec(t, "GRANT SELECT, INSERT, UPDATE, CREATE ON shop.* TO 'cdc'@'%'")
	return m
}

func testConfig(m *testenv.MariaDB, tables ...string) *config.Config {
	if len(tables) == 0 {
		tables = []string{"shop.*"}
	}
	cfg := &config.Config{ID: "t1", Source: config.Source{
		Type: "mysql", DSN: m.DSN("cdc", "shop"), Password: testPassword,
		Tables: tables, SnapshotChunkSize: 1000,
	}, Kafka: config.Kafka{Brokers: []string{"127.0.0.1:9"}}}
	cfg.SetDefaults()
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("MYSQL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newSource(t *testing.T, cfg *config.Config) (*Source, *metrics.Metrics) {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry())
	s, err := New(cfg, testLogger(t), m)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, m
}

// sink plays the relay: it commits the events before each checkpoint (in
// memory), acks the checkpoint, and keeps the last committed state. Events
// after the last checkpoint of a run are dropped when the run ends, as an
// aborted Kafka transaction would drop them.
type sink struct {
	paused    atomic.Bool // stop reading from Run while set
	mu        sync.Mutex
	committed []*change.Event
	state     []byte
	fp        string            // SchemaFingerprint of the last checkpoint
	parts     map[string][]byte // committed parts, as the offsets topic keeps them
	cps       int
}

func (k *sink) snapshot() ([]*change.Event, []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*change.Event(nil), k.committed...), k.state
}

// running is one call of Source.Run.
type running struct {
	cancel   context.CancelFunc
	finished chan struct{} // closed when Run returned, err set
	err      error
}

// start runs src from the sink's committed state.
func (k *sink) start(t *testing.T, src *Source) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan change.Message, 16)
	r := &running{cancel: cancel, finished: make(chan struct{})}
	_, state := k.snapshot()
	var resume *change.Resume
	if state != nil {
		k.mu.Lock()
		resume = &change.Resume{State: state, Parts: maps.Clone(k.parts)}
		k.mu.Unlock()
	}
	go func() {
		r.err = src.Run(ctx, resume, out)
		close(out)
		close(r.finished)
	}()
	go func() {
		var pending []*change.Event
		for m := range out {
			for k.paused.Load() {
				time.Sleep(10 * time.Millisecond)
			}
			// The source may reuse an event's memory once it is acked.
			if m.Event != nil {
				pending = append(pending, m.Event.Clone())
				continue
			}
			if m.Events != nil {
				for _, ev := range m.Events {
					pending = append(pending, ev.Clone())
				}
				continue
			}
			k.mu.Lock()
			k.committed = append(k.committed, pending...)
			res := change.Resume{State: k.state, Parts: k.parts}
			res.Apply(m.Checkpoint)
			k.state, k.parts = res.State, res.Parts
			k.fp = m.Checkpoint.SchemaFingerprint
			k.cps++
			k.mu.Unlock()
			pending = nil
			src.Ack(m.Checkpoint)
		}
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels the run and returns its error.
func (r *running) stop() error {
	r.cancel()
	<-r.finished
	return r.err
}

// wait returns Run's error once it ends by itself.
func (r *running) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.finished:
		return r.err
	case <-time.After(d):
		t.Fatalf("Run did not end within %v", d)
		return nil
	}
}

// waitFor polls the committed events until cond holds.
func (k *sink) waitFor(t *testing.T, d time.Duration, what string, cond func([]*change.Event) bool) []*change.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		evs, _ := k.snapshot()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; have %d events", d, what, len(evs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countOps(evs []*change.Event, table string, op change.Op) int {
	n := 0
	for _, e := range evs {
		if e.Table.Name == table && e.Op == op {
			n++
		}
	}
	return n
}

func isFatal(err error) bool {
	var f *sources.FatalError
	return errors.As(err, &f)
}

// applyEvents folds events into the final state per key: key -> after row
// as a JSON object of its columns.
func applyEvents(evs []*change.Event, table string) map[string]string {
	st := map[string]string{}
	for _, e := range evs {
		if e.Table.Name != table {
			continue
		}
		if e.Op == change.OpDelete {
			delete(st, string(e.Key))
			continue
		}
		st[string(e.Key)] = rowJSON(e.After)
	}
	return st
}

func rowJSON(r *change.Row) string {
	if r == nil {
		return "null"
	}
	b := []byte{'{'}
	for i, n := range r.Names {
		if r.Values[i] == nil {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = change.AppendString(b, n)
		b = append(b, ':')
		b = append(b, r.Values[i]...)
	}
	return string(append(b, '}'))
}

// supervised runs src the way the relay does: after a non-fatal error it
// calls Run again with the last committed state.
type supervised struct {
	mu       sync.Mutex
	cur      *running
	stopped  bool
	restarts int
	done     chan error
}

func (k *sink) supervise(t *testing.T, src *Source) *supervised {
	t.Helper()
	s := &supervised{done: make(chan error, 1)}
	go func() {
		for {
			s.mu.Lock()
			if s.stopped {
				s.mu.Unlock()
				s.done <- nil
				return
			}
			r := k.start(t, src)
			s.cur = r
			s.mu.Unlock()
			<-r.finished
			err := r.err
			s.mu.Lock()
			if s.stopped || err == nil {
				s.mu.Unlock()
				s.done <- nil
				return
			}
			if isFatal(err) {
				fmt.Fprintln(os.Stderr, "Run stopped:", err)
				s.mu.Unlock()
				s.done <- err
				return
			}
			s.restarts++
			if os.Getenv("MYSQL_TEST_LOG") != "" {
				t.Logf("Run: %v", err)
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *supervised) stop() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	if s.cur != nil {
		s.cur.cancel()
	}
	s.mu.Unlock()
	return <-s.done
}

func (s *supervised) restartCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// checkFold checks that the events of shop.big, folded by key, equal the
// table's rows as db shows them, naming the first keys that differ.
func checkFold(t *testing.T, evs []*change.Event, db *testenv.MariaDB) {
	t.Helper()
	got, want := applyEvents(evs, "big"), tableState(t, db)
	if len(got) != len(want) {
		t.Errorf("folded events hold %d rows, the table %d", len(got), len(want))
	}
	bad := 0
	for key, row := range want {
		if got[key] != row && bad < 5 {
			bad++
			t.Errorf("key %s: events say %s, table says %s", key, got[key], row)
		}
	}
}
