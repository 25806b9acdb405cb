package change

import (
	"unsafe"

	"github.com/cdcrelay/cdcrelay/internal/slab"
)

// Alloc holds the slabs that decoded rows and events are built from: the
// encoded column values of many rows share one 64 KiB block, and rows, value
// slices, events and key strings come in blocks too, instead of one
// allocation each. Nothing is written after it is built, so a row may
// outlive the ones built after it, unless the Alloc was told to Retain: then
// Reset reuses its memory, and everything built from it before, strings from
// Text included, is dead. Each goroutine that builds rows owns its own
// Alloc; the zero value is ready.
type Alloc struct {
	Bytes   slab.Bytes
	Rows    slab.Of[Row]
	Values  slab.Of[[]byte]
	Events  slab.Of[Event]
	Strings slab.Of[string]
}

// Retain makes a keep its blocks, so that Reset can hand them out again.
func (a *Alloc) Retain() {
	a.Bytes.Retain()
	a.Rows.Retain()
	a.Values.Retain()
	a.Events.Retain()
	a.Strings.Retain()
}

// Reset hands out the blocks kept since Retain again. Every row, event and
// string built from a before is dead after it: their memory is reused. A
// source calls it when the relay has acked a checkpoint after all of them.
func (a *Alloc) Reset() {
	a.Bytes.Reset()
	a.Rows.Reset()
	a.Values.Reset()
	a.Events.Reset()
	a.Strings.Reset()
}

// Event returns a copy of ev from the slab.
func (a *Alloc) Event(ev Event) *Event {
	p := a.Events.New()
	*p = ev
	return p
}

// Text returns a string of the bytes of v, kept in the slab.
func (a *Alloc) Text(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	b := a.Bytes.Append(v)
	return unsafe.String(&b[0], len(b))
}

// Key returns the event key of a row, built in the slab: EncodeKey of the
// values vals[keyIdx[i]] under the key column names names[i].
func (a *Alloc) Key(names []string, keyIdx []int, vals [][]byte) []byte {
	return a.Bytes.Keep(appendKey(a.Bytes.Grow(keySize(names, keyIdx, vals)), names, keyIdx, vals))
}
