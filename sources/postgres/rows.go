package postgres

import (
	"bytes"
	"slices"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

// row encodes a tuple. A column sent as unchanged TOAST ('u') takes its value
// from old when the old tuple is a full image (REPLICA IDENTITY FULL), and is
// otherwise left absent: a nil value, which the encoders omit. A placeholder
// is never sent as data. Under source.unchanged_toast: refuse, such an
// update has stopped the relay before it gets here (toast.go).
func (rel *relation) row(a *change.Alloc, tup, old []tupleCol) *change.Row {
	return rel.image(a, tup, old, false)
}

// keyRow is the key-only image: the key columns of tup, every other column
// absent. It is the before image of updates and deletes on tables without
// REPLICA IDENTITY FULL.
func (rel *relation) keyRow(a *change.Alloc, tup []tupleCol) *change.Row {
	return rel.image(a, tup, nil, true)
}

// image builds a row image from tup (see row), of the key columns only when
// keyOnly. The values and the row's JSON object are written together into
// one buffer (change.ObjectWriter), each value a slice of the object.
func (rel *relation) image(a *change.Alloc, tup, old []tupleCol, keyOnly bool) *change.Row {
	vals := a.Values.Slice(len(rel.names))
	n := change.ObjectSize(rel.keys)
	for i := range tup {
		n += len(tup[i].data) + 8
	}
	var w change.ObjectWriter
	w.Open(a.Bytes.Grow(n))
	for i := range vals {
		if i >= len(tup) {
			break
		}
		if keyOnly && !slices.Contains(rel.key, i) {
			continue
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
	row := a.Rows.New()
	*row = change.Row{Names: rel.names, Values: vals, JSON: w.Close()}
	a.Bytes.Keep(w.B)
	return row
}

func (rel *relation) sameKey(a, b *change.Row) bool {
	for _, i := range rel.kafka {
		if !bytes.Equal(a.Values[i], b.Values[i]) {
			return false
		}
	}
	return true
}

// pgEpoch is 2000-01-01, the origin of PostgreSQL timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func pgTime(micros int64) time.Time { return pgEpoch.Add(time.Duration(micros) * time.Microsecond) }
