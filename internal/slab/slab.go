// Package slab hands out small values carved from large blocks, so that
// building many of them (the column values of a row, the records of a Kafka
// transaction) costs one allocation per block instead of one per value.
//
// Invariant: a value, once handed out, is never written again by the slab,
// and a block is never reused: the collector frees it when nothing handed
// out from it is referenced any more. So a value may live as long as its
// user needs it, at the price of keeping its block alive until then.
//
// The exceptions are explicit, and their user promises when values are
// dead: a Recycler or a Pool hands out again the blocks of a generation
// given back, and a Bytes or an Of told to Retain hands out its blocks again
// after Reset.
//
// A slab is not safe for concurrent use: each goroutine that builds values
// owns its own.
package slab

// blockBytes is the size of a Bytes block.
const blockBytes = 64 << 10

// Bytes carves byte slices out of 64 KiB blocks. The zero value is ready.
type Bytes struct {
	buf   []byte
	arena arena[byte]
}

// Grow makes room for n more bytes and returns the slice to append the
// next value to. Appending more than n bytes is allowed: append then moves
// to a larger array, and Keep follows it.
func (s *Bytes) Grow(n int) []byte {
	if cap(s.buf)-len(s.buf) < n {
		s.buf = s.arena.block(blockBytes, n)[:0]
	}
	return s.buf
}

// Retain makes the slab keep its blocks for Reset.
func (s *Bytes) Retain() { s.arena.retain = true }

// Reset hands out the blocks kept since Retain again, from the first. Every
// value handed out before is then dead: it will be overwritten.
func (s *Bytes) Reset() {
	s.buf = nil
	s.arena.reset()
}

// Keep takes b, the slice Grow returned with the value appended, and
// returns the value, with its capacity cut so that no append can write past
// it.
func (s *Bytes) Keep(b []byte) []byte {
	v := b[len(s.buf):len(b):len(b)]
	s.buf = b
	return v
}

// Append is Grow, then append v, then Keep: a copy of v in the slab.
func (s *Bytes) Append(v []byte) []byte {
	return s.Keep(append(s.Grow(len(v)), v...))
}

// Recycler carves byte slices out of 64 KiB blocks like Bytes, and reuses
// blocks: values are handed out in generations, and once the user knows no
// value of a generation is referenced any more it gives the generation back.
// This spares the allocation, the zeroing and the collection of a block for
// values that die together, such as the records of one Kafka transaction.
//
// What a Recycler keeps is bounded, whatever the size of a generation: it
// takes back at most maxBlocks blocks of each generation (the first ones)
// and keeps at most maxBlocks free ones. The other blocks are left to the
// collector, which frees each as soon as its values are dropped, so a huge
// generation costs no more memory than it would without recycling.
//
// It also keeps no more free blocks than the larger of the last two
// generations it took back, so that one large generation (a burst, the
// first transaction after a backlog) does not leave its blocks held for
// good once generations are small again. The zero value is ready.
type Recycler struct {
	buf  []byte
	used [][]byte // the first blocks of the current generation
	free [][]byte
	last int // blocks of the generation recycled before the latest
}

// maxBlocks bounds both the blocks a Recycler tracks per generation and its
// free blocks: 12 MiB each, a little more than a Kafka transaction of 10,000
// events of 1 KiB.
const maxBlocks = 192

// Generation is the blocks of the values handed out between two Cuts.
type Generation [][]byte

// Grow is Bytes.Grow, taking a free block when there is one.
func (s *Recycler) Grow(n int) []byte {
	if cap(s.buf)-len(s.buf) >= n {
		return s.buf
	}
	if n <= blockBytes && len(s.free) > 0 {
		s.buf = s.free[len(s.free)-1][:0]
		s.free[len(s.free)-1] = nil
		s.free = s.free[:len(s.free)-1]
	} else {
		s.buf = make([]byte, 0, max(blockBytes, n))
	}
	if len(s.used) < maxBlocks && cap(s.buf) == blockBytes {
		s.used = append(s.used, s.buf)
	}
	return s.buf
}

// Keep is Bytes.Keep. A value larger than Grow was told moves to an array
// of its own, which the collector frees; blocks are never resized.
func (s *Recycler) Keep(b []byte) []byte {
	v := b[len(s.buf):len(b):len(b)]
	s.buf = b
	return v
}

// Append is Grow, then append v, then Keep: a copy of v in the current
// generation. A nil v stays nil, so that a copied Kafka key or header keeps
// telling null from empty.
func (s *Recycler) Append(v []byte) []byte {
	if v == nil {
		return nil
	}
	if len(v) == 0 {
		return []byte{}
	}
	return s.Keep(append(s.Grow(len(v)), v...))
}

// Cut ends the current generation and returns its blocks. Values handed out
// after it come from other blocks.
func (s *Recycler) Cut() Generation {
	g := Generation(s.used)
	s.used, s.buf = nil, nil
	return g
}

// Recycle takes back the blocks of g, a generation from Cut, none of whose
// values may be referenced any more: they will be overwritten.
func (s *Recycler) Recycle(g Generation) {
	s.free = takeBack(s.free, &s.last, maxBlocks, g, false)
}

// takeBack adds the blocks of g, zeroed if zero is set, to free, which it
// returns. It keeps no more free blocks than the larger of g and the
// generation before it (*last, then set to len(g)), and at most bound; the
// others are left to the collector. g's entries are cleared.
func takeBack[T any](free [][]T, last *int, bound int, g [][]T, zero bool) [][]T {
	keep := min(bound, max(len(g), *last))
	*last = len(g)
	for i, b := range g {
		if len(free) < keep {
			if zero {
				clear(b)
			}
			free = append(free, b)
		}
		g[i] = nil
	}
	for len(free) > keep {
		free[len(free)-1] = nil
		free = free[:len(free)-1]
	}
	return free
}

// Of carves values of type T out of blocks, of 256 values unless NewOf says
// otherwise. The zero value is ready.
type Of[T any] struct {
	free  []T
	n     int
	arena arena[T]
}

// Retain makes the slab keep its blocks for Reset.
func (s *Of[T]) Retain() { s.arena.retain, s.arena.zero = true, true }

// Reset hands the blocks kept since Retain out again, from the first, each
// zeroed as it is handed out. Every value handed out before is then dead.
func (s *Of[T]) Reset() {
	s.free = nil
	s.arena.reset()
}

// blockLen is the number of values in a block of s.
func (s *Of[T]) blockLen() int {
	if s.n > 0 {
		return s.n
	}
	return 256
}

// NewOf returns a slab of T with blocks of n values.
func NewOf[T any](n int) *Of[T] { return &Of[T]{n: n} }

// New returns a pointer to a zero T.
func (s *Of[T]) New() *T { return &s.Slice(1)[0] }

// Slice returns n zero values of T, with capacity n.
func (s *Of[T]) Slice(n int) []T {
	if len(s.free) < n {
		s.free = s.arena.block(s.blockLen(), n)
	}
	v := s.free[:n:n]
	s.free = s.free[n:]
	return v
}

// Pool carves values of type T out of blocks like Of, and reuses blocks as
// a Recycler does: values are handed out in generations, and a generation
// given back has its blocks zeroed and handed out again. It suits values
// that hold pointers and die together, such as the records of one Kafka
// transaction: reused, they cost neither an allocation nor the collector's
// work to find them dead. It keeps at most as many free blocks as the
// larger of the last two generations it took back, and at most
// poolMaxBlocks. The zero value is ready.
type Pool[T any] struct {
	cur  []T // the rest of the block being carved
	used [][]T
	free [][]T
	last int
}

// poolBlock is the number of values in a Pool block, and poolMaxBlocks
// bounds the blocks a Pool tracks per generation and keeps free: 12,288
// values, more than the records of a snapshot chunk's transaction. A
// tracked value lives until its generation is recycled, so the bound is
// what a huge transaction keeps of them.
const (
	poolBlock     = 256
	poolMaxBlocks = 48
)

// New returns a pointer to a zero T of the current generation.
func (s *Pool[T]) New() *T {
	if len(s.cur) == 0 {
		var b []T
		if n := len(s.free); n > 0 {
			b, s.free[n-1] = s.free[n-1], nil
			s.free = s.free[:n-1]
		} else {
			b = make([]T, poolBlock)
		}
		if len(s.used) < poolMaxBlocks {
			s.used = append(s.used, b)
		}
		s.cur = b
	}
	v := &s.cur[0]
	s.cur = s.cur[1:]
	return v
}

// Cut ends the current generation and returns its blocks.
func (s *Pool[T]) Cut() [][]T {
	g := s.used
	s.used, s.cur = nil, nil
	return g
}

// Recycle takes back the blocks of g, a generation from Cut, none of whose
// values may be referenced any more: they are zeroed and handed out again.
func (s *Pool[T]) Recycle(g [][]T) {
	s.free = takeBack(s.free, &s.last, poolMaxBlocks, g, true)
}

// arena hands out the blocks of a Bytes or an Of. Unless retain is set it
// allocates each block, of the slab's block size, and forgets it, which is
// what makes a slab's values safe to keep for as long as anyone likes.
//
// With retain set it remembers its blocks (a larger one, made for one large
// value, is left to the collector), and after reset hands them out again in
// order, zeroed first if zero is set: just before use, while the block is
// about to be written anyway, rather than all at once at reset. Its first
// block is a sixteenth of the slab's block size and each next one doubles,
// up to that size: a retaining slab is kept per snapshot chunk, and a chunk
// of a small table then holds kilobytes rather than a full block of each
// kind, however many such chunks wait for their commit.
type arena[T any] struct {
	retain bool
	zero   bool
	blocks [][]T
	next   int // blocks[next:] are free after a reset
}

// rampSteps is how many blocks a retaining arena takes to reach the full
// block size: each doubles, from full>>rampSteps.
const rampSteps = 4

// block returns the next block for a slab whose blocks hold full values,
// with room for at least n.
func (a *arena[T]) block(full, n int) []T {
	if !a.retain {
		return make([]T, max(full, n))
	}
	if n > full {
		return make([]T, n)
	}
	size := max(n, min(full, max(full>>rampSteps, 1)<<min(a.next, rampSteps)))
	k := a.next
	a.next++
	if k < len(a.blocks) && len(a.blocks[k]) >= size {
		b := a.blocks[k]
		if a.zero {
			clear(b)
		}
		return b
	}
	b := make([]T, size)
	if k < len(a.blocks) {
		a.blocks[k] = b
	} else {
		a.blocks = append(a.blocks, b)
	}
	return b
}

func (a *arena[T]) reset() { a.next = 0 }
