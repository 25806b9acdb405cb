package verify

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// entry is one row state: the hash of its key, its order among the
// entries of the same key (the topic's record order), the hash of the row
// (absent for a deleted key) and the key bytes.
type entry struct {
	hash, seq, state uint64
	key              []byte
}

func (a *entry) less(b *entry) bool {
	return a.hash < b.hash || a.hash == b.hash && a.seq < b.seq
}

// memEntry is an entry whose key lives in the sorter's arena.
type memEntry struct {
	hash, seq, state uint64
	off, n           uint32
}

// memEntrySize is what one buffered entry costs beyond its key bytes.
const memEntrySize = 32

// DefaultSortMemory is the memory a sorter buffers before it writes a
// sorted run to a temporary file.
const DefaultSortMemory = 64 << 20

// sorter orders entries by (hash, seq) in bounded memory: it buffers up to
// limit bytes, then writes the buffer sorted to a run file; iterate merges
// the runs. With one run or none, nothing touches the disk.
type sorter struct {
	dir   string
	limit int
	buf   []memEntry
	arena []byte
	runs  []*os.File
}

func newSorter(dir string, limit int) *sorter {
	if limit <= 0 {
		limit = DefaultSortMemory
	}
	return &sorter{dir: dir, limit: limit}
}

func (s *sorter) add(e entry) error {
	if len(s.arena) > 1<<31 {
		return errors.New("verify: sort buffer overflow")
	}
	s.buf = append(s.buf, memEntry{hash: e.hash, seq: e.seq, state: e.state, off: uint32(len(s.arena)), n: uint32(len(e.key))})
	s.arena = append(s.arena, e.key...)
	if len(s.buf)*memEntrySize+len(s.arena) >= s.limit {
		return s.spill()
	}
	return nil
}

func (s *sorter) sortBuf() {
	slices.SortFunc(s.buf, func(a, b memEntry) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
}

// spill writes the buffer, sorted, to a new run file.
func (s *sorter) spill() error {
	s.sortBuf()
	f, err := os.CreateTemp(s.dir, "cdcrelay-verify-*.run")
	if err != nil {
		return fmt.Errorf("verify: temporary file for sorting: %w", err)
	}
	os.Remove(f.Name()) // unlinked: gone when closed, whatever happens
	s.runs = append(s.runs, f)
	w := bufio.NewWriterSize(f, 1<<16)
	var hdr [28]byte
	for _, e := range s.buf {
		binary.LittleEndian.PutUint64(hdr[0:], e.hash)
		binary.LittleEndian.PutUint64(hdr[8:], e.seq)
		binary.LittleEndian.PutUint64(hdr[16:], e.state)
		binary.LittleEndian.PutUint32(hdr[24:], e.n)
		w.Write(hdr[:])
		w.Write(s.arena[e.off : e.off+e.n])
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("verify: write a sort run: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	s.buf, s.arena = s.buf[:0], s.arena[:0]
	return nil
}

// close removes the run files.
func (s *sorter) close() {
	for _, f := range s.runs {
		f.Close()
	}
	s.runs = nil
	s.buf, s.arena = nil, nil
}

// iterator yields entries in (hash, seq) order. An entry's key is valid
// until the next call.
type iterator interface {
	next() (entry, bool, error)
}

// iterate returns the entries added so far in order. Add must not be
// called afterwards.
func (s *sorter) iterate() (iterator, error) {
	if len(s.runs) == 0 {
		s.sortBuf()
		return &memIter{s: s}, nil
	}
	if len(s.buf) > 0 {
		if err := s.spill(); err != nil {
			return nil, err
		}
	}
	m := &mergeIter{}
	for _, f := range s.runs {
		r := &runReader{r: bufio.NewReaderSize(f, 1<<16)}
		e, ok, err := r.read()
		if err != nil {
			return nil, err
		}
		if ok {
			m.h = append(m.h, &runHead{e: e, r: r})
		}
	}
	heap.Init(&m.h)
	return m, nil
}

type memIter struct {
	s *sorter
	i int
}

func (it *memIter) next() (entry, bool, error) {
	if it.i >= len(it.s.buf) {
		return entry{}, false, nil
	}
	e := it.s.buf[it.i]
	it.i++
	return entry{hash: e.hash, seq: e.seq, state: e.state, key: it.s.arena[e.off : e.off+e.n]}, true, nil
}

type runReader struct {
	r   *bufio.Reader
	hdr [28]byte
}

func (r *runReader) read() (entry, bool, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if err == io.EOF {
			return entry{}, false, nil
		}
		return entry{}, false, fmt.Errorf("verify: read a sort run: %w", err)
	}
	e := entry{
		hash:  binary.LittleEndian.Uint64(r.hdr[0:]),
		seq:   binary.LittleEndian.Uint64(r.hdr[8:]),
		state: binary.LittleEndian.Uint64(r.hdr[16:]),
		key:   make([]byte, binary.LittleEndian.Uint32(r.hdr[24:])),
	}
	if _, err := io.ReadFull(r.r, e.key); err != nil {
		return entry{}, false, fmt.Errorf("verify: read a sort run: %w", err)
	}
	return e, true, nil
}

type runHead struct {
	e entry
	r *runReader
}

type runHeap []*runHead

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].e.less(&h[j].e) }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runHead)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeIter merges sorted runs.
type mergeIter struct {
	h runHeap
}

func (m *mergeIter) next() (entry, bool, error) {
	if len(m.h) == 0 {
		return entry{}, false, nil
	}
	top := m.h[0]
	out := top.e
	e, ok, err := top.r.read()
	if err != nil {
		return entry{}, false, err
	}
	if ok {
		top.e = e
		heap.Fix(&m.h, 0)
	} else {
		heap.Pop(&m.h)
	}
	return out, true, nil
}

// latest wraps an iterator sorted by (hash, seq) and yields only the last
// entry of each hash: the key's latest state. A yielded key is valid until
// the next call.
type latest struct {
	it      iterator
	pending entry
	has     bool
	done    bool
	bufs    [2][]byte // the pending key and the one last yielded
	cur     int
}

func (l *latest) next() (entry, bool, error) {
	for {
		if l.done {
			if l.has {
				l.has = false
				return l.pending, true, nil
			}
			return entry{}, false, nil
		}
		e, ok, err := l.it.next()
		if err != nil {
			return entry{}, false, err
		}
		if !ok {
			l.done = true
			continue
		}
		if l.has && l.pending.hash != e.hash {
			out := l.pending
			l.keep(e)
			return out, true, nil
		}
		l.keep(e)
		l.has = true
	}
}

// keep makes e pending, its key copied into the buffer not yielded last.
func (l *latest) keep(e entry) {
	if !l.has || l.pending.hash != e.hash {
		l.cur ^= 1 // the old pending key may be yielded now: keep it intact
	}
	l.bufs[l.cur] = append(l.bufs[l.cur][:0], e.key...)
	e.key = l.bufs[l.cur]
	l.pending = e
}
