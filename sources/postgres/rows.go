package postgres

import (
	"bytes"
	"time"
	"unsafe"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/internal/slab"
)

// rowAlloc holds the slabs that decoded rows and events are built from: the
// encoded column values of many rows share one 64 KiB block, and rows, value
// slices and events come in blocks too, instead of one allocation each. A
// value is never written after it is built, so rows may outlive the next
// ones. Each goroutine that builds rows owns its own rowAlloc.
type rowAlloc struct {
	bytes  slab.Bytes
	rows   slab.Of[change.Row]
	vals   slab.Of[[]byte]
	events slab.Of[change.Event]
}

// event returns a copy of ev from the slab.
func (a *rowAlloc) event(ev change.Event) *change.Event {
	p := a.events.New()
	*p = ev
	return p
}

// str returns a string of the bytes of v, kept in the slab.
func (a *rowAlloc) str(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	b := a.bytes.Append(v)
	return unsafe.String(&b[0], len(b))
}

// key returns the event key of the key columns keyIdx of vals, built in the
// slab.
func (a *rowAlloc) key(names []string, keyIdx []int, vals [][]byte) []byte {
	n := 2
	for i, k := range keyIdx {
		n += len(names[i]) + len(vals[k]) + 4
	}
	b := append(a.bytes.Grow(n), '{')
	for i, k := range keyIdx {
		if i > 0 {
			b = append(b, ',')
		}
		b = change.AppendString(b, names[i])
		b = append(b, ':')
		if vals[k] == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, vals[k]...)
		}
	}
	return a.bytes.Keep(append(b, '}'))
}

// row encodes a tuple. A column sent as unchanged TOAST ('u') takes its value
// from old when the old tuple is a full image (REPLICA IDENTITY FULL), and is
// otherwise left absent: a nil value, which the encoders omit. A placeholder
// is never sent as data.
//
// The values and the row's JSON object are written together into one buffer
// (change.ObjectWriter), each value a slice of the object.
func (rel *relation) row(a *rowAlloc, tup, old []tupleCol) *change.Row {
	vals := a.vals.Slice(len(rel.names))
	n := 2
	for i := range rel.keys {
		n += len(rel.keys[i]) + 1
	}
	for i := range tup {
		n += len(tup[i].data) + 8
	}
	var w change.ObjectWriter
	w.Open(a.bytes.Grow(n))
	for i := range vals {
		if i >= len(tup) {
			break
		}
		c := tup[i]
		if c.kind == 'u' && i < len(old) && old[i].kind != 'u' {
			c = old[i]
		}
		switch c.kind {
		case 'n':
			w.Key(rel.keys[i])
			w.B = append(w.B, "null"...)
			vals[i] = change.Null
		case 't':
			m := w.Key(rel.keys[i])
			w.B = rel.encs[i](w.B, c.data)
			vals[i] = w.Value(m)
		case 'b':
			m := w.Key(rel.keys[i])
			w.B = change.AppendBytes(w.B, c.data)
			vals[i] = w.Value(m)
		}
		// 'u' with nothing to take it from: absent, a nil value.
	}
	row := a.rows.New()
	*row = change.Row{Names: rel.names, Values: vals, JSON: w.Close()}
	a.bytes.Keep(w.B)
	return row
}

// keyRow is the key-only image: the key columns of tup, every other column
// absent. It is the before image of updates and deletes on tables without
// REPLICA IDENTITY FULL.
func (rel *relation) keyRow(a *rowAlloc, tup []tupleCol) *change.Row {
	vals := a.vals.Slice(len(rel.names))
	for _, i := range rel.key {
		if i < len(tup) {
			vals[i] = rel.value(a, i, tup[i])
		}
	}
	row := a.rows.New()
	*row = change.Row{Names: rel.names, Values: vals}
	return row
}

func (rel *relation) value(a *rowAlloc, i int, c tupleCol) []byte {
	switch c.kind {
	case 'n':
		return change.Null
	case 't':
		return a.bytes.Keep(rel.encs[i](a.bytes.Grow(len(c.data)+8), c.data))
	case 'b':
		return a.bytes.Keep(change.AppendBytes(a.bytes.Grow(len(c.data)+8), c.data))
	}
	return nil // 'u' with nothing to take it from
}

func (rel *relation) sameKey(a, b *change.Row) bool {
	for _, i := range rel.key {
		if !bytes.Equal(a.Values[i], b.Values[i]) {
			return false
		}
	}
	return true
}

// pgEpoch is 2000-01-01, the origin of PostgreSQL timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func pgTime(micros int64) time.Time { return pgEpoch.Add(time.Duration(micros) * time.Microsecond) }
