package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// relation is a table as the stream describes it, with its encoders.
type relation struct {
	schema, name string
	ident        string
	captured     bool
	identity     byte
	names        []string // shared by every Row of this relation version
	keys         [][]byte // names as JSON object keys (change.ObjectKeys)
	encs         []encoder
	key          []int    // indexes of the key columns
	keyNames     []string // names of the key columns
	keyless      bool
	// kafka and kafkaNames are the Kafka key (source.key_columns, else the
	// key columns); chunk is the snapshot key (the primary key, or a unique
	// index of a keyless table), nil when the table is not snapshotted.
	kafka      []int
	kafkaNames []string
	chunk      []int
}

// runner is the state of one Run call.
type runner struct {
	s    *Source
	out  chan<- change.Message
	sql  *pgx.Conn
	repl *pgconn.PgConn
	// pre reads snapshot chunks ahead (see prefetch); opened at the first
	// read ahead, closed when the snapshot queue is empty.
	pre       *pgx.Conn
	preFailed bool
	db        string

	st     state
	sn     *snapshot.Snapshotter
	tables map[string]*tableMeta // by ident
	rels   map[uint32]*relation
	types  typeResolver
	msg    pgMessage
	alloc  change.Alloc // for the rows and events of the stream

	// The memory snapshot chunks are read into, reused once acked.
	chunkMem snapshot.Memories
	// ctid is the read of a keyless table by ctid ranges, from its snapshot
	// until the stream reaches that snapshot's point (see ctid.go).
	ctid *ctidRead

	// the source transaction being decoded
	inTxn      bool
	skip       bool
	xid        uint32
	commitTime time.Time
	txnLabel   []byte
	events     int
	notable    bool // the transaction carries a heartbeat, signal or closed chunk

	lastCkpt      time.Time
	idleEvery     time.Duration
	nextHeartbeat time.Time
	nextStatus    time.Time
	sentAck       uint64
	tick          *time.Ticker
}

// Run streams changes after resume into out. See relay.Source.
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
			return relay.Fatal(err)
		}
		if st.Snapshot, err = snapshot.Restore(st.Snapshot, resume.Parts); err != nil {
			return relay.Fatal(fmt.Errorf("postgres: %w", err))
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
	if r.tick != nil {
		r.tick.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r.repl != nil {
		r.repl.Close(ctx)
	}
	if r.sn != nil {
		r.sn.Abandon() // waits for a read ahead, which may use r.pre
	}
	r.closeCtid()
	if r.pre != nil {
		r.pre.Close(ctx)
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
	if !r.sn.Active() || r.sn.InFlight() || r.preFailed {
		return
	}
	t := r.tables[r.sn.Next()]
	if t == nil || t.ctidMode() {
		return
	}
	if r.pre == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := r.s.connectSQL(cctx)
		cancel()
		if err != nil {
			r.preFailed = true
			r.s.log.Warn("postgres: no connection to read snapshot chunks ahead; reading them one after the other", "err", err)
			return
		}
		r.pre = c
	}
	a := r.chunkAlloc()
	r.sn.Prefetch(ctx, dialect{r: r, conn: r.pre, table: t, alloc: a})
	if !r.sn.InFlight() {
		r.chunkMem.Put(a)
	}
}

// chunkAlloc returns the memory to read the next snapshot chunk into.
func (r *runner) chunkAlloc() *change.Alloc {
	a := r.chunkMem.Get(r.s.acked.Load())
	r.s.chunkMems.Store(int64(r.chunkMem.Made))
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
	var walLevel string
	if err := r.sql.QueryRow(ctx, "SELECT current_setting('wal_level'), current_database()").Scan(&walLevel, &r.db); err != nil {
		return fmt.Errorf("postgres: read settings: %w", err)
	}
	if walLevel != "logical" {
		return relay.Fatal(fmt.Errorf("postgres: wal_level is %s, logical decoding needs wal_level=logical (set it and restart PostgreSQL)", walLevel))
	}
	sys, err := pglogrepl.IdentifySystem(ctx, r.repl)
	if err != nil {
		return fmt.Errorf("postgres: identify system: %w", err)
	}
	slot, err := readSlot(ctx, r.sql, s.slot)
	if err != nil {
		return err
	}
	if err := checkResumable(s.slot, slot, stored, sys, r.db); err != nil {
		return relay.Fatal(err)
	}
	if stored != nil {
		r.st = *stored
		s.raiseAcked(uint64(stored.lsn))
	} else {
		r.st = state{SystemID: sys.SystemID, Timeline: sys.Timeline, Slot: s.slot}
		s.raiseAcked(uint64(slot.confirmed))
	}

	r.types = catalogTypes(ctx, r.sql)
	tables, err := s.listTables(ctx, r.sql, r.types)
	if err != nil {
		return err
	}
	for _, t := range tables {
		r.tables[t.ident] = t
	}
	r.sn, err = snapshot.New(snapshot.Config{
		ChunkSize:  s.chunkSize,
		MarkPrefix: s.slot,
		Compare:    r.compareFor,
		Log:        s.log,
		Metrics:    s.m,
	}, r.st.Snapshot)
	if err != nil {
		return relay.Fatal(fmt.Errorf("postgres: restore snapshot progress: %w", err))
	}
	for _, p := range r.st.Snapshot.Queue {
		if _, ok := r.tables[p.Table]; !ok {
			s.log.Warn("postgres: table no longer captured, its snapshot is dropped", "table", p.Table)
			r.sn.Forget(p.Table)
		}
	}
	for _, t := range tables {
		if err := t.checkKafkaKey(); err != nil {
			return relay.Fatal(fmt.Errorf("postgres: %w", err))
		}
	}
	if s.snapshot {
		for _, t := range tables {
			if len(t.chunk) == 0 && !t.ctidMode() && !r.sn.Known(t.ident) {
				return relay.Fatal(t.snapshotRefusal())
			}
			if t.chunkIndex != "" && !r.sn.Known(t.ident) {
				s.log.Info("postgres: table without a primary key is snapshotted by a unique index", "table", t.ident, "index", t.chunkIndex, "columns", strings.Join(t.chunk, ","))
			}
			if !r.sn.Known(t.ident) {
				if err := r.sn.Enqueue(t.ident); err != nil {
					return relay.Fatal(fmt.Errorf("postgres: %w", err))
				}
			}
		}
	}
	r.st.Snapshot = r.sn.State()

	pub := strings.ReplaceAll(pgx.Identifier{s.publication}.Sanitize(), "'", "''")
	err = pglogrepl.StartReplication(ctx, r.repl, s.slot, r.st.lsn, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names '" + pub + "'", "messages 'true'"},
	})
	if err != nil {
		return classify(fmt.Errorf("postgres: start replication on slot %s at %s: %w", s.slot, r.st.lsn, err))
	}
	from, origin := startPosition(stored, slot, s.slotCreated.Load())
	s.log.Info("postgres: streaming", "slot", s.slot, "from", from.String(), "origin", origin,
		"tables", len(tables), "snapshot_queue", r.sn.Waiting())
	now := time.Now()
	r.lastCkpt = now
	r.idleEvery = s.heartbeat
	if r.idleEvery <= 0 {
		r.idleEvery = statusInterval
	}
	if s.heartbeat > 0 {
		r.nextHeartbeat = now.Add(s.heartbeat)
	}
	r.nextStatus = now
	r.tick = time.NewTicker(time.Second)
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
//
// The receive has no context: pgconn would watch a cancellable one with a
// goroutine hand-off and a few allocations per message. The deadline is set
// on the connection instead, and a cancel of ctx moves it to now.
func (r *runner) loop(ctx context.Context) error {
	conn := r.repl.Conn()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	var deadline time.Time
	for {
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		if err := r.housekeeping(ctx, now); err != nil {
			return err
		}
		if !r.inTxn && r.sn.Active() && !r.sn.InFlight() {
			if t := r.tables[r.sn.Next()]; t != nil && t.ctidMode() {
				if r.ctid == nil {
					if err := r.startCtid(ctx, t); err != nil {
						return err
					}
				}
			} else if err := r.sn.ReadNext(ctx, dialect{r: r, alloc: r.chunkAlloc()}); err != nil {
				return r.sqlError(ctx, err)
			}
		}
		if r.pre != nil && !r.sn.Active() {
			r.pre.Close(ctx)
			r.pre = nil
		}
		if r.chunkMem.Holding() && !r.sn.Active() && !r.sn.InFlight() {
			r.chunkMem.Drop() // the snapshots are done
		}
		next := r.nextStatus
		if !r.nextHeartbeat.IsZero() && r.nextHeartbeat.Before(next) {
			next = r.nextHeartbeat
		}
		// Wake up often enough to pass acks on promptly.
		if ackPoll := now.Add(ackPollInterval); ackPoll.Before(next) {
			next = ackPoll
		}
		// One deadline serves many receives; it moves only once it has
		// passed or when an earlier one is wanted.
		if deadline.IsZero() || !now.Before(deadline) || next.Before(deadline) {
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
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("postgres: keepalive: %w", err)
				}
				if pkm.ReplyRequested {
					if err := r.sendStatus(); err != nil {
						return err
					}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("postgres: xlog data: %w", err)
				}
				if err := r.handle(ctx, xld.WALStart, xld.WALData); err != nil {
					return err
				}
			}
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
	}
}

// housekeeping sends status updates, polls the lag and writes heartbeats
// when they are due.
func (r *runner) housekeeping(ctx context.Context, now time.Time) error {
	if r.s.acked.Load() > r.sentAck || !now.Before(r.nextStatus) {
		if err := r.sendStatus(); err != nil {
			return err
		}
	}
	if !now.Before(r.nextStatus) {
		r.nextStatus = now.Add(statusInterval)
		var cur pglogrepl.LSN
		if err := r.sql.QueryRow(ctx, "SELECT pg_current_wal_lsn()").Scan(&cur); err != nil {
			return r.sqlError(ctx, err)
		}
		if a := r.s.acked.Load(); uint64(cur) >= a {
			r.s.m.SourceLagBytes.Set(float64(uint64(cur) - a))
		}
	}
	if !r.nextHeartbeat.IsZero() && !now.Before(r.nextHeartbeat) {
		r.nextHeartbeat = now.Add(r.s.heartbeat)
		if _, err := r.sql.Exec(ctx, "SELECT pg_logical_emit_message(true, $1, $2)", prefixHeartbeat, r.s.slot); err != nil {
			return r.sqlError(ctx, err)
		}
	}
	return nil
}

// sqlError turns a failure of the SQL connection into Run's result.
func (r *runner) sqlError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	r.s.m.Reconnects.WithLabelValues("sql_lost").Inc()
	return classify(fmt.Errorf("postgres: %w", err))
}

// sendStatus reports the last acked LSN as written, flushed and applied.
// All three are set explicitly: pglogrepl would copy Write into a zero
// Flush, and nothing beyond what Kafka committed may be confirmed.
func (r *runner) sendStatus() error {
	a := pglogrepl.LSN(r.s.acked.Load())
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), r.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: a,
		WALFlushPosition: a,
		WALApplyPosition: a,
		ClientTime:       time.Now(),
	})
	if err != nil {
		r.s.m.Reconnects.WithLabelValues("stream_lost").Inc()
		return fmt.Errorf("postgres: send standby status: %w", err)
	}
	r.sentAck = uint64(a)
	return nil
}

// send hands m to the relay, answering the server while it waits.
func (r *runner) send(ctx context.Context, m change.Message) error {
	select {
	case r.out <- m:
		return nil
	default:
	}
	for {
		select {
		case r.out <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-r.tick.C:
			if r.s.acked.Load() > r.sentAck || !time.Now().Before(r.nextStatus) {
				if err := r.sendStatus(); err != nil {
					return err
				}
				if !time.Now().Before(r.nextStatus) {
					r.nextStatus = time.Now().Add(statusInterval)
				}
			}
		}
	}
}

// handle decodes one pgoutput message.
func (r *runner) handle(ctx context.Context, walStart pglogrepl.LSN, data []byte) error {
	m := &r.msg
	if err := m.parse(data); err != nil {
		return relay.Fatal(fmt.Errorf("postgres: decode message at %s: %w", walStart, err))
	}
	switch m.kind {
	case 'B':
		r.inTxn = true
		r.skip = r.st.lsn != 0 && m.lsn < uint64(r.st.lsn)
		r.xid = m.xid
		r.commitTime = pgTime(m.time)
		r.txnLabel = []byte(pglogrepl.LSN(m.lsn).String())
		r.events = 0
		r.notable = false
		if r.ctid != nil && !r.skip && m.lsn >= r.ctid.point {
			return r.sendCtid(ctx, m.lsn)
		}
	case 'C':
		r.inTxn = false
		// A checkpoint acked at or after this commit came after the rows
		// of the chunks sent so far.
		r.chunkMem.Passed(m.endLSN)
		if r.skip {
			return nil
		}
		return r.commit(ctx, pglogrepl.LSN(m.endLSN), pgTime(m.time))
	case 'R':
		return r.relation(ctx, &m.rel)
	case 'I', 'U', 'D':
		if r.skip {
			return nil
		}
		return r.change(ctx, walStart)
	case 'T':
		if r.skip {
			return nil
		}
		for _, id := range m.relIDs {
			if rel := r.rels[id]; rel != nil && rel.captured {
				if err := r.truncated(ctx, rel, walStart); err != nil {
					return err
				}
			}
		}
	case 'M':
		if !m.transactional || r.skip {
			return nil
		}
		return r.message(ctx)
	}
	return nil
}

// truncated handles a TRUNCATE of a captured table as format.truncate
// says: skip it (a warning and a count), send a truncate event, or stop
// before it. A chunk of the table whose window is open drops its rows in
// every case: they no longer exist.
func (r *runner) truncated(ctx context.Context, rel *relation, walStart pglogrepl.LSN) error {
	r.sn.Truncated(rel.ident)
	switch r.s.truncate {
	case config.TruncateFail:
		return relay.Fatal(fmt.Errorf("postgres: TRUNCATE of %s at %s, and format.truncate is fail; the position stays before it. Set format.truncate to skip or event to pass it, or re-sync the table afterwards", rel.ident, walStart))
	case config.TruncateEvent:
		r.events++
		ev := change.Event{
			Table: change.TableID{Namespace: rel.schema, Name: rel.name},
			Op:    change.OpTruncate,
			Source: change.Source{Connector: "postgresql", Name: r.s.id, DB: r.db, Schema: rel.schema, Table: rel.name,
				TsMs: r.commitTime.UnixMilli(), LSN: uint64(walStart), TxID: r.xid},
			Position: r.txnLabel,
		}
		return r.send(ctx, change.Message{Event: r.alloc.Event(ev)})
	}
	r.s.m.TruncatesSkipped.WithLabelValues(r.s.m.Table(change.TableID{Namespace: rel.schema, Name: rel.name}.String())).Inc()
	r.s.log.Warn("postgres: TRUNCATE not sent to Kafka (format.truncate: skip); consumers keep the table's rows", "table", rel.ident, "lsn", walStart.String())
	return nil
}

// commit ends a source transaction, sending its checkpoint when one is due.
func (r *runner) commit(ctx context.Context, end pglogrepl.LSN, at time.Time) error {
	if r.sn.InWindow() {
		return nil // the chunk's high watermark checkpoints everything
	}
	if r.events == 0 && !r.notable && time.Since(r.lastCkpt) < r.idleEvery {
		return nil
	}
	r.st.lsn = end
	var parts []change.Part
	r.st.Snapshot, parts = r.sn.Checkpoint()
	cp := &change.Checkpoint{
		Parts:      parts,
		State:      r.st.encode(),
		CommitTime: at,
		Label:      end.String(),
		LSN:        uint64(end),
	}
	if r.events == 0 && !r.notable {
		cp.CommitTime = time.Time{}
	}
	r.lastCkpt = time.Now()
	return r.send(ctx, change.Message{Checkpoint: cp})
}

// message handles our own pg_logical_emit_message records.
func (r *runner) message(ctx context.Context) error {
	m := &r.msg
	switch m.prefix {
	case prefixHeartbeat:
		if string(m.content) == r.s.slot {
			r.notable = true
		}
	case prefixWatermark:
		mark, ok := snapshot.ParseMark(string(m.content))
		if !ok {
			return nil
		}
		rows, closed, err := r.sn.OnMark(mark)
		if err != nil {
			return r.sqlError(ctx, err)
		}
		if !closed {
			return nil
		}
		r.notable = true
		r.prefetch(ctx)
		for _, ev := range rows {
			ev.Source.LSN = m.lsn
			ev.Source.TxID = r.xid
		}
		if err := change.SendRuns(rows, func(m change.Message) error { return r.send(ctx, m) }); err != nil {
			return err
		}
		r.chunkMem.Sent(r.sn.ClosedMemory())
	case prefixSignal:
		var sig signal
		if err := json.Unmarshal(m.content, &sig); err != nil || sig.Slot != r.s.slot {
			return nil
		}
		t, ok := r.tables[sig.Table]
		if !ok {
			r.s.log.Warn("postgres: snapshot request ignored: not a captured table", "table", sig.Table)
			return nil
		}
		if len(t.chunk) == 0 && !t.ctidMode() {
			r.s.log.Warn("postgres: snapshot request ignored", "table", sig.Table, "err", t.snapshotRefusal())
			return nil
		}
		if err := r.sn.Enqueue(sig.Table); err != nil {
			r.s.log.Warn("postgres: snapshot request ignored", "table", sig.Table, "err", err)
			return nil
		}
		r.s.log.Info("postgres: snapshot requested", "table", sig.Table)
		r.notable = true
	}
	return nil
}

// signal is the content of a cdcrelay.signal message.
type signal struct {
	Slot  string `json:"slot"`
	Table string `json:"snapshot_table"`
}

// relation records a Relation message: a table's columns as of now in the
// stream.
func (r *runner) relation(ctx context.Context, m *relationMsg) error {
	rel := &relation{
		schema:   m.namespace,
		name:     m.name,
		ident:    pgx.Identifier{m.namespace, m.name}.Sanitize(),
		identity: m.identity,
	}
	rel.captured = r.s.captured(m.namespace, m.name)
	r.rels[m.id] = rel
	if !rel.captured {
		return nil
	}
	rel.names = make([]string, len(m.cols))
	rel.encs = make([]encoder, len(m.cols))
	for i, c := range m.cols {
		rel.names[i] = c.name
		ct, err := resolveType(c.oid, c.typmod, r.types)
		if err != nil {
			return r.sqlError(ctx, err)
		}
		rel.encs[i] = ct.enc
	}
	rel.keys = change.ObjectKeys(rel.names)
	t := r.tables[rel.ident]
	if t == nil || !sameColumns(t, m) {
		// A table created or altered since Run started: read it again.
		nt := &tableMeta{oid: m.id, schema: m.namespace, name: m.name, ident: rel.ident, identity: m.identity,
			keyless: r.s.isKeyless(m.namespace, m.name), kafka: r.s.keyColumns(m.namespace, m.name)}
		if err := loadColumns(ctx, r.sql, nt, r.types); err != nil {
			return r.sqlError(ctx, err)
		}
		if err := nt.checkKafkaKey(); err != nil {
			return relay.Fatal(fmt.Errorf("postgres: %w", err))
		}
		if t == nil && r.s.snapshot && len(nt.chunk) == 0 && !nt.ctidMode() && !r.sn.Known(nt.ident) {
			r.s.log.Warn("postgres: new captured table is streamed but not snapshotted", "table", nt.ident, "err", nt.snapshotRefusal())
		}
		if t == nil && r.s.snapshot && (len(nt.chunk) > 0 || nt.ctidMode()) && !r.sn.Known(nt.ident) {
			r.tables[rel.ident] = nt
			if err := r.sn.Enqueue(nt.ident); err != nil {
				return relay.Fatal(fmt.Errorf("postgres: %w", err))
			}
			r.s.log.Info("postgres: new captured table, snapshot queued", "table", nt.ident)
		}
		r.tables[rel.ident] = nt
		t = nt
	}
	for _, k := range t.key {
		for i, n := range rel.names {
			if n == k {
				rel.key = append(rel.key, i)
				rel.keyNames = append(rel.keyNames, n)
			}
		}
	}
	if len(rel.key) == 0 {
		rel.keyless = true
		if !t.keyless {
			r.s.log.Warn("postgres: captured table has no primary key; events are keyed by the whole row", "table", rel.ident)
		}
		for i, n := range rel.names {
			rel.key = append(rel.key, i)
			rel.keyNames = append(rel.keyNames, n)
		}
	}
	rel.kafka, rel.kafkaNames = rel.key, rel.keyNames
	if t.kafka != nil {
		rel.kafka, rel.kafkaNames = nil, nil
		for _, k := range t.kafka {
			i := slices.Index(rel.names, k)
			if i < 0 {
				return relay.Fatal(fmt.Errorf("postgres: source.key_columns: table %s has no column %q", rel.ident, k))
			}
			rel.kafka = append(rel.kafka, i)
			rel.kafkaNames = append(rel.kafkaNames, k)
		}
	}
	for _, k := range t.chunk {
		if i := slices.Index(rel.names, k); i >= 0 {
			rel.chunk = append(rel.chunk, i)
		}
	}
	if len(rel.chunk) != len(t.chunk) {
		rel.chunk = nil
	}
	return nil
}

func sameColumns(t *tableMeta, m *relationMsg) bool {
	if len(t.cols) != len(m.cols) {
		return false
	}
	for i, c := range m.cols {
		if t.cols[i].name != c.name || t.cols[i].oid != c.oid || t.cols[i].typmod != c.typmod {
			return false
		}
	}
	return true
}

// change turns an Insert, Update or Delete into events.
func (r *runner) change(ctx context.Context, walStart pglogrepl.LSN) error {
	m := &r.msg
	rel := r.rels[m.relID]
	if rel == nil {
		return relay.Fatal(fmt.Errorf("postgres: change for unknown relation %d at %s", m.relID, walStart))
	}
	if !rel.captured {
		return nil
	}
	src := change.Source{
		Connector: "postgresql",
		Name:      r.s.id,
		DB:        r.db,
		Schema:    rel.schema,
		Table:     rel.name,
		TsMs:      r.commitTime.UnixMilli(),
		LSN:       uint64(walStart),
		TxID:      r.xid,
	}
	id := change.TableID{Namespace: rel.schema, Name: rel.name}
	switch m.kind {
	case 'I':
		after := rel.row(&r.alloc, m.new, nil)
		return r.emit(ctx, rel, change.Event{Table: id, Op: change.OpCreate, After: after, Source: src, Position: r.txnLabel}, after, m.new)
	case 'U':
		var old []tupleCol
		if m.oldKind == 'O' {
			old = m.old
		}
		after := rel.row(&r.alloc, m.new, old)
		var before *change.Row
		switch m.oldKind {
		case 'O':
			before = rel.row(&r.alloc, m.old, nil)
		case 'K':
			before = rel.keyRow(&r.alloc, m.old)
		default:
			before = rel.keyRow(&r.alloc, m.new)
		}
		if (rel.keyless && len(rel.kafka) == len(rel.names)) || m.oldKind == 'K' || (m.oldKind == 'O' && !rel.sameKey(before, after)) {
			// The key changed: a delete of the old key and an insert of the new.
			if err := r.emit(ctx, rel, change.Event{Table: id, Op: change.OpDelete, Before: before, Source: src, Position: r.txnLabel}, before, m.old); err != nil {
				return err
			}
			return r.emit(ctx, rel, change.Event{Table: id, Op: change.OpCreate, After: after, Source: src, Position: r.txnLabel}, after, m.new)
		}
		return r.emit(ctx, rel, change.Event{Table: id, Op: change.OpUpdate, Before: before, After: after, Source: src, Position: r.txnLabel}, after, m.new)
	case 'D':
		var before *change.Row
		if m.oldKind == 'O' {
			before = rel.row(&r.alloc, m.old, nil)
		} else {
			before = rel.keyRow(&r.alloc, m.old)
		}
		return r.emit(ctx, rel, change.Event{Table: id, Op: change.OpDelete, Before: before, Source: src, Position: r.txnLabel}, before, m.old)
	}
	return nil
}

// emit sends ev unless the snapshot in progress will read its effect; keyed
// is the image whose key columns give the event key.
func (r *runner) emit(ctx context.Context, rel *relation, ev change.Event, keyed *change.Row, tup []tupleCol) error {
	if r.sn.Active() && rel.chunk != nil {
		if !r.sn.Admit(rel.ident, keyText(rel, tup)) {
			return nil
		}
	} else if r.sn.Active() && rel.chunk == nil && r.sn.Queued(rel.ident) {
		return nil // read whole by ctid ranges later, with this change in it
	}
	ev.Key = r.alloc.Key(rel.kafkaNames, rel.kafka, keyed.Values)
	r.events++
	return r.send(ctx, change.Message{Event: r.alloc.Event(ev)})
}

// keyText returns the text of rel's snapshot key columns in tup, as the
// snapshot compares them.
func keyText(rel *relation, tup []tupleCol) snapshot.Key {
	k := make(snapshot.Key, len(rel.chunk))
	for i, c := range rel.chunk {
		if c < len(tup) {
			k[i] = string(tup[c].data)
		}
	}
	return k
}
