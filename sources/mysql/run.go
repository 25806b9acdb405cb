package mysql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// Where the stream starts, as the streaming log line names it: the stored
// position, or with none the server's position when Run started (its
// GTID position, or binlog file and offset).
const (
	originStored  = "stored offsets"
	originCurrent = "server's current binlog position"
)

// Run streams the binlog from resume (nil: from the server's current
// position, after queueing the initial snapshot) into out. It implements
// sources.Stream.
//
// Errors: a position that cannot be resumed, a wrong setting or a refused
// login is a *sources.FatalError. A lost connection is returned as a plain
// error (after counting it in Reconnects): the relay calls Run again with
// the state of the last committed checkpoint, and Run reconnects with
// jittered exponential backoff. Nothing is re-snapshotted by a reconnect.
func (s *Source) Run(ctx context.Context, resume *change.Resume, out chan<- change.Message) error {
	var stored []byte
	var parts map[string][]byte
	if resume != nil {
		stored, parts = resume.State, resume.Parts
	}
	st, err := decodeState(stored)
	if err != nil {
		return sources.Fatal(err)
	}
	q, err := s.connectRetry(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	fresh := st == nil
	si, st, err := s.checkServer(q, st)
	if err != nil {
		s.release(q)
		return err
	}
	r, err := newReader(s, out, st, si.flavor, q)
	if err != nil {
		s.release(q)
		return sources.Fatal(err)
	}
	defer r.close()
	if err := r.initSnapshot(ctx, q, fresh, parts); err != nil {
		return err
	}
	origin := originStored
	if fresh {
		origin = originCurrent
	}
	s.log.Info("mysql: streaming", "server", si.version, "flavor", si.flavor, "from", st.label(),
		"origin", origin, "server_id", s.serverID)

	if fresh {
		if err := r.checkpoint(ctx, time.Time{}); err != nil {
			return nil
		}
	}
	for {
		err := r.stream(ctx, si.flavor)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errStreamLost) || !r.canResumeInPlace() {
			return err
		}
		r.beforeReconnect()
		q, err := s.connectRetry(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := r.resumeOn(q); err != nil {
			return err
		}
	}
}

// checkServer reads the server's settings on q and returns them with the
// state to stream from: st once found resumable, or with none the server's
// current position. It sets the session's time zone to UTC.
func (s *Source) checkServer(q *client.Conn, st *state) (*serverInfo, *state, error) {
	si, err := readServerInfo(q)
	if err != nil {
		return nil, nil, s.classify(err)
	}
	if err := si.requireRowFormat(); err != nil {
		return nil, nil, sources.Fatal(err)
	}
	if st == nil {
		st = &state{V: stateVersion, Flavor: si.flavor, ServerID: si.serverID, DomainID: si.domainID,
			ServerUUID: si.serverUUID, File: si.file, Pos: si.pos}
		if si.gtidOn {
			st.GTID = si.gtidPos
		}
	} else if err := verifyResume(q, si, st); err != nil {
		if errors.Is(err, ErrPositionLost) {
			return nil, nil, sources.Fatal(err)
		}
		return nil, nil, s.classify(err)
	}
	if _, err := q.Execute("SET time_zone = '+00:00'"); err != nil {
		return nil, nil, s.classify(fmt.Errorf("mysql: set time_zone: %w", err))
	}
	return si, st, nil
}

// close lets go of the reader's connections, once a read ahead has ended.
func (r *reader) close() {
	if r.snap != nil {
		r.snap.Abandon() // waits for a read ahead, which may use r.pre
	}
	r.s.release(r.pre)
	r.s.release(r.q)
}

// stream runs one binlog dump from r.st until it fails or ctx is done.
func (r *reader) stream(ctx context.Context, flavor string) error {
	syncer := replication.NewBinlogSyncer(r.s.syncerConfig(flavor))
	defer syncer.Close()
	streamer, err := r.s.startDump(ctx, syncer, flavor, r.st)
	if err != nil {
		return err
	}
	return r.loop(ctx, streamer)
}

// errStreamLost marks a binlog stream that broke (server restart, network).
var errStreamLost = errors.New("binlog stream lost")

// startDump registers as a replica and starts the binlog dump at st,
// retrying with backoff while the server refuses the connection.
func (s *Source) startDump(ctx context.Context, syncer *replication.BinlogSyncer, flavor string, st *state) (*replication.BinlogStreamer, error) {
	var gs gomysql.GTIDSet
	if st.GTID != "" {
		var err error
		if gs, err = gomysql.ParseGTIDSet(flavor, st.GTID); err != nil {
			return nil, sources.Fatal(fmt.Errorf("mysql: stored GTID set %q: %v", st.GTID, err))
		}
	}
	for {
		var streamer *replication.BinlogStreamer
		var err error
		if gs != nil {
			streamer, err = syncer.StartSyncGTID(gs)
		} else {
			streamer, err = syncer.StartSync(gomysql.Position{Name: st.File, Pos: st.Pos})
		}
		if err == nil {
			return streamer, nil
		}
		err = fmt.Errorf("mysql: start binlog dump from %s: %w", st.label(), err)
		if err := s.backoffOrFail(ctx, err); err != nil {
			return nil, err
		}
	}
}

// backoffOrFail waits before the next attempt when err is worth retrying
// (counting it as a reconnect), or returns the classified error.
func (s *Source) backoffOrFail(ctx context.Context, err error) error {
	cause := retryableCause(err)
	if cause == "" {
		return s.classify(err)
	}
	s.mu.Lock()
	s.attempts++
	n := s.attempts
	s.mu.Unlock()
	wait := backoff(n)
	s.m.Reconnects.WithLabelValues("mysql_" + cause).Inc()
	s.log.Warn("mysql: cannot connect, retrying", "cause", cause, "attempt", n, "in", wait.Round(time.Millisecond), "err", firstLine(err))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

func (s *Source) syncerConfig(flavor string) replication.BinlogSyncerConfig {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	cfg := replication.BinlogSyncerConfig{
		ServerID:                s.serverID,
		Flavor:                  flavor,
		Host:                    s.host,
		Port:                    s.port,
		User:                    s.user,
		Password:                s.password,
		Localhost:               "cdcrelay-" + s.cfg.ID,
		Charset:                 "utf8mb4",
		TimestampStringLocation: time.UTC,
		ParseTime:               true,
		HeartbeatPeriod:         heartbeatPeriod,
		ReadTimeout:             10 * heartbeatPeriod,
		DisableRetrySync:        true,
		EventCacheCount:         64,
		Dialer:                  lazyDialer(d),
		Logger:                  slog.New(quietHandler{s.log.Handler()}),
		DiscardGTIDSet:          true,
	}
	if s.tls != nil {
		cfg.TLSConfig = s.tls.Clone()
	}
	if flavor == flavorMariaDB {
		cfg.DumpCommandFlag = replication.BINLOG_SEND_ANNOTATE_ROWS_EVENT
	}
	return cfg
}

// heartbeatPeriod is how often the server sends a heartbeat on an idle
// binlog stream; idle progress (position, snapshot chunks) moves on it.
const heartbeatPeriod = time.Second

// quietHandler passes on only go-mysql's warnings and errors.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

// classify marks errors that a restart cannot fix as fatal.
func (s *Source) classify(err error) error {
	if err == nil {
		return nil
	}
	switch errorCode(err) {
	case 1236: // ER_MASTER_FATAL_ERROR_READING_BINLOG: purged, or position unknown
		return sources.Fatal(fmt.Errorf("mysql: the server cannot send the binlog from the stored position: %v; %s", err, ResyncHint))
	case 1045, 1044, 1142, 1227: // access denied, missing privilege
		return sources.Fatal(fmt.Errorf("%v (check the grants with: cdcrelay check --config <file>)", err))
	}
	if strings.Contains(err.Error(), "TLS to ") {
		return sources.Fatal(err)
	}
	return err
}

// retryableCause returns a metric label when err is worth reconnecting
// for, or "" when it is not.
func retryableCause(err error) string {
	switch errorCode(err) {
	case 1040:
		return "too_many_connections"
	case 1203, 1226: // the global or the account's max_user_connections
		return "max_user_connections"
	case 1053, 1077, 2013, 2006:
		return "server_restart"
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &oe), errors.As(err, &ne):
		return "network"
	case containsAny(err.Error(), "connection refused", "connection reset", "EOF", "broken pipe", "i/o timeout", "bad connection"):
		return "network"
	}
	return ""
}

// streamLost wraps a broken binlog stream: counted as a reconnect and
// returned as a plain error so the relay starts Run again from the last
// committed checkpoint.
func (s *Source) streamLost(err error) error {
	if c := s.classify(err); c != err {
		return c
	}
	cause := retryableCause(err)
	if cause == "" {
		cause = "stream_error"
	}
	s.m.Reconnects.WithLabelValues("mysql_" + cause).Inc()
	s.log.Warn("mysql: binlog stream lost", "cause", cause, "err", firstLine(err))
	return fmt.Errorf("mysql: %w (%s): %w", errStreamLost, cause, err)
}

// reader is the state of one Run: the position, the transaction being
// read and the table codecs.
type reader struct {
	s      *Source
	out    chan<- change.Message
	st     *state
	flavor string
	mpos   mariaPos
	mset   *gomysql.MysqlGTIDSet

	byID   map[uint64]*tableCodec // table id -> codec of a captured table
	byBody map[string]*tableCodec // TABLE_MAP body -> codec
	alloc  change.Alloc           // for the rows and events of the stream
	// schemas holds the captured tables' shapes for the fingerprint.
	schemas change.Schemas

	snap    *snapshot.Snapshotter
	dialect *dialect
	// marks and at serve binlog mode (markBinlog): the watermarks waiting
	// for the stream to reach their binlog point, and the point just after
	// the last event handled (zero until the stream names its file).
	// txnAt is where the last transaction the stream handled starts.
	marks *markList
	at    binlogPos
	txnAt binlogPos
	// chunkMem is the memory snapshot chunks are read into, reused once
	// the relay has acked a checkpoint after their rows.
	chunkMem snapshot.Memories
	// pre reads snapshot chunks ahead (see prefetch); opened at the first
	// read ahead, closed when the snapshot queue is empty.
	pre       *client.Conn
	preFailed bool

	// the transaction being read
	inTxn     bool
	gtid      string
	mgtid     gomysql.MariadbGTID
	thread    uint32
	rowsQuery string
	began     bool // a BEGIN opened the transaction; only XID/COMMIT ends it
	events    int  // events sent in this transaction (rows and chunk rows)
	txnRows   int  // row events sent in this transaction

	// after an in-place reconnect: the transaction that was cut and how
	// many of its row events were already sent
	replayGTID string
	skip       int
	txnTime    uint32

	dirty    bool // the position moved since the last checkpoint
	force    bool // a snapshot chunk closed in this transaction
	lastSent time.Time
	lastLag  time.Time
	q        *client.Conn // the query connection of this Run
	commit   time.Time    // commit time of the last transaction with events
}

func (r *reader) send(ctx context.Context, m change.Message) error {
	select {
	case r.out <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkpoint sends the current position.
func (r *reader) checkpoint(ctx context.Context, commit time.Time) error {
	var parts []change.Part
	if r.snap != nil {
		st, p := r.snap.Checkpoint()
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		r.st.Snapshot, parts = b, p
	}
	r.s.cpSeq++
	r.st.Schemas = r.schemas.JSON()
	cp := &change.Checkpoint{
		Parts:             parts,
		State:             r.st.encode(),
		SchemaFingerprint: r.schemas.Fingerprint(),
		CommitTime:        commit,
		Label:             r.st.label(),
		Seq:               r.s.cpSeq,
	}
	r.chunkMem.Passed(cp.Seq)
	r.dirty, r.force = false, false
	r.lastSent = time.Now()
	return r.send(ctx, change.Message{Checkpoint: cp})
}

func (r *reader) loop(ctx context.Context, streamer *replication.BinlogStreamer) error {
	for {
		if err := r.idleWork(ctx, false); err != nil {
			return err
		}
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return r.s.streamLost(err)
		}
		r.s.mu.Lock()
		r.s.attempts = 0
		r.s.mu.Unlock()
		if err := r.beforeEvent(ctx, ev); err != nil {
			return err
		}
		if err := r.handle(ctx, ev); err != nil {
			return err
		}
		r.afterEvent(ev)
	}
}

// idleWork runs between transactions: it reads the next snapshot chunk
// when none is in flight, and sends a pending checkpoint when the stream is
// idle or the last one is old.
func (r *reader) idleWork(ctx context.Context, heartbeat bool) error {
	if r.inTxn {
		return nil
	}
	for r.snap != nil && r.snap.Active() && !r.snap.InFlight() {
		r.dialect.alloc = r.chunkMem.Get(r.s.ackedSeq.Load())
		err := r.snap.ReadNext(ctx, r.dialect)
		r.dialect.alloc = nil
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return r.s.classify(err)
		}
		// Table mode: the chunk's marks come back through the stream.
		// Binlog mode: a chunk placed where the stream stands closes at
		// once, and the next is read without waiting for an event; one
		// placed further on waits for the stream.
		if r.marks == nil {
			break
		}
		if err := r.passMarks(ctx, r.at); err != nil {
			return err
		}
	}
	if err := r.passMarks(ctx, r.at); err != nil {
		return err
	}
	if r.pre != nil && !r.snap.Active() {
		r.s.release(r.pre)
		r.pre = nil
	}
	if r.snap != nil && r.chunkMem.Holding() && !r.snap.Active() && !r.snap.InFlight() {
		r.chunkMem.Drop() // the snapshots are done
	}
	if time.Since(r.lastLag) > lagEvery {
		r.lastLag = time.Now()
		r.s.updateLag(r.q)
	}
	if r.dirty && (r.snap == nil || !r.snap.InWindow()) && (heartbeat || time.Since(r.lastSent) >= r.s.idleEvery()) {
		return r.checkpoint(ctx, r.commit)
	}
	return nil
}

// idleEvery is the longest a position moved only by transactions of tables
// that are not captured (or by a binlog rotation) waits for its checkpoint
// while the binlog stays busy: source.heartbeat_interval, or 10s when
// heartbeats are off. Once the binlog is idle the server's heartbeat
// (heartbeatPeriod) sends it at once. So the stored position follows the
// server's gtid_binlog_pos even when the captured tables never change, and
// a restart after a long quiet stretch does not ask for a purged binlog.
func (s *Source) idleEvery() time.Duration {
	if d := s.cfg.Source.HeartbeatInterval; d > 0 {
		return d
	}
	return 10 * time.Second
}

func (r *reader) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	h := ev.Header
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		r.st.File = string(e.NextLogName)
		r.st.Pos = uint32(e.Position)
		if h.Timestamp != 0 && h.LogPos != 0 && !r.inTxn {
			// A real rotation, not the one a dump starts with: the new
			// file's start is a resumable position, and storing it keeps a
			// file+pos position off a binlog that expires.
			r.dirty = true
		}
	case *replication.MariadbGTIDEvent:
		r.begin(h)
		r.mgtid = e.GTID
		r.gtid = gtidString(e.GTID)
		// MariaDB logs no BEGIN: a GTID event without the standalone flag
		// opens a transaction that only XID or COMMIT ends; a standalone
		// one is followed by one statement (DDL).
		r.began = !e.IsStandalone()
		return r.checkReplay()
	case *replication.GTIDEvent:
		r.begin(h)
		r.gtid = fmt.Sprintf("%s:%d", uuidString(e.SID), e.GNO)
		return r.checkReplay()
	case *replication.QueryEvent:
		return r.query(ctx, h, e)
	case *replication.MariadbAnnotateRowsEvent:
		r.rowsQuery = string(e.Query)
	case *replication.RowsQueryEvent:
		r.rowsQuery = string(e.Query)
	case *replication.TableMapEvent:
		return r.tableMap(ev.RawData, e)
	case *replication.RowsEvent:
		return r.rows(ctx, h, e)
	case *replication.XIDEvent:
		return r.commitTxn(ctx, h)
	case *replication.HeartbeatEvent:
		return r.idleWork(ctx, true)
	case *replication.TransactionPayloadEvent:
		// MySQL binlog_transaction_compression: the transaction's events,
		// decompressed by go-mysql.
		for _, inner := range e.Events {
			if err := r.handle(ctx, inner); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkReplay makes sure that after an in-place reconnect the first
// transaction is the one that was cut; if the server no longer has it (a
// crash lost it), Run ends so that the relay drops what it sent of it.
func (r *reader) checkReplay() error {
	if r.replayGTID == "" {
		return nil
	}
	want := r.replayGTID
	r.replayGTID = ""
	if r.gtid != want {
		return fmt.Errorf("mysql: after reconnecting, the server sent %s instead of the interrupted transaction %s", r.gtid, want)
	}
	return nil
}

func (r *reader) begin(h *replication.EventHeader) {
	r.inTxn = true
	r.events = 0
	r.txnRows = 0
	r.began = false
	r.thread = 0
	r.rowsQuery = ""
	r.txnTime = h.Timestamp
}
