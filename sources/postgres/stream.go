package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// runner is the state of one Run call. Each concern that only some steps
// need has a struct of its own: the transaction being decoded, the reads of
// snapshot chunks, and the clock of the periodic work.
type runner struct {
	s    *Source
	out  chan<- change.Message
	sql  *pgx.Conn
	repl *pgconn.PgConn
	db   string

	st     state
	sn     *snapshot.Snapshotter
	tables map[string]*tableMeta // by ident
	rels   map[uint32]*relation
	types  typeResolver
	msg    pgMessage
	alloc  change.Alloc // for the rows and events of the stream
	// schemas holds the captured tables' shapes for the fingerprint.
	schemas change.Schemas

	txn    txn        // the source transaction being decoded
	chunks chunkReads // how snapshot chunks are read
	// ctid is the read of a keyless table by ctid ranges, from its snapshot
	// until the stream reaches that snapshot's point (see ctid.go).
	ctid  *ctidRead
	clock clock // when status updates, heartbeats and idle checkpoints are due

	toastWarned map[string]bool // tables warned about under source.unchanged_toast: omit
}

// txn is the source transaction being decoded.
type txn struct {
	open       bool
	skip       bool // at or before the stored position: sent already
	xid        uint32
	commitTime time.Time
	label      []byte
	events     int
	notable    bool // the transaction carries a heartbeat, signal or closed chunk
}

// quiet reports whether the transaction sent nothing and carries nothing
// that needs a checkpoint.
func (t *txn) quiet() bool { return t.events == 0 && !t.notable }

// chunkReads is how the snapshot's chunks are read: ahead of need on a
// connection of their own, into memory reused once acked, and checked at
// their low watermark.
type chunkReads struct {
	// pre reads snapshot chunks ahead (see prefetch); opened at the first
	// read ahead, closed when the snapshot queue is empty.
	pre       *pgx.Conn
	preFailed bool
	// The memory snapshot chunks are read into, reused once acked.
	mem snapshot.Memories
	// The chunk reads, and the decoded xids no snapshot was shown to see
	// yet, that each chunk is checked against at its low watermark
	// (chunkcheck.go).
	vis    []*chunkVis
	unseen map[uint32]struct{}
}

// Run streams changes after resume into out. See sources.Stream.
//
// A lost replication connection ends Run with a non-fatal error; the relay
// then calls Run again with the state of the last checkpoint committed to
// Kafka, and Run resumes from there. Connecting retries by itself, with
// jittered exponential backoff, while the server is down or refuses
// connections.
func (s *Source) Run(ctx context.Context, resume *change.Resume, out chan<- change.Message) error {
	var stored *state
	if resume != nil && resume.State != nil {
		st, err := decodeState(resume.State)
		if err != nil {
			return sources.Fatal(err)
		}
		if st.Snapshot, err = snapshot.Restore(st.Snapshot, resume.Parts); err != nil {
			return sources.Fatal(fmt.Errorf("postgres: %w", err))
		}
		stored = st
	}
	var r *runner
	defer func() { r.close() }()
	err := retry(ctx, s, func() error {
		r.close()
		r = &runner{s: s, out: out, rels: map[uint32]*relation{}, tables: map[string]*tableMeta{}}
		if err := r.connect(ctx); err != nil {
			return err
		}
		return r.start(ctx, stored)
	})
	if err != nil {
		return err
	}
	return r.loop(ctx)
}

func (r *runner) close() {
	if r == nil {
		return
	}
	if r.clock.tick != nil {
		r.clock.tick.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r.repl != nil {
		r.repl.Close(ctx)
	}
	if r.sn != nil {
		r.sn.Abandon() // waits for a read ahead, which may use r.chunks.pre
	}
	r.closeCtid()
	if r.chunks.pre != nil {
		r.chunks.pre.Close(ctx)
	}
	if r.sql != nil {
		r.sql.Close(ctx)
	}
}

// prefetch starts reading the next snapshot chunk ahead, on a connection of
// its own, while the rows of the chunk just closed are sent. Without that
// connection (the server refused it) chunks are read one after the other,
// as they would be anyway.
func (r *runner) prefetch(ctx context.Context) {
	if !r.sn.Active() || r.sn.InFlight() || r.chunks.preFailed {
		return
	}
	t := r.tables[r.sn.Next()]
	if t == nil || t.ctidMode() {
		return
	}
	if r.chunks.pre == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := r.s.connectSQL(cctx)
		cancel()
		if err != nil {
			r.chunks.preFailed = true
			r.s.log.Warn("postgres: no connection to read snapshot chunks ahead; reading them one after the other", "err", err)
			return
		}
		r.chunks.pre = c
	}
	a := r.chunkAlloc()
	r.sn.Prefetch(ctx, r.chunkDialect(dialect{r: r, conn: r.chunks.pre, table: t, alloc: a}))
	if !r.sn.InFlight() {
		r.chunks.mem.Put(a)
	}
}

// chunkAlloc returns the memory to read the next snapshot chunk into.
func (r *runner) chunkAlloc() *change.Alloc {
	a := r.chunks.mem.Get(r.s.acked.Load())
	r.s.chunkMems.Store(int64(r.chunks.mem.Made))
	return a
}

// connect opens both connections.
func (r *runner) connect(ctx context.Context) error {
	c, err := r.s.connectSQL(ctx)
	if err != nil {
		return err
	}
	r.sql = c
	rc, err := r.s.connectReplication(ctx)
	if err != nil {
		return err
	}
	r.repl = rc
	return nil
}

// start runs the startup checks, restores or creates the state, and starts
// replication.
func (r *runner) start(ctx context.Context, stored *state) error {
	s := r.s
	if err := r.checkWalLevel(ctx); err != nil {
		return err
	}
	sys, err := pglogrepl.IdentifySystem(ctx, r.repl)
	if err != nil {
		return fmt.Errorf("postgres: identify system: %w", err)
	}
	slot, err := readSlot(ctx, r.sql, s.slot)
	if err != nil {
		return err
	}
	if stored, err = r.resumable(ctx, slot, stored, sys); err != nil {
		return err
	}
	if stored != nil {
		r.st = *stored
		s.raiseAcked(uint64(stored.lsn))
	} else {
		r.st = state{SystemID: sys.SystemID, Timeline: sys.Timeline, Slot: s.slot}
		s.raiseAcked(uint64(slot.confirmed))
	}
	tables, err := r.loadTables(ctx)
	if err != nil {
		return err
	}
	if err := r.startSnapshots(tables); err != nil {
		return err
	}
	if err := r.startReplication(ctx); err != nil {
		return err
	}
	from, origin := startPosition(stored, slot, s.slotCreated.Load())
	s.log.Info("postgres: streaming", "slot", s.slot, "from", from.String(), "origin", origin,
		"tables", len(tables), "snapshot_queue", r.sn.Waiting())
	r.clock = newClock(time.Now(), s.heartbeat)
	return nil
}

// checkWalLevel reads the server's wal_level, which must be logical, and
// the database's name.
func (r *runner) checkWalLevel(ctx context.Context) error {
	var walLevel string
	if err := r.sql.QueryRow(ctx, "SELECT current_setting('wal_level'), current_database()").Scan(&walLevel, &r.db); err != nil {
		return fmt.Errorf("postgres: read settings: %w", err)
	}
	if walLevel != "logical" {
		return sources.Fatal(fmt.Errorf("postgres: wal_level is %s, logical decoding needs wal_level=logical (set it and restart PostgreSQL)", walLevel))
	}
	return nil
}

// loadTables reads the captured tables, their types and their shapes.
func (r *runner) loadTables(ctx context.Context) ([]*tableMeta, error) {
	r.types = catalogTypes(ctx, r.sql)
	tables, err := r.s.listTables(ctx, r.sql, r.types)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		r.tables[t.ident] = t
	}
	if err := r.seedShapes(); err != nil {
		return nil, sources.Fatal(err)
	}
	return tables, nil
}

// startSnapshots restores the snapshot progress, drops the tables no longer
// captured from it, and queues the captured tables not snapshotted yet.
func (r *runner) startSnapshots(tables []*tableMeta) error {
	s := r.s
	var err error
	r.sn, err = snapshot.New(snapshot.Config{
		ChunkSize:  s.chunkSize,
		MarkPrefix: s.slot,
		Compare:    r.compareFor,
		Log:        s.log,
		Metrics:    s.m,
	}, r.st.Snapshot)
	if err != nil {
		return sources.Fatal(fmt.Errorf("postgres: restore snapshot progress: %w", err))
	}
	for _, p := range r.st.Snapshot.Queue {
		if _, ok := r.tables[p.Table]; !ok {
			s.log.Warn("postgres: table no longer captured, its snapshot is dropped", "table", p.Table)
			r.sn.Forget(p.Table)
		}
	}
	for _, t := range tables {
		if err := t.checkKafkaKey(); err != nil {
			return sources.Fatal(fmt.Errorf("postgres: %w", err))
		}
	}
	if s.snapshot {
		for _, t := range tables {
			if err := r.queueSnapshot(t); err != nil {
				return err
			}
		}
	}
	r.st.Snapshot = r.sn.State()
	return nil
}

// queueSnapshot queues the initial snapshot of t unless the progress knows
// it already.
func (r *runner) queueSnapshot(t *tableMeta) error {
	if len(t.chunk) == 0 && !t.ctidMode() && !r.sn.Known(t.ident) {
		return sources.Fatal(t.snapshotRefusal())
	}
	if t.chunkIndex != "" && !r.sn.Known(t.ident) {
		r.s.log.Info("postgres: table without a primary key is snapshotted by a unique index", "table", t.ident, "index", t.chunkIndex, "columns", strings.Join(t.chunk, ","))
	}
	if !r.sn.Known(t.ident) {
		if err := r.sn.Enqueue(t.ident); err != nil {
			return sources.Fatal(fmt.Errorf("postgres: %w", err))
		}
	}
	return nil
}

// startReplication starts streaming pgoutput from the slot at the state's
// position.
func (r *runner) startReplication(ctx context.Context) error {
	s := r.s
	pub := strings.ReplaceAll(pgx.Identifier{s.publication}.Sanitize(), "'", "''")
	err := pglogrepl.StartReplication(ctx, r.repl, s.slot, r.st.lsn, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names '" + pub + "'", "messages 'true'"},
	})
	if err != nil {
		return classify(fmt.Errorf("postgres: start replication on slot %s at %s: %w", s.slot, r.st.lsn, err))
	}
	return nil
}

// slotOlderThanPublication explains pgoutput's "publication does not
// exist" for a publication that exists now: pgoutput reads the publication
// through the catalog as of each change it decodes, so a slot whose position
// is older than the publication fails on the first change in between.
func (s *Source) slotOlderThanPublication() string {
	return fmt.Sprintf("the replication slot %s is older than the publication %s (pgoutput looks the publication up as of each change, and the slot's position is before the publication was created); "+
		"create the publication before the slot: drop the slot and let cdcrelay create it, or create it again yourself after the publication "+
		"(pg_replication_slot_advance('%s', pg_current_wal_lsn()) instead would skip the changes in between)", s.slot, s.publication, s.slot)
}

// publicationExists reports whether the publication exists now; false when
// that cannot be told.
func (r *runner) publicationExists(ctx context.Context) bool {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var ok bool
	err := r.sql.QueryRow(qctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1)", r.s.publication).Scan(&ok)
	return err == nil && ok
}

// Where the stream starts, as startPosition names it.
const (
	originStored  = "stored offsets"
	originSlot    = "existing slot's confirmed_flush_lsn"
	originNewSlot = "new slot"
)

// startPosition is the LSN the stream starts from and where that comes
// from. START_REPLICATION at X streams the transactions that commit after
// max(X, the slot's confirmed_flush_lsn). With a stored position, X is that
// position, which checkResumable has found at or after confirmed_flush_lsn.
// Without one, X is 0/0, so the slot's confirmed_flush_lsn decides: that of
// a slot that existed before (made by an earlier run, by hand or by another
// tool), or the consistent point of the slot Setup has just created.
func startPosition(stored *state, slot slotInfo, slotCreated bool) (pglogrepl.LSN, string) {
	switch {
	case stored != nil:
		return max(stored.lsn, slot.confirmed), originStored
	case slotCreated:
		return slot.confirmed, originNewSlot
	default:
		return slot.confirmed, originSlot
	}
}

func (r *runner) compareFor(table string) (snapshot.Compare, error) {
	t, ok := r.tables[table]
	if !ok {
		return nil, fmt.Errorf("not a captured table")
	}
	if t.ctidMode() {
		// Read whole (ctid.go): no key, and no change is compared.
		return func(a, b snapshot.Key) int { return 0 }, nil
	}
	return t.keyCompare()
}

// loop reads the replication stream until ctx is done or the stream fails.
// Each turn does the periodic work that is due, reads the next snapshot
// chunk when one is wanted, waits for the server's next message until the
// next wake-up, and dispatches that message.
//
// The receive has no context: pgconn would watch a cancellable one with a
// goroutine hand-off and a few allocations per message. The deadline is set
// on the connection instead, and a cancel of ctx moves it to now.
func (r *runner) loop(ctx context.Context) error {
	conn := r.repl.Conn()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	var deadline time.Time
	for ctx.Err() == nil {
		now := time.Now()
		if err := r.housekeeping(ctx, now); err != nil {
			return err
		}
		if err := r.snapshotStep(ctx); err != nil {
			return err
		}
		// One deadline serves many receives; it moves only once it has
		// passed or when an earlier one is wanted.
		if next := r.clock.wake(now); deadline.IsZero() || !now.Before(deadline) || next.Before(deadline) {
			deadline = next
			if err := conn.SetReadDeadline(deadline); err != nil {
				return fmt.Errorf("postgres: replication stream: set read deadline: %w", err)
			}
			// A cancel before this deadline was set may have been
			// overwritten by it; one after it moves it to now.
			if ctx.Err() != nil {
				return nil
			}
		}
		msg, err := r.repl.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				deadline = time.Time{}
				continue
			}
			r.s.m.Reconnects.WithLabelValues("stream_lost").Inc()
			return fmt.Errorf("postgres: replication stream: %w", err)
		}
		if err := r.dispatch(ctx, msg); err != nil {
			return err
		}
	}
	return nil
}

// snapshotStep reads the next snapshot chunk, or starts the read of a
// keyless table by ctid ranges, when the snapshot queue wants one and no
// source transaction is open; it lets go of the read-ahead connection and
// the chunk memory once the snapshots are done.
func (r *runner) snapshotStep(ctx context.Context) error {
	if !r.txn.open && r.sn.Active() && !r.sn.InFlight() {
		if t := r.tables[r.sn.Next()]; t != nil && t.ctidMode() {
			if r.ctid == nil {
				if err := r.startCtid(ctx, t); err != nil {
					return err
				}
			}
		} else if err := r.sn.ReadNext(ctx, r.chunkDialect(dialect{r: r, alloc: r.chunkAlloc()})); err != nil {
			return r.sqlError(ctx, err)
		}
	}
	if r.chunks.pre != nil && !r.sn.Active() {
		r.chunks.pre.Close(ctx)
		r.chunks.pre = nil
	}
	if r.chunks.mem.Holding() && !r.sn.Active() && !r.sn.InFlight() {
		r.chunks.mem.Drop() // the snapshots are done
	}
	return nil
}

// dispatch handles one message of the replication stream.
func (r *runner) dispatch(ctx context.Context, msg pgproto3.BackendMessage) error {
	switch msg := msg.(type) {
	case *pgproto3.CopyData:
		return r.copyData(ctx, msg.Data)
	case *pgproto3.ErrorResponse:
		r.s.m.Reconnects.WithLabelValues("stream_error").Inc()
		pe := pgconn.ErrorResponseToPgError(msg)
		if pe.Code == "42704" && strings.HasPrefix(pe.Message, "publication ") && r.publicationExists(ctx) {
			return classify(fmt.Errorf("postgres: replication stream: %w; %s", pe, r.s.slotOlderThanPublication()))
		}
		return classify(fmt.Errorf("postgres: replication stream: %w", pe))
	case *pgproto3.CopyDone:
		r.s.m.Reconnects.WithLabelValues("stream_lost").Inc()
		return errors.New("postgres: server ended the replication stream")
	}
	return nil
}

// copyData handles a keepalive, answering it at once when the server asks,
// or the WAL data of one pgoutput message.
func (r *runner) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("postgres: keepalive: %w", err)
		}
		if pkm.ReplyRequested {
			return r.sendStatus()
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("postgres: xlog data: %w", err)
		}
		return r.handle(ctx, xld.WALStart, xld.WALData)
	}
	return nil
}

// sqlError turns a failure of the SQL connection into Run's result.
func (r *runner) sqlError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	var fatal *sources.FatalError
	if errors.As(err, &fatal) {
		return err
	}
	r.s.m.Reconnects.WithLabelValues("sql_lost").Inc()
	return classify(fmt.Errorf("postgres: %w", err))
}
