package format

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/internal/slab"
)

// Value formats.
const (
	DebeziumJSON = "debezium-json"
	Upsert       = "upsert"
)

// HeaderPosition is the record header that carries the source position of
// the event's transaction, for tracing.
const HeaderPosition = "cdcrelay.position"

// HeaderOp is the record header that marks a TRUNCATE record: its value is
// "t". Only truncate records carry it.
const HeaderOp = "cdcrelay.op"

// TruncateKey is the key of a TRUNCATE record: the empty JSON object, which
// is no row's key (a key has at least one column). Compacted topics refuse
// records without a key, so the record needs one.
var TruncateKey = []byte("{}")

// Options choose the encoding.
type Options struct {
	// Value is DebeziumJSON or Upsert.
	Value string
	// Tombstones adds a null-valued record after each delete
	// (debezium-json only: in upsert the delete itself is null).
	Tombstones bool
	// Headers adds the HeaderPosition header.
	Headers bool
	// TopicPrefix starts every topic name.
	TopicPrefix string
	// Version is written as source.version.
	Version string
	// Now gives ts_ms; nil means time.Now.
	Now func() time.Time
}

// Encoder builds records. It caches topic names and is not safe for
// concurrent use.
//
// The records, their keys, values and headers are carved out of blocks (see
// internal/slab) rather than allocated one by one. A record is never written
// by the encoder after Append returns it, so it may be held for as long as
// the producer needs it; the blocks of records that are finished can be
// reused through Cut and Recycle.
type Encoder struct {
	opt    Options
	topics map[change.TableID]string
	values slab.Recycler
	recs   slab.Pool[kgo.Record]
	hdrs   slab.Of[kgo.RecordHeader]

	lastSource     change.Source
	lastSourceJSON []byte

	// The topic of the last table asked for: events come in runs of one
	// table, and comparing two TableIDs that share their strings costs less
	// than hashing one.
	lastTable change.TableID
	lastTopic string
}

// NewEncoder returns an encoder for opt.
func NewEncoder(opt Options) *Encoder {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Encoder{opt: opt, topics: make(map[change.TableID]string)}
}

// Generation is the memory of the records handed out between two Cuts:
// the records and their keys and values.
type Generation struct {
	values slab.Generation
	recs   [][]kgo.Record
}

// Cut ends the generation of records handed out so far (see Recycle) and
// returns it.
func (e *Encoder) Cut() Generation {
	return Generation{values: e.values.Cut(), recs: e.recs.Cut()}
}

// Recycle reuses the memory of the records of g, a generation from Cut.
// Every record of it must be finished, its promise called, and referenced
// by nobody: the records and their bytes will be overwritten.
func (e *Encoder) Recycle(g Generation) {
	e.values.Recycle(g.values)
	e.recs.Recycle(g.recs)
}

// Topic returns the (cached) topic of table t.
func (e *Encoder) Topic(t change.TableID) string {
	if e.lastTopic != "" && t == e.lastTable {
		return e.lastTopic
	}
	s, ok := e.topics[t]
	if !ok {
		s = Topic(e.opt.TopicPrefix, t)
		e.topics[t] = s
	}
	e.lastTable, e.lastTopic = t, s
	return s
}

// Append appends the records for ev to recs: one, or two for a delete with
// tombstones on. Their timestamp and ts_ms are the time Options.Now gives.
func (e *Encoder) Append(recs []*kgo.Record, ev *change.Event) []*kgo.Record {
	return e.AppendAt(recs, ev, e.opt.Now())
}

// AppendAt is Append at time now, for a caller that encodes a run of events
// it took from its source at one moment: reading the clock twice per event
// (ts_ms, and the producer's record timestamp) cost more than encoding the
// envelope around the row.
func (e *Encoder) AppendAt(recs []*kgo.Record, ev *change.Event, now time.Time) []*kgo.Record {
	topic := e.Topic(ev.Table)
	if ev.Op == change.OpTruncate {
		return append(recs, e.truncate(topic, ev, now))
	}
	var value []byte
	if e.opt.Value == Upsert {
		if ev.Op != change.OpDelete {
			value = e.values.Keep(AppendRow(e.values.Grow(rowSize(ev.After)), ev.After))
		}
	} else {
		value = e.values.Keep(e.appendEnvelope(e.values.Grow(256+rowSize(ev.Before)+rowSize(ev.After)), ev, now))
	}
	// The key and the header are copied next to the value, so that a record
	// refers to no memory of the source's: the source's rows die once they
	// are encoded, not when the Kafka transaction commits.
	r := e.recs.New()
	r.Topic, r.Key, r.Value, r.Timestamp = topic, e.values.Append(ev.Key), value, now
	if e.opt.Headers && ev.Position != nil {
		r.Headers = e.hdrs.Slice(1)
		r.Headers[0] = kgo.RecordHeader{Key: HeaderPosition, Value: e.values.Append(ev.Position)}
	}
	recs = append(recs, r)
	if ev.Op == change.OpDelete && e.opt.Tombstones && e.opt.Value != Upsert {
		t := e.recs.New()
		t.Topic, t.Key, t.Headers, t.Timestamp = topic, r.Key, r.Headers, now
		recs = append(recs, t)
	}
	return recs
}

// truncate builds the record of a TRUNCATE: key TruncateKey, a null value
// and the header cdcrelay.op=t (and the position header when headers are
// on). Flink's debezium-json skips a null value as it skips a tombstone,
// whereas it fails on Debezium's op "t" ("Unknown \"op\" value") unless
// debezium-json.ignore-parse-errors is set, which hides every other error
// too. Compaction drops the record in time like any tombstone; it removes
// no row key.
func (e *Encoder) truncate(topic string, ev *change.Event, now time.Time) *kgo.Record {
	r := e.recs.New()
	r.Topic, r.Key, r.Value, r.Timestamp = topic, TruncateKey, nil, now
	n := 1
	if e.opt.Headers && ev.Position != nil {
		n = 2
	}
	r.Headers = e.hdrs.Slice(n)
	r.Headers[0] = kgo.RecordHeader{Key: HeaderOp, Value: opTruncate}
	if n == 2 {
		r.Headers[1] = kgo.RecordHeader{Key: HeaderPosition, Value: e.values.Append(ev.Position)}
	}
	return r
}

var opTruncate = []byte("t")

func rowSize(r *change.Row) int {
	if r == nil {
		return 4
	}
	if r.JSON != nil {
		return len(r.JSON)
	}
	n := 2
	for i := range r.Values {
		n += len(r.Names[i]) + len(r.Values[i]) + 4
	}
	return n
}

// AppendRow appends a row image as the encoders write it: a JSON object of
// the present columns in row order, absent columns left out; a nil row is
// null. A row whose source wrote that object already (Row.JSON) is copied.
func AppendRow(b []byte, r *change.Row) []byte {
	if r == nil {
		return append(b, "null"...)
	}
	if r.JSON != nil {
		return append(b, r.JSON...)
	}
	b = append(b, '{')
	first := true
	for i, v := range r.Values {
		if v == nil {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = change.AppendString(b, r.Names[i])
		b = append(b, ':')
		b = append(b, v...)
	}
	return append(b, '}')
}

// appendEnvelope writes the Debezium change event value (without the schema
// block), the shape Flink's debezium-json format reads.
func (e *Encoder) appendEnvelope(b []byte, ev *change.Event, now time.Time) []byte {
	b = append(b, `{"before":`...)
	b = AppendRow(b, ev.Before)
	b = append(b, `,"after":`...)
	b = AppendRow(b, ev.After)
	b = append(b, `,"source":`...)
	// Events of one snapshot chunk or one source transaction often share
	// their source block: encode it once.
	if ev.Source != e.lastSource || e.lastSourceJSON == nil {
		e.lastSource = ev.Source
		e.lastSourceJSON = e.appendSource(e.lastSourceJSON[:0], &ev.Source)
	}
	b = append(b, e.lastSourceJSON...)
	b = append(b, `,"op":"`...)
	b = append(b, byte(ev.Op))
	b = append(b, `","ts_ms":`...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	b = append(b, `,"transaction":null}`...)
	return b
}

func (e *Encoder) appendSource(b []byte, s *change.Source) []byte {
	b = append(b, `{"version":`...)
	b = change.AppendString(b, e.opt.Version)
	b = append(b, `,"connector":`...)
	b = change.AppendString(b, s.Connector)
	b = append(b, `,"name":`...)
	b = change.AppendString(b, s.Name)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, s.TsMs, 10)
	b = append(b, `,"snapshot":"`...)
	b = append(b, s.Snapshot.String()...)
	b = append(b, `","db":`...)
	b = change.AppendString(b, s.DB)
	if s.Connector == "postgresql" {
		b = append(b, `,"schema":`...)
		b = change.AppendString(b, s.Schema)
	}
	b = append(b, `,"table":`...)
	b = change.AppendString(b, s.Table)
	if s.Connector == "postgresql" {
		b = append(b, `,"txId":`...)
		b = strconv.AppendUint(b, uint64(s.TxID), 10)
		b = append(b, `,"lsn":`...)
		b = strconv.AppendUint(b, s.LSN, 10)
		return append(b, '}')
	}
	b = append(b, `,"server_id":`...)
	b = strconv.AppendUint(b, uint64(s.ServerID), 10)
	b = append(b, `,"gtid":`...)
	if s.GTID == "" {
		b = append(b, "null"...)
	} else {
		b = change.AppendString(b, s.GTID)
	}
	b = append(b, `,"file":`...)
	b = change.AppendString(b, s.File)
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, s.Pos, 10)
	b = append(b, `,"row":0,"thread":`...)
	b = strconv.AppendUint(b, uint64(s.Thread), 10)
	b = append(b, `,"query":`...)
	if s.Query == "" {
		b = append(b, "null"...)
	} else {
		b = change.AppendString(b, s.Query)
	}
	return append(b, '}')
}
