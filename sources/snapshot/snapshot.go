package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/metrics"
)

// Key is a primary key: the database's text form of each key column, in key
// order. The same value always has the same text.
type Key []string

// Compare orders two keys of one table exactly as the dialect's chunk query
// orders them: negative when a < b, zero when equal, positive when a > b.
type Compare func(a, b Key) int

// MarkKind tells a low watermark from a high one.
type MarkKind byte

const (
	Low  MarkKind = 'l'
	High MarkKind = 'h'
)

// Mark is a watermark. Its text form, "low:<id>" or "high:<id>", is what a
// dialect writes into the change stream.
type Mark struct {
	Kind MarkKind
	ID   string
}

func (m Mark) String() string {
	if m.Kind == Low {
		return "low:" + m.ID
	}
	return "high:" + m.ID
}

// ParseMark reads the text form of a Mark.
func ParseMark(s string) (Mark, bool) {
	switch {
	case strings.HasPrefix(s, "low:"):
		return Mark{Kind: Low, ID: s[4:]}, true
	case strings.HasPrefix(s, "high:"):
		return Mark{Kind: High, ID: s[5:]}, true
	}
	return Mark{}, false
}

// Row is one row read by a chunk: its key and its op=r event, complete but
// for Source.Snapshot, which the Snapshotter sets.
type Row struct {
	Key   Key
	Event *change.Event
}

// Dialect is what a database source supplies. Its methods are called from
// the goroutine that drives the Snapshotter, one at a time.
type Dialect interface {
	// Estimate returns the approximate number of rows in table, for
	// progress reports; it may return 0 when unknown.
	Estimate(ctx context.Context, table string) (int64, error)
	// WriteMark writes m into the change stream so that the source later
	// reads it back in stream order, after every transaction that committed
	// before WriteMark returned. It must commit before returning.
	//
	// A dialect whose chunk query reads a view that matches one point of
	// the stream exactly (every transaction before it visible, none after)
	// may instead place both marks of the chunk at that point, writing
	// nothing; the window is then empty (see the package doc).
	WriteMark(ctx context.Context, m Mark) error
	// ReadChunk reads, in one statement, up to limit rows of table whose key
	// is greater than after (every row when after is nil), in key order.
	ReadChunk(ctx context.Context, table string, after Key, limit int) ([]Row, error)
}

// ChunkMemory is a Dialect whose rows are built in memory that the source
// reuses. Memory returns that memory for the rows of the ReadChunk call
// just made; the Snapshotter hands it back through ClosedMemory with the
// rows of the chunk when it closes, so that the source can reuse it once
// the relay has committed them. The Snapshotter keeps nothing of the rows
// after it closes their chunk: the chunk's last key is copied.
type ChunkMemory interface {
	Memory() any
}

// Config configures a Snapshotter.
type Config struct {
	// ChunkSize is the number of rows per chunk. Required, > 0.
	ChunkSize int
	// MarkPrefix starts every watermark id, so that relays sharing a
	// database ignore each other's marks (PostgreSQL: the slot name).
	MarkPrefix string
	// Compare returns the key order of a table. Required.
	Compare func(table string) (Compare, error)
	// Log receives progress lines. Default: slog.Default().
	Log *slog.Logger
	// Metrics receives the per-table snapshot gauges. Optional.
	Metrics *metrics.Metrics
	// ProgressEvery is the minimum time between two progress lines for a
	// table. Default: 10s.
	ProgressEvery time.Duration
	// InlineMax bounds, in bytes, the lists of queued and finished tables
	// kept inline in State; beyond it the tables go apart (see State).
	// Default: DefaultInlineMax.
	InlineMax int
}

// chunk is the chunk in flight: read, with its watermarks written.
type chunk struct {
	table   string
	id      string
	from    Key // L when it was read
	hi      Key // last key covered; nil for the last chunk
	last    bool
	rows    []Row
	open    bool // the low watermark was seen
	changed map[string]struct{}
	// truncated: the table was truncated inside the window, so every row
	// read is stale or streamed already.
	truncated bool
	mem       any // ChunkMemory's memory of rows
}

// prefetch is the next chunk, read by a goroutine of its own while the
// source sends the rows of the chunk before it.
type prefetch struct {
	id   string
	done chan struct{} // closed when c and err are set
	c    *chunk
	err  error
}

// run is the per-table rate bookkeeping of this process.
type run struct {
	started   time.Time
	startRows int64
	estimate  int64
	lastLog   time.Time
}

// Snapshotter drives the snapshot of a queue of tables. It is not safe for
// concurrent use: the source's stream goroutine owns it.
type Snapshotter struct {
	cfg Config
	tables
	cmp     map[string]Compare
	cur     *chunk
	pre     *prefetch
	nonce   string
	seq     int
	runs    map[string]*run
	lastErr error
	closed  any // the memory of the chunk OnMark closed last
}

func (s *Snapshotter) addCompare(table string) error {
	if _, ok := s.cmp[table]; ok {
		return nil
	}
	c, err := s.cfg.Compare(table)
	if err != nil {
		return fmt.Errorf("snapshot: table %s: %w", table, err)
	}
	s.cmp[table] = c
	return nil
}

// Next returns the table whose chunks are read next, or "" when the queue
// is empty.
func (s *Snapshotter) Next() string {
	if len(s.queue) == 0 {
		return ""
	}
	return s.queue[0].Table
}

// Active reports whether some table still has to be snapshotted.
func (s *Snapshotter) Active() bool { return len(s.queue) > 0 }

// InFlight reports whether a chunk is being read ahead, or was read and its
// high watermark has not been seen yet.
func (s *Snapshotter) InFlight() bool { return s.cur != nil || s.pre != nil }

// InWindow reports whether the stream is between the low and high watermark
// of the chunk in flight. The source must not send a checkpoint then.
func (s *Snapshotter) InWindow() bool { return s.cur != nil && s.cur.open }

// ReadNext reads the next chunk of the first queued table, between a low and
// a high watermark, unless a chunk is already in flight or the queue is
// empty. The rows are held until the high watermark comes back through
// OnMark.
func (s *Snapshotter) ReadNext(ctx context.Context, d Dialect) error {
	if s.pre != nil {
		return s.join()
	}
	if s.cur != nil || len(s.queue) == 0 {
		return nil
	}
	p := s.queue[0]
	r := s.runs[p.Table]
	if r == nil {
		est, err := d.Estimate(ctx, p.Table)
		if err != nil {
			return fmt.Errorf("snapshot: estimate %s: %w", p.Table, err)
		}
		r = &run{started: time.Now(), startRows: p.Rows, estimate: est, lastLog: time.Now()}
		s.runs[p.Table] = r
		if m := s.cfg.Metrics; m != nil {
			m.SnapshotRowsEstimated.WithLabelValues(m.Table(p.Table)).Set(float64(est))
		}
		s.cfg.Log.Info("snapshot: reading table", "table", p.Table, "rows_done", p.Rows, "rows_estimated", est, "resumed", p.LastKey != nil)
	}
	c, err := s.read(ctx, d, s.nextID(), p.Table, p.LastKey)
	if err != nil {
		return err
	}
	s.cur = c
	return nil
}

func (s *Snapshotter) nextID() string {
	s.seq++
	return s.cfg.MarkPrefix + "/" + s.nonce + "." + strconv.Itoa(s.seq)
}

// read writes the low watermark, reads the chunk of table after from, and
// writes the high watermark. It touches no Snapshotter state, so that a
// prefetch goroutine can run it.
func (s *Snapshotter) read(ctx context.Context, d Dialect, id, table string, from Key) (*chunk, error) {
	if err := d.WriteMark(ctx, Mark{Kind: Low, ID: id}); err != nil {
		return nil, fmt.Errorf("snapshot: write low watermark: %w", err)
	}
	rows, err := d.ReadChunk(ctx, table, from, s.cfg.ChunkSize+1)
	if err != nil {
		return nil, fmt.Errorf("snapshot: read chunk of %s: %w", table, err)
	}
	c := &chunk{table: table, id: id, from: from, changed: map[string]struct{}{}}
	if m, ok := d.(ChunkMemory); ok {
		c.mem = m.Memory()
	}
	if len(rows) > s.cfg.ChunkSize {
		rows = rows[:s.cfg.ChunkSize]
		// The next chunk starts from it, and the rows' memory may be reused.
		hi := rows[len(rows)-1].Key
		c.hi = make(Key, len(hi))
		for i, v := range hi {
			c.hi[i] = strings.Clone(v)
		}
	} else {
		c.last = true
	}
	c.rows = rows
	if err := d.WriteMark(ctx, Mark{Kind: High, ID: id}); err != nil {
		return nil, fmt.Errorf("snapshot: write high watermark: %w", err)
	}
	return c, nil
}

// Prefetch starts reading the next chunk of the table being snapshotted on
// a goroutine of its own, with its own watermarks, and returns at once. A
// source calls it right after OnMark closed a chunk and before it sends
// that chunk's rows, so that the read overlaps with the sending. d is used
// only by that goroutine until the read ends, so it must not share a
// connection with anything the source does meanwhile. The read ahead chunk
// becomes the chunk in flight when its low watermark comes back through
// OnMark (which then waits for the read to end, if it has not), or when
// ReadNext is called. Prefetch does nothing when a chunk is in flight or
// the next chunk belongs to a table not started yet.
//
// This keeps the algorithm's rules: the read ahead chunk starts at the last
// key L that OnMark just advanced, its window opens only at its own low
// watermark, which the stream meets after the high watermark of the chunk
// before, and until then the stream changes of keys above L are dropped as
// always. A read that fails is reported by the next ReadNext or OnMark of its
// watermark; a source that starts over calls Abandon, which waits for it.
func (s *Snapshotter) Prefetch(ctx context.Context, d Dialect) {
	if s.cur != nil || s.pre != nil || len(s.queue) == 0 {
		return
	}
	p := s.queue[0]
	if s.runs[p.Table] == nil {
		return // ReadNext estimates and announces a new table
	}
	pre := &prefetch{id: s.nextID(), done: make(chan struct{})}
	from := append(Key(nil), p.LastKey...)
	s.pre = pre
	go func() {
		defer close(pre.done)
		pre.c, pre.err = s.read(ctx, d, pre.id, p.Table, from)
	}()
}

// join waits for the read ahead to end and makes its chunk the one in
// flight.
func (s *Snapshotter) join() error {
	pre := s.pre
	<-pre.done
	s.pre = nil
	if pre.err != nil {
		return pre.err
	}
	s.cur = pre.c
	return nil
}

// Abandon forgets the chunk in flight, for a source that starts over from
// its last checkpoint, or that finds at the chunk's low watermark, before
// any change entered the window, that the chunk's read missed a
// transaction the stream delivered before that watermark; the next ReadNext
// reads the chunk again. It waits for a read ahead to end first, so that
// the source may close the connection it used.
func (s *Snapshotter) Abandon() {
	if s.pre != nil {
		<-s.pre.done
		s.pre = nil
	}
	s.cur = nil
}

// Admit decides whether a stream change of key in table is sent (true) or
// dropped because a later chunk will read its effect (false). See the
// package doc for the rules.
func (s *Snapshotter) Admit(table string, key Key) bool {
	if len(s.queue) == 0 {
		return true
	}
	p := s.queued[table]
	if p == nil {
		return true
	}
	cmp := s.cmp[table]
	if p.LastKey != nil && cmp(key, p.LastKey) <= 0 {
		return true
	}
	if c := s.cur; c != nil && c.open && c.table == table && (c.hi == nil || cmp(key, c.hi) <= 0) {
		c.changed[keyString(key)] = struct{}{}
		return true
	}
	return false
}

// Truncated tells the Snapshotter that the stream holds a TRUNCATE of table
// at this point. When the window of a chunk of that table is open, none of
// the chunk's rows is sent: a row read before the TRUNCATE no longer exists,
// and one read after it was inserted inside the window, so the stream sends
// it (the streamed change wins, as for one key). Outside a window there is
// nothing to do: a chunk read later sees the table as the TRUNCATE left it.
func (s *Snapshotter) Truncated(table string) {
	if c := s.cur; c != nil && c.open && c.table == table {
		c.truncated = true
	}
}

// OnMark handles a watermark read back from the stream. When m is the high
// watermark of the chunk in flight it returns closed=true and the chunk rows
// to send (op=r, Source.Snapshot set), after which the source must send a
// checkpoint carrying State(). Marks of other chunks are ignored. The low
// watermark of a chunk read ahead waits for that read to end; err is the
// read's error then.
func (s *Snapshotter) OnMark(m Mark) (rows []*change.Event, closed bool, err error) {
	if s.pre != nil && m.ID == s.pre.id {
		if err := s.join(); err != nil {
			return nil, false, err
		}
	}
	c := s.cur
	if c == nil || m.ID != c.id {
		return nil, false, nil
	}
	if m.Kind == Low {
		c.open = true
		return nil, false, nil
	}
	s.cur = nil
	if !c.open {
		// Cannot happen with an ordered stream; read the chunk again.
		return nil, false, nil
	}
	out := make([]*change.Event, 0, len(c.rows))
	for _, r := range c.rows {
		if c.truncated {
			break
		}
		if len(c.changed) > 0 {
			if _, ok := c.changed[keyString(r.Key)]; ok {
				continue
			}
		}
		r.Event.Source.Snapshot = change.SnapshotTrue
		out = append(out, r.Event)
	}
	if c.last && len(out) > 0 {
		out[len(out)-1].Source.Snapshot = change.SnapshotLast
	}
	s.closed = c.mem
	p := s.queue[0]
	p.Rows += int64(len(c.rows))
	p.Chunks++
	if !c.last {
		p.LastKey = c.hi
	}
	s.progress(p, c.last)
	if c.last {
		s.finishHead()
		delete(s.runs, c.table)
	}
	return out, true, nil
}

// Complete ends the snapshot of table, the first queued, which a source read
// by other means than chunks (PostgreSQL: a table without a key, read whole
// under one exported snapshot) and whose rows it sends in the source
// transaction where it calls Complete. The next checkpoint's State lists
// the table as done. rows is the number of rows sent.
func (s *Snapshotter) Complete(table string, rows int64) error {
	if len(s.queue) == 0 || s.queue[0].Table != table || s.cur != nil || s.pre != nil {
		return fmt.Errorf("snapshot: %s is not the next table, or a chunk is in flight", table)
	}
	p := s.queue[0]
	p.Rows += rows
	p.Chunks++
	if s.runs[table] == nil {
		s.runs[table] = &run{started: time.Now(), startRows: 0, lastLog: time.Now()}
	}
	s.progress(p, true)
	s.finishHead()
	delete(s.runs, table)
	return nil
}

// ClosedMemory returns, once, the memory (see ChunkMemory) of the rows of
// the chunk OnMark closed last, nil for a dialect without it. The source
// may reuse it once a checkpoint after those rows is committed.
func (s *Snapshotter) ClosedMemory() any {
	m := s.closed
	s.closed = nil
	return m
}

func (s *Snapshotter) progress(p *Progress, finished bool) {
	r := s.runs[p.Table]
	if r == nil {
		return
	}
	now := time.Now()
	el := now.Sub(r.started).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.Rows-r.startRows) / el
	}
	// The estimate (pg_class.reltuples, TABLE_ROWS) may be stale; past it
	// the time left is unknown.
	left := -1.0
	switch {
	case finished:
		left = 0
	case rate > 0 && r.estimate > p.Rows:
		left = float64(r.estimate-p.Rows) / rate
	}
	if m := s.cfg.Metrics; m != nil {
		table := m.Table(p.Table)
		m.SnapshotRowsDone.WithLabelValues(table).Set(float64(p.Rows))
		m.SnapshotChunksDone.WithLabelValues(table).Set(float64(p.Chunks))
		m.SnapshotRowsPerSecond.WithLabelValues(table).Set(rate)
		m.SnapshotSecondsLeft.WithLabelValues(table).Set(left)
	}
	if finished {
		s.cfg.Log.Info("snapshot: table done", "table", p.Table, "rows", p.Rows, "chunks", p.Chunks,
			"rows_per_sec", int64(rate), "elapsed", now.Sub(r.started).Round(time.Millisecond))
		return
	}
	if now.Sub(r.lastLog) < s.cfg.ProgressEvery {
		return
	}
	r.lastLog = now
	eta := "unknown"
	if left >= 0 {
		eta = (time.Duration(left) * time.Second).String()
	}
	s.cfg.Log.Info("snapshot: progress", "table", p.Table, "rows_done", p.Rows, "rows_estimated", r.estimate,
		"rows_per_sec", int64(rate), "eta", eta)
}

// keyString turns a key into a map key without ambiguity.
func keyString(k Key) string {
	if len(k) == 1 {
		return k[0]
	}
	var b strings.Builder
	for _, v := range k {
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	return b.String()
}
