package offsets

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
)

// CurrentVersion is the record layout this build writes. Load refuses a
// record with a higher version: it was written by a newer relay, whose state
// this one cannot be trusted to interpret.
//
// Version 2 records may have parts (see PartKey) that complete their state;
// a build that reads only version 1 would take such a state for the whole
// of it (and snapshot again every table it does not list), so it must
// refuse them. Version 1 records, with the whole state inline, still load.
const CurrentVersion = 2

// Record is the value stored under a source id.
type Record struct {
	// Version is the layout version, CurrentVersion when written.
	Version int `json:"v"`
	// SourceID repeats the key, for readers of the raw topic.
	SourceID string `json:"source_id"`
	// State is the source's resumable state (position, snapshot progress),
	// opaque here and stored verbatim.
	State json.RawMessage `json:"state"`
	// Position is a readable form of the position, e.g. "0/16B3748".
	Position string `json:"position,omitempty"`
	// SchemaFingerprint identifies the captured schema when written.
	SchemaFingerprint string `json:"schema_fingerprint,omitempty"`
	// RelayVersion is the version of the relay that wrote the record.
	RelayVersion string `json:"relay_version"`
	// WrittenMs is when the record was produced, Unix milliseconds.
	WrittenMs int64 `json:"written_ms"`
	// CommitMs is the source commit time of the last transaction covered,
	// Unix milliseconds; 0 when unknown.
	CommitMs int64 `json:"commit_ms,omitempty"`

	// Parts are the source's state parts committed up to this record, by
	// name (see change.Part). Load fills them in; they are stored as
	// records of their own, not in the value.
	Parts map[string][]byte `json:"-"`
}

// partSep separates the source id from the part name in a part's key. A
// source id never holds it (config allows only [a-z0-9_]), so a part key
// never equals a source id, and the parts of source "a" (keys "a/...") are
// never taken for those of source "a_b" (keys "a_b/...").
const partSep = "/"

// PartKey is the offsets topic key of part name of source id:
// "<id>/<name>", e.g. "shop/table/public.orders".
func PartKey(id, name string) string { return id + partSep + name }

// PartRecord returns the record to produce into topic, inside the same
// transaction as the checkpoint that carries p, to store part p of source
// id. A part with a nil value is a tombstone.
func PartRecord(topic, id string, p change.Part) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: 0, Key: []byte(PartKey(id, p.Name)), Value: p.Value}
}

// Written returns WrittenMs as a time.
func (r *Record) Written() time.Time { return time.UnixMilli(r.WrittenMs) }

// NewRecord makes the record that stores cp for source id.
func NewRecord(id string, cp *change.Checkpoint, relayVersion string, now time.Time) *Record {
	r := &Record{
		Version:           CurrentVersion,
		SourceID:          id,
		State:             json.RawMessage(cp.State),
		Position:          cp.Label,
		SchemaFingerprint: cp.SchemaFingerprint,
		RelayVersion:      relayVersion,
		WrittenMs:         now.UnixMilli(),
	}
	if !cp.CommitTime.IsZero() {
		r.CommitMs = cp.CommitTime.UnixMilli()
	}
	return r
}

// Encode returns the record's value bytes.
func (r *Record) Encode() []byte {
	state := r.State
	if len(state) == 0 {
		r.State = json.RawMessage("null")
	}
	b, err := json.Marshal(r)
	r.State = state
	if err != nil {
		// State is produced by our own sources as JSON; anything else is a
		// programming error.
		panic(fmt.Sprintf("offsets: encode record: %v", err))
	}
	return b
}

// KafkaRecord returns the record to produce into topic inside the caller's
// open transaction.
func (r *Record) KafkaRecord(topic string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: 0, Key: []byte(r.SourceID), Value: r.Encode()}
}

// ErrNewerVersion is returned for a record written by a newer relay.
var ErrNewerVersion = errors.New("offsets: record written by a newer cdcrelay; upgrade this one")

// Decode parses a stored value. A nil value (a tombstone, left by
// `cdcrelay offsets reset`) decodes to a nil record and no error.
func Decode(value []byte) (*Record, error) {
	if value == nil {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(value, &r); err != nil {
		return nil, fmt.Errorf("offsets: record is not valid JSON: %w", err)
	}
	switch {
	case r.Version < 1:
		return nil, fmt.Errorf("offsets: record has no version (v=%d); it was not written by cdcrelay", r.Version)
	case r.Version > CurrentVersion:
		return nil, fmt.Errorf("%w (record v%d, this build reads up to v%d)", ErrNewerVersion, r.Version, CurrentVersion)
	}
	if string(r.State) == "null" {
		r.State = nil
	}
	return &r, nil
}
