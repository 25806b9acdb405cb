package postgres

import (
	"bytes"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

// row encodes a tuple. A column sent as unchanged TOAST ('u') takes its value
// from old when the old tuple is a full image (REPLICA IDENTITY FULL), and is
// otherwise left absent: a nil value, which the encoders omit. A placeholder
// is never sent as data.
func (rel *relation) row(tup, old []tupleCol) *change.Row {
	vals := make([][]byte, len(rel.names))
	for i := range vals {
		if i >= len(tup) {
			break
		}
		c := tup[i]
		if c.kind == 'u' && i < len(old) && old[i].kind != 'u' {
			c = old[i]
		}
		vals[i] = rel.value(i, c)
	}
	return &change.Row{Names: rel.names, Values: vals}
}

// keyRow is the key-only image: the key columns of tup, every other column
// absent. It is the before image of updates and deletes on tables without
// REPLICA IDENTITY FULL.
func (rel *relation) keyRow(tup []tupleCol) *change.Row {
	vals := make([][]byte, len(rel.names))
	for _, i := range rel.key {
		if i < len(tup) {
			vals[i] = rel.value(i, tup[i])
		}
	}
	return &change.Row{Names: rel.names, Values: vals}
}

func (rel *relation) value(i int, c tupleCol) []byte {
	switch c.kind {
	case 'n':
		return change.Null
	case 't':
		return rel.encs[i](make([]byte, 0, len(c.data)+8), c.data)
	case 'b':
		return change.AppendString(nil, string(c.data))
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
