package change

import (
	"bytes"
	"strings"
	"time"
)

// Op is the Debezium operation code of an event.
type Op byte

const (
	OpCreate Op = 'c'
	OpUpdate Op = 'u'
	OpDelete Op = 'd'
	OpRead   Op = 'r' // a row read by a snapshot
	// OpTruncate is a TRUNCATE of the table: an event without a key or
	// rows, sent only when format.truncate is event.
	OpTruncate Op = 't'
)

func (o Op) String() string { return string(rune(o)) }

// TableID names a captured table. Namespace is the PostgreSQL schema or the
// MySQL database.
type TableID struct {
	Namespace string
	Name      string
}

func (t TableID) String() string { return t.Namespace + "." + t.Name }

// Row is one row image. Names is shared by every row of the same table
// version and must not be modified. Values[i] is the JSON encoding of column
// Names[i]: the four bytes null for SQL NULL, and nil when the column is absent
// from this image (for example an unchanged TOASTed value), in which case the
// encoder leaves the field out.
type Row struct {
	Names  []string
	Values [][]byte
	// JSON is nil, or the whole row as the JSON object the encoders write:
	// the present columns in order, each as its name and Values[i]. A source
	// that builds a row in one buffer (see ObjectWriter) sets it, and the
	// encoders then copy the object instead of writing it column by column.
	// Code that changes Values must set JSON to nil.
	JSON []byte
}

// Get returns the JSON value of the named column and whether it is present.
func (r *Row) Get(name string) ([]byte, bool) {
	if r == nil {
		return nil, false
	}
	for i, n := range r.Names {
		if n == name {
			return r.Values[i], r.Values[i] != nil
		}
	}
	return nil, false
}

// Snapshot tells whether an event came from a snapshot, with Debezium's
// values for source.snapshot.
type Snapshot uint8

const (
	SnapshotFalse Snapshot = iota
	SnapshotTrue
	SnapshotLast // the last row of a table's snapshot
)

func (s Snapshot) String() string {
	switch s {
	case SnapshotTrue:
		return "true"
	case SnapshotLast:
		return "last"
	}
	return "false"
}

// Source is the provenance block of an event (Debezium's "source" field).
// Fields that do not apply to the connector are left zero and are omitted
// from the encoding.
type Source struct {
	Connector string // "postgresql" or "mysql"
	Name      string // the relay's source id
	DB        string
	Schema    string // PostgreSQL only
	Table     string
	TsMs      int64 // commit time at the source, Unix milliseconds
	Snapshot  Snapshot

	// PostgreSQL.
	LSN  uint64
	TxID uint32

	// MySQL and MariaDB.
	File     string
	Pos      uint64
	GTID     string
	ServerID uint32
	Thread   uint32
	Query    string
}

// Event is one row change.
type Event struct {
	Table TableID
	Op    Op
	// Key is the canonical JSON object of the primary-key columns, in key
	// column order: the same bytes for the same key every time.
	Key    []byte
	Before *Row // nil for c and r
	After  *Row // nil for d
	Source Source
	// Position is an opaque token naming the source transaction this event
	// belongs to; it goes into record headers for tracing and may be nil.
	Position []byte
}

// Checkpoint marks a point in the stream where everything before it forms
// whole source transactions (and whole snapshot chunks). It is the only place
// where the relay may end a Kafka transaction.
type Checkpoint struct {
	// State is the source's resumable state (position and snapshot
	// progress), opaque to the relay, stored verbatim in the offsets record.
	State []byte
	// SchemaFingerprint identifies the captured schema at this point; it is
	// stored for diagnostics.
	SchemaFingerprint string
	// CommitTime is the source commit time of the last transaction, used for
	// lag in seconds. Zero when unknown (a heartbeat with no data).
	CommitTime time.Time
	// Label is a short human-readable form of the position for logs and
	// metrics, e.g. "0/16B3748" or "mariadb-bin.000003:1234".
	Label string
	// LSN is the numeric position where one exists (PostgreSQL), exported as
	// a metric; zero otherwise.
	LSN uint64
	// Seq is a number a source may give its checkpoints, growing in the
	// order it sends them, to tell from Ack which ones are committed. The
	// relay does not read it.
	Seq uint64
	// Parts are the pieces of the source's state kept under keys of their
	// own, so that State, written with every transaction, stays small
	// however much work is done: each part is written once, when it
	// changes, in the Kafka transaction that ends at this checkpoint. The
	// parts of every checkpoint in one transaction are written, in order.
	Parts []Part
}

// Part is one piece of a source's state stored apart from State, e.g. one
// table's finished snapshot. A part replaces the earlier part of the same
// name; a nil Value deletes it.
type Part struct {
	// Name is unique within the source, e.g. "table/public.orders".
	Name  string
	Value []byte
}

// Resume is what a source resumes from: the State of the last committed
// checkpoint and every part committed up to it, by name.
type Resume struct {
	State []byte
	Parts map[string][]byte
}

// Apply makes r the resume point right after cp: cp's State, and its parts
// on top of the earlier ones. It is how a reader of committed checkpoints,
// such as a test standing in for the relay, keeps what the offsets topic
// would hold.
func (r *Resume) Apply(cp *Checkpoint) {
	r.State = cp.State
	for _, p := range cp.Parts {
		if p.Value == nil {
			delete(r.Parts, p.Name)
			continue
		}
		if r.Parts == nil {
			r.Parts = map[string][]byte{}
		}
		r.Parts[p.Name] = p.Value
	}
}

// Message is what a source sends: exactly one of Event, Events and
// Checkpoint is set.
type Message struct {
	Event *Event
	// Events is a run of events, handled as if each had come in a message
	// of its own, in order. A source sends rows it holds anyway (those of a
	// snapshot chunk) in runs, up to MaxRun at a time, so that the hand-off
	// to the relay is paid per run rather than per row.
	Events     []*Event
	Checkpoint *Checkpoint
}

// MaxRun bounds the events of one Message.Events.
const MaxRun = 16

// SendRuns calls send with msgs of evs in runs of up to MaxRun, stopping at
// the first error.
func SendRuns(evs []*Event, send func(Message) error) error {
	for len(evs) > 0 {
		n := min(len(evs), MaxRun)
		if err := send(Message{Events: evs[:n:n]}); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

// Clone returns a copy of ev that shares no memory with it but the column
// names, which a source never reuses.
func (ev *Event) Clone() *Event {
	c := *ev
	c.Key = bytes.Clone(ev.Key)
	c.Position = bytes.Clone(ev.Position)
	c.Before = ev.Before.Clone()
	c.After = ev.After.Clone()
	c.Table = TableID{Namespace: strings.Clone(ev.Table.Namespace), Name: strings.Clone(ev.Table.Name)}
	s := &c.Source
	for _, p := range []*string{&s.Connector, &s.Name, &s.DB, &s.Schema, &s.Table, &s.GTID, &s.File, &s.Query} {
		*p = strings.Clone(*p)
	}
	return &c
}

// Clone returns a copy of r that shares only Names with it; nil for nil.
func (r *Row) Clone() *Row {
	if r == nil {
		return nil
	}
	c := &Row{Names: r.Names, JSON: bytes.Clone(r.JSON)}
	if r.Values != nil {
		c.Values = make([][]byte, len(r.Values))
		for i, v := range r.Values {
			c.Values[i] = bytes.Clone(v)
		}
	}
	return c
}
