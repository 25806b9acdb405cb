package checker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LedgerTable is the workload's ledger: one row per committed transaction,
// written inside that transaction (txid, and the writes as text).
const LedgerTable = "chaos_ledger"

// DB is one database dialect of the workload. Implementations:
// NewPostgres and NewMariaDB.
type DB interface {
	// Connect opens one session.
	Connect(ctx context.Context) (Session, error)
	// CreateTable returns the DDL of a workload table (id, ver, txid, pad)
	// with full before images; ledger is the DDL of the ledger table.
	CreateTable(name string) []string
	Ledger() []string
	// Quote quotes a table name of the workload's schema or database.
	Quote(name string) string
}

// Session is one connection. It is used by one goroutine at a time.
type Session interface {
	Begin(ctx context.Context) error
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
	// Exec runs a statement with ? placeholders and returns the rows
	// affected.
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
	// QueryInts runs a query whose columns are all integers or text, and
	// returns each row's values as text.
	Query(ctx context.Context, sql string, args ...any) ([][]string, error)
	Close()
}

// Config shapes the workload.
type Config struct {
	// Tables are written at random; each has Keys keys, 1..Keys.
	Tables []string
	Keys   int
	// Workers is the number of concurrent writers; each owns the keys k
	// with k % Workers == its index, so the versions it computes are never
	// raced.
	Workers int
	// WritesPerTxn is the most keys one transaction writes (at least 1).
	WritesPerTxn int
	// RollbackRatio is the share of transactions rolled back on purpose.
	RollbackRatio float64
	// DeleteRatio is the share of writes to an existing row that delete it.
	DeleteRatio float64
	// Pause is the sleep between two transactions of a worker.
	Pause time.Duration
}

// Workload writes versioned rows and keeps the ledger.
type Workload struct {
	db  DB
	cfg Config

	nextTx atomic.Int64

	mu        sync.Mutex
	aborted   []Txn // rolled back, on purpose or by a failure
	pending   []Txn // commit outcome not known yet; the ledger decides
	committed atomic.Int64
	errors    atomic.Int64
	lastErr   atomic.Value
}

// NewWorkload returns a workload over db.
func NewWorkload(db DB, cfg Config) *Workload {
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.WritesPerTxn <= 0 {
		cfg.WritesPerTxn = 1
	}
	w := &Workload{db: db, cfg: cfg}
	w.nextTx.Store(1)
	return w
}

// NextTxID is the id the next transaction gets: a mark for
// Options.StrictFrom.
func (w *Workload) NextTxID() int64 { return w.nextTx.Load() }

// Committed and Failed count transactions so far (Failed: errors that were
// retried, deliberate rollbacks excluded).
func (w *Workload) Committed() int64 { return w.committed.Load() }
func (w *Workload) Failed() int64    { return w.errors.Load() }

// LastError is the last error a worker met, for logs.
func (w *Workload) LastError() string {
	if v, ok := w.lastErr.Load().(string); ok {
		return v
	}
	return ""
}

// Setup creates the tables and the ledger.
func (w *Workload) Setup(ctx context.Context) error {
	s, err := w.db.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	stmts := w.db.Ledger()
	for _, t := range w.cfg.Tables {
		stmts = append(stmts, w.db.CreateTable(t)...)
	}
	for _, q := range stmts {
		if _, err := s.Exec(ctx, q); err != nil {
			return fmt.Errorf("checker: setup: %s: %w", q, err)
		}
	}
	return nil
}

// Seed inserts rows 1..n of table at version 1, in transactions of up to
// 1000 rows, each in the ledger.
func (w *Workload) Seed(ctx context.Context, table string, n int) error {
	s, err := w.db.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	for lo := 1; lo <= n; lo += 1000 {
		hi := min(lo+999, n)
		if err := w.bulk(ctx, s, table, lo, hi); err != nil {
			return err
		}
	}
	return nil
}

// BigTxn inserts keys lo..hi of table at version 1 in one transaction.
func (w *Workload) BigTxn(ctx context.Context, table string, lo, hi int) error {
	s, err := w.db.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	return w.bulk(ctx, s, table, lo, hi)
}

func (w *Workload) bulk(ctx context.Context, s Session, table string, lo, hi int) error {
	tx := w.nextTx.Add(1) - 1
	if err := s.Begin(ctx); err != nil {
		return err
	}
	const step = 5000
	for a := lo; a <= hi; a += step {
		b := min(a+step-1, hi)
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + w.db.Quote(table) + " (id, ver, txid, pad) VALUES ")
		for k := a; k <= b; k++ {
			if k > a {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "(%d,1,%d,'seed')", k, tx)
		}
		if _, err := s.Exec(ctx, sb.String()); err != nil {
			_ = s.Rollback(ctx)
			return fmt.Errorf("checker: bulk insert into %s: %w", table, err)
		}
	}
	writes := fmt.Sprintf("%s:%d-%d:1", table, lo, hi)
	if _, err := s.Exec(ctx, "INSERT INTO "+w.db.Quote(LedgerTable)+" (txid, writes) VALUES (?, ?)", tx, writes); err != nil {
		_ = s.Rollback(ctx)
		return err
	}
	if err := s.Commit(ctx); err != nil {
		return err
	}
	w.committed.Add(1)
	return nil
}

// Run writes until ctx is done. Database errors (a restart, the connection
// limit) are retried with backoff; a commit whose outcome is unknown is
// resolved by looking for its ledger row.
func (w *Workload) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range w.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.worker(ctx, i)
		}()
	}
	wg.Wait()
}

type worker struct {
	w        *Workload
	idx      int
	s        Session
	rng      *rand.Rand
	deleted  map[RowID]int64 // version of the delete of a key now absent
	poisoned map[RowID]bool  // keys of a transaction with an unknown outcome
}

func (w *Workload) worker(ctx context.Context, idx int) {
	wk := &worker{w: w, idx: idx, rng: rand.New(rand.NewPCG(uint64(idx), uint64(time.Now().UnixNano()))), deleted: map[RowID]int64{}, poisoned: map[RowID]bool{}}
	defer func() {
		if wk.s != nil {
			wk.s.Close()
		}
	}()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if err := wk.step(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.errors.Add(1)
			w.lastErr.Store(err.Error())
			if wk.s != nil {
				wk.s.Close()
				wk.s = nil
			}
			sleep(ctx, backoff)
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if w.cfg.Pause > 0 {
			sleep(ctx, w.cfg.Pause)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// step runs one transaction.
func (wk *worker) step(ctx context.Context) error {
	w := wk.w
	if wk.s == nil {
		s, err := w.db.Connect(ctx)
		if err != nil {
			return err
		}
		wk.s = s
	}
	s := wk.s
	tx := w.nextTx.Add(1) - 1
	n := 1 + wk.rng.IntN(w.cfg.WritesPerTxn)
	picked := map[RowID]bool{}
	var writes []Write
	deletedNow := map[RowID]int64{}
	rec := Txn{ID: tx}
	if err := s.Begin(ctx); err != nil {
		return err
	}
	fail := func(err error) error {
		_ = s.Rollback(context.Background())
		rec.Writes = writes
		w.mu.Lock()
		w.aborted = append(w.aborted, rec)
		w.mu.Unlock()
		return err
	}
	for range n {
		row := wk.pick()
		if picked[row] || wk.poisoned[row] {
			continue
		}
		picked[row] = true
		q := w.db.Quote(row.Table)
		rows, err := s.Query(ctx, "SELECT ver FROM "+q+" WHERE id = ? FOR UPDATE", row.Key)
		if err != nil {
			return fail(err)
		}
		switch {
		case len(rows) == 0:
			v := wk.deleted[row] + 1
			if _, err := s.Exec(ctx, "INSERT INTO "+q+" (id, ver, txid, pad) VALUES (?, ?, ?, ?)", row.Key, v, tx, pad(wk.rng)); err != nil {
				return fail(err)
			}
			writes = append(writes, Write{Row: row, Version: v})
		case wk.rng.Float64() < w.cfg.DeleteRatio:
			cur, _ := strconv.ParseInt(rows[0][0], 10, 64)
			if _, err := s.Exec(ctx, "DELETE FROM "+q+" WHERE id = ?", row.Key); err != nil {
				return fail(err)
			}
			writes = append(writes, Write{Row: row, Version: cur + 1, Delete: true})
			deletedNow[row] = cur + 1
		default:
			cur, _ := strconv.ParseInt(rows[0][0], 10, 64)
			if _, err := s.Exec(ctx, "UPDATE "+q+" SET ver = ?, txid = ?, pad = ? WHERE id = ?", cur+1, tx, pad(wk.rng), row.Key); err != nil {
				return fail(err)
			}
			writes = append(writes, Write{Row: row, Version: cur + 1})
		}
	}
	rec.Writes = writes
	if wk.rng.Float64() < w.cfg.RollbackRatio {
		if err := s.Rollback(ctx); err != nil {
			return fail(err)
		}
		w.mu.Lock()
		w.aborted = append(w.aborted, rec)
		w.mu.Unlock()
		return nil
	}
	if _, err := s.Exec(ctx, "INSERT INTO "+w.db.Quote(LedgerTable)+" (txid, writes) VALUES (?, ?)", tx, formatWrites(writes)); err != nil {
		return fail(err)
	}
	if err := s.Commit(ctx); err != nil {
		// The outcome is unknown: look for the ledger row.
		ok, rerr := wk.resolve(ctx, tx)
		if rerr != nil {
			// Undecidable now; the ledger table decides at the end. The
			// keys are left alone from now on, since their versions are
			// not known here.
			w.mu.Lock()
			w.pending = append(w.pending, rec)
			w.mu.Unlock()
			for row := range picked {
				wk.poisoned[row] = true
			}
			return errors.Join(err, rerr)
		}
		if !ok {
			return fail(err)
		}
	}
	for row, v := range deletedNow {
		wk.deleted[row] = v
	}
	w.committed.Add(1)
	return nil
}

// resolve finds out on a fresh session whether tx committed.
func (wk *worker) resolve(ctx context.Context, tx int64) (bool, error) {
	var lastErr error
	for range 50 {
		s, err := wk.w.db.Connect(ctx)
		if err == nil {
			rows, qerr := s.Query(ctx, "SELECT txid FROM "+wk.w.db.Quote(LedgerTable)+" WHERE txid = ?", tx)
			s.Close()
			if qerr == nil {
				return len(rows) > 0, nil
			}
			err = qerr
		}
		lastErr = err
		sleep(ctx, 200*time.Millisecond)
		if ctx.Err() != nil {
			break
		}
	}
	return false, lastErr
}

func (wk *worker) pick() RowID {
	w := wk.w
	t := w.cfg.Tables[wk.rng.IntN(len(w.cfg.Tables))]
	per := max(w.cfg.Keys/w.cfg.Workers, 1)
	k := int64(wk.rng.IntN(per)*w.cfg.Workers + wk.idx + 1)
	return RowID{Table: t, Key: k}
}

func pad(r *rand.Rand) string { return strconv.FormatUint(r.Uint64(), 36) }

// formatWrites writes "table:key:version[:d]" items separated by spaces;
// parseWrites also reads "table:lo-hi:version" ranges, written by bulk
// inserts.
func formatWrites(ws []Write) string {
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d:%d", w.Row.Table, w.Row.Key, w.Version)
		if w.Delete {
			b.WriteString(":d")
		}
	}
	return b.String()
}

func parseWrites(s string) ([]Write, error) {
	var out []Write
	for _, item := range strings.Fields(s) {
		p := strings.Split(item, ":")
		if len(p) < 3 {
			return nil, fmt.Errorf("checker: ledger item %q", item)
		}
		ver, err := strconv.ParseInt(p[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("checker: ledger item %q: %w", item, err)
		}
		lo, hi := p[1], p[1]
		if a, b, ok := strings.Cut(p[1], "-"); ok {
			lo, hi = a, b
		}
		l, err1 := strconv.ParseInt(lo, 10, 64)
		h, err2 := strconv.ParseInt(hi, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("checker: ledger item %q", item)
		}
		for k := l; k <= h; k++ {
			out = append(out, Write{Row: RowID{Table: p[0], Key: k}, Version: ver, Delete: len(p) > 3 && p[3] == "d"})
		}
	}
	return out, nil
}

// Ledger returns every transaction: the committed ones from the ledger
// table, and the rolled-back ones this process remembers. A transaction
// that failed at commit time with an unknown outcome is in the ledger table
// if and only if it committed.
func (w *Workload) Ledger(ctx context.Context) ([]Txn, error) {
	s, err := w.db.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	rows, err := s.Query(ctx, "SELECT txid, writes FROM "+w.db.Quote(LedgerTable))
	if err != nil {
		return nil, err
	}
	out := make([]Txn, 0, len(rows))
	committed := map[int64]bool{}
	for _, r := range rows {
		id, _ := strconv.ParseInt(r[0], 10, 64)
		ws, err := parseWrites(r[1])
		if err != nil {
			return nil, err
		}
		committed[id] = true
		out = append(out, Txn{ID: id, Committed: true, Writes: ws})
	}
	w.mu.Lock()
	for _, tx := range append(append([]Txn{}, w.aborted...), w.pending...) {
		if !committed[tx.ID] {
			tx.Committed = false
			out = append(out, tx)
		}
	}
	w.mu.Unlock()
	return out, nil
}

// Final returns each live row's version.
func (w *Workload) Final(ctx context.Context) (map[RowID]int64, error) {
	s, err := w.db.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	out := map[RowID]int64{}
	for _, t := range w.cfg.Tables {
		if err := w.finalOf(ctx, s, t, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// FinalOf adds the live rows of more tables (such as one written only by
// BigTxn) to final.
func (w *Workload) FinalOf(ctx context.Context, final map[RowID]int64, tables ...string) error {
	s, err := w.db.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, t := range tables {
		if err := w.finalOf(ctx, s, t, final); err != nil {
			return err
		}
	}
	return nil
}

func (w *Workload) finalOf(ctx context.Context, s Session, t string, out map[RowID]int64) error {
	rows, err := s.Query(ctx, "SELECT id, ver FROM "+w.db.Quote(t))
	if err != nil {
		return err
	}
	for _, r := range rows {
		id, _ := strconv.ParseInt(r[0], 10, 64)
		v, _ := strconv.ParseInt(r[1], 10, 64)
		out[RowID{Table: t, Key: id}] = v
	}
	return nil
}
