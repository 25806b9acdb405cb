// Package slab hands out small values carved from large blocks, so that
// building many of them (the column values of a row, the records of a Kafka
// transaction) costs one allocation per block instead of one per value.
//
// Invariant: a value, once handed out, is never written again by the slab,
// and a block is never reused: the collector frees it when nothing handed
// out from it is referenced any more. So a value may live as long as its
// user needs it, at the price of keeping its block alive until then.
//
// A slab is not safe for concurrent use: each goroutine that builds values
// owns its own.
package slab

// blockBytes is the size of a Bytes block.
const blockBytes = 64 << 10

// Bytes carves byte slices out of 64 KiB blocks. The zero value is ready.
type Bytes struct{ buf []byte }

// Grow makes room for n more bytes and returns the slice to append the
// next value to. Appending more than n bytes is allowed: append then moves
// to a larger array, and Keep follows it.
func (s *Bytes) Grow(n int) []byte {
	if cap(s.buf)-len(s.buf) < n {
		s.buf = make([]byte, 0, max(blockBytes, n))
	}
	return s.buf
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

// Of carves values of type T out of blocks, of 256 values unless NewOf says
// otherwise. The zero value is ready.
type Of[T any] struct {
	free []T
	n    int
}

// NewOf returns a slab of T with blocks of n values.
func NewOf[T any](n int) *Of[T] { return &Of[T]{n: n} }

// New returns a pointer to a zero T.
func (s *Of[T]) New() *T { return &s.Slice(1)[0] }

// Slice returns n zero values of T, with capacity n.
func (s *Of[T]) Slice(n int) []T {
	if len(s.free) < n {
		block := s.n
		if block <= 0 {
			block = 256
		}
		s.free = make([]T, max(block, n))
	}
	v := s.free[:n:n]
	s.free = s.free[n:]
	return v
}
