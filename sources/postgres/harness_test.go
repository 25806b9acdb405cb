package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/sources"
)

const (
	testDB   = "app"
	testRole = "relay"
	testPass = "relay-secret"
)

// pgEnv is a throwaway server with a database owned by a replication role,
// the identity the relay connects as.
type pgEnv struct {
	pg    *testenv.Postgres
	admin *pgx.Conn // superuser, in testDB
}

func startPG(t *testing.T, opts ...testenv.PGOption) *pgEnv {
	t.Helper()
	pg := testenv.StartPostgres(t, opts...)
	pg.Exec(t, "postgres", "CREATE ROLE "+testRole+" LOGIN REPLICATION PASSWORD '"+testPass+"'")
	pg.Exec(t, "postgres", "CREATE DATABASE "+testDB+" OWNER "+testRole)
	pg.Exec(t, testDB, "ALTER SCHEMA public OWNER TO "+testRole)
	return &pgEnv{pg: pg, admin: pg.Conn(t, testDB)}
}

// exec runs sql as the relay role's owner side (the superuser, then hands
// ownership over when it creates tables via SET ROLE).
func (e *pgEnv) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if len(args) > 0 {
		if _, err := e.admin.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("exec %s: %v", sql, err)
		}
		return
	}
	e.pg.Exec(t, testDB, "SET ROLE "+testRole+"; "+sql)
}

func (e *pgEnv) config(tables ...string) *config.Config {
	cfg := &config.Config{ID: "t1"}
	cfg.Source = config.Source{
		Type:              "postgres",
		DSN:               e.pg.DSN(testRole, testDB),
		Password:          config.Secret(testPass),
		Tables:            tables,
		SnapshotChunkSize: 1000,
		HeartbeatInterval: 0,
	}
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() || os.Getenv("CDCRELAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	// Otherwise keep the source's log and show it when the test fails.
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("source log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.b) < 4<<20 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(l.b)
	if len(s) > 20000 {
		s = "...\n" + s[len(s)-20000:]
	}
	return s
}

func newSource(t *testing.T, cfg *config.Config) *Source {
	t.Helper()
	s, err := New(cfg, testLogger(t), metrics.Discard())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// relay stands in for the relay loop: it drains Run's channel, "commits"
// at every checkpoint by keeping the events before it, and acks.
type relaySim struct {
	t      *testing.T
	src    *Source
	cancel context.CancelFunc
	done   chan error

	mu        sync.Mutex
	pending   []*change.Event
	committed []*change.Event
	state     []byte
	parts     map[string][]byte // committed parts, as the offsets topic keeps them
	ckpts     int
	lastLSN   uint64
	fp        string // SchemaFingerprint of the last checkpoint
	noAck     bool
	onCkpt    func(cp *change.Checkpoint)
	restarts  int
	lastErr   error
}

func runSource(t *testing.T, s *Source, resume []byte) *relaySim {
	return startSim(t, s, &change.Resume{State: resume}, false)
}

// runLoop is like runSource, but restarts Run after a non-fatal error the
// way the relay does: the open batch is aborted (pending events dropped)
// and Run starts again from the last committed state.
func runLoop(t *testing.T, s *Source, resume []byte) *relaySim {
	return startSim(t, s, &change.Resume{State: resume}, true)
}

// runLoopFrom is runLoop from a resume with parts (relaySim.resume).
func runLoopFrom(t *testing.T, s *Source, resume *change.Resume) *relaySim {
	return startSim(t, s, resume, true)
}

func startSim(t *testing.T, s *Source, resume *change.Resume, loop bool) *relaySim {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &relaySim{t: t, src: s, cancel: cancel, done: make(chan error, 1)}
	if resume != nil {
		r.state, r.parts = resume.State, maps.Clone(resume.Parts)
	}
	go func() {
		for {
			// One channel and one reader per Run call, so that nothing sent
			// by a failed call is taken after its batch was aborted.
			out := make(chan change.Message, 256)
			read := make(chan struct{})
			go func() {
				defer close(read)
				for m := range out {
					r.take(m)
				}
			}()
			err := s.Run(ctx, r.resume(), out)
			close(out)
			<-read
			var fe *sources.FatalError
			if !loop || err == nil || ctx.Err() != nil || errors.As(err, &fe) {
				r.done <- err
				return
			}
			r.mu.Lock()
			r.pending = nil
			r.restarts++
			r.lastErr = err
			r.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *relaySim) take(m change.Message) {
	r.mu.Lock()
	if m.Event != nil || m.Events != nil {
		// The source may reuse an event's memory once it is acked.
		if m.Event != nil {
			r.pending = append(r.pending, m.Event.Clone())
		}
		for _, ev := range m.Events {
			r.pending = append(r.pending, ev.Clone())
		}
		r.mu.Unlock()
		return
	}
	cp := m.Checkpoint
	r.committed = append(r.committed, r.pending...)
	r.pending = nil
	res := change.Resume{State: r.state, Parts: r.parts}
	res.Apply(cp)
	r.state, r.parts = res.State, res.Parts
	r.ckpts++
	r.lastLSN = cp.LSN
	r.fp = cp.SchemaFingerprint
	noAck, hook := r.noAck, r.onCkpt
	r.mu.Unlock()
	if hook != nil {
		hook(cp)
	}
	if !noAck {
		r.src.Ack(cp)
	}
}

// stop cancels Run and returns its result.
func (r *relaySim) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(30 * time.Second):
		r.t.Errorf("Run did not return within 30s of cancel")
		return errors.New("timeout")
	}
}

func (r *relaySim) events() []*change.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*change.Event(nil), r.committed...)
}

// resume is what the relay would resume from: the last state and the
// parts committed up to it.
func (r *relaySim) resume() *change.Resume {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil {
		return nil
	}
	return &change.Resume{State: r.state, Parts: maps.Clone(r.parts)}
}

func (r *relaySim) lastState() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// waitFor polls cond until it holds or d passes, failing the test then.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEvents waits until at least n events are committed.
func (r *relaySim) waitEvents(t *testing.T, n int, d time.Duration) []*change.Event {
	t.Helper()
	waitFor(t, d, "events", func() bool {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		return len(r.events()) >= n
	})
	return r.events()
}

func after(t *testing.T, ev *change.Event) map[string]any {
	t.Helper()
	return rowMap(t, ev.After)
}

func rowMap(t *testing.T, r *change.Row) map[string]any {
	t.Helper()
	if r == nil {
		return nil
	}
	m := map[string]any{}
	for i, n := range r.Names {
		if r.Values[i] == nil {
			continue
		}
		var v any
		if err := json.Unmarshal(r.Values[i], &v); err != nil {
			t.Fatalf("column %s: value %q is not JSON: %v", n, r.Values[i], err)
		}
		m[n] = v
	}
	return m
}

// slotConfirmed returns the slot's confirmed_flush_lsn.
func (e *pgEnv) slotConfirmed(t *testing.T, slot string) uint64 {
	t.Helper()
	var s *string
	if err := e.admin.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name=$1", slot).Scan(&s); err != nil {
		t.Fatalf("slot: %v", err)
	}
	if s == nil {
		return 0
	}
	var hi, lo uint64
	if _, err := fmtSscanf(*s, &hi, &lo); err != nil {
		t.Fatal(err)
	}
	return hi<<32 | lo
}

func testenvTLS(t *testing.T) *testenv.TLSFiles { return testenv.NewTLSFiles(t) }

func testenvSSL(cert, key string) testenv.PGOption { return testenv.PGSSL(cert, key) }
