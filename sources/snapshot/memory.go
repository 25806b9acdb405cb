package snapshot

import "github.com/cdcrelay/cdcrelay/change"

// Memories keeps the memory that snapshot chunks are read into (see
// ChunkMemory) and hands it out again once the relay has committed the rows
// built in it. A chunk's rows take about a kilobyte each; reused, they cost
// neither an allocation nor the collector's work.
//
// The source tells it where its rows stand: Sent when a chunk's rows have
// gone to the relay, Passed with a position its stream reached after them,
// and Get with the highest position the relay has acked. A position is any
// number that grows with the checkpoints the source sends (PostgreSQL: the
// commit LSN; MySQL: a count of checkpoints), such that a checkpoint acked
// at or after a position passed after some rows was sent after them. It is
// used by the source's goroutine only.
type Memories struct {
	sent []sentMemory
	free []*change.Alloc
	// Made counts the memories made rather than reused.
	Made int
}

// sentMemory is the memory of rows sent to the relay, to be reused once a
// checkpoint at or after pos is acked; pos is 0 until that checkpoint is
// known.
type sentMemory struct {
	alloc *change.Alloc
	pos   uint64
}

// maxFreeMemories bounds the memories kept ready, each as large as a chunk.
const maxFreeMemories = 2

// Get returns memory for the next chunk: that of a chunk whose checkpoint
// position is at most acked, or a new one.
func (m *Memories) Get(acked uint64) *change.Alloc {
	n := 0
	for _, s := range m.sent {
		if s.pos != 0 && s.pos <= acked {
			if len(m.free) < maxFreeMemories {
				s.alloc.Reset()
				m.free = append(m.free, s.alloc)
			}
			continue
		}
		m.sent[n] = s
		n++
	}
	clear(m.sent[n:])
	m.sent = m.sent[:n]
	if k := len(m.free); k > 0 {
		a := m.free[k-1]
		m.free[k-1] = nil
		m.free = m.free[:k-1]
		return a
	}
	m.Made++
	a := new(change.Alloc)
	a.Retain()
	return a
}

// Put gives back memory from Get that no chunk was read into.
func (m *Memories) Put(a *change.Alloc) {
	if len(m.free) < maxFreeMemories {
		m.free = append(m.free, a)
	}
}

// Sent records that the rows built in mem, the memory ClosedMemory
// returned, have been sent to the relay. A nil mem is ignored.
func (m *Memories) Sent(mem any) {
	if a, ok := mem.(*change.Alloc); ok && a != nil {
		m.sent = append(m.sent, sentMemory{alloc: a})
	}
}

// Passed records that the stream reached pos after every row recorded by
// Sent so far.
func (m *Memories) Passed(pos uint64) {
	for i := range m.sent {
		if m.sent[i].pos == 0 {
			m.sent[i].pos = pos
		}
	}
}

// Drop forgets every memory, for a source whose snapshots are done: the
// collector takes each once the relay has let go of its rows.
func (m *Memories) Drop() {
	m.sent, m.free = nil, nil
}

// Holding reports whether it keeps any memory.
func (m *Memories) Holding() bool { return len(m.sent) > 0 || len(m.free) > 0 }
