package slab

import (
	"bytes"
	"slices"
	"testing"
)

func TestBytesKeepsValues(t *testing.T) {
	var s Bytes
	var vals [][]byte
	var want [][]byte
	for i := 0; i < 5000; i++ {
		v := bytes.Repeat([]byte{byte(i)}, i%300)
		var got []byte
		switch i % 3 {
		case 0:
			got = s.Append(v)
		case 1:
			got = s.Keep(append(s.Grow(len(v)), v...))
		default:
			// More than announced: append moves to a larger array.
			got = s.Keep(append(append(s.Grow(1), v...), v...))
			v = append(append([]byte(nil), v...), v...)
		}
		if cap(got) != len(got) {
			t.Fatalf("value %d: cap %d > len %d, an append could overwrite the next value", i, cap(got), len(got))
		}
		vals, want = append(vals, got), append(want, v)
	}
	for i := range vals {
		if !bytes.Equal(vals[i], want[i]) {
			t.Fatalf("value %d changed: %v, want %v", i, vals[i], want[i])
		}
	}
}

func TestOfHandsOutDistinctValues(t *testing.T) {
	s := NewOf[int](4)
	var ps []*int
	for i := 0; i < 10; i++ {
		p := s.New()
		*p = i
		ps = append(ps, p)
	}
	sl := s.Slice(7)
	if len(sl) != 7 || cap(sl) != 7 {
		t.Fatalf("Slice(7): len %d cap %d", len(sl), cap(sl))
	}
	for i := range sl {
		sl[i] = -1
	}
	for i, p := range ps {
		if *p != i {
			t.Fatalf("value %d is %d", i, *p)
		}
	}
}

func BenchmarkBytesAppend(b *testing.B) {
	var s Bytes
	v := make([]byte, 40)
	b.ReportAllocs()
	for b.Loop() {
		s.Append(v)
	}
}

// A Recycler hands a recycled block out again, never a block of a
// generation still in use, and the values of a generation keep their bytes
// until it is recycled.
func TestRecyclerReusesOnlyRecycledBlocks(t *testing.T) {
	var s Recycler
	fill := func(tag byte, n int) [][]byte {
		var vals [][]byte
		for i := 0; i < n; i++ {
			vals = append(vals, s.Keep(append(s.Grow(1000), bytes.Repeat([]byte{tag}, 1000)...)))
		}
		return vals
	}
	check := func(vals [][]byte, tag byte) {
		t.Helper()
		for i, v := range vals {
			if !bytes.Equal(v, bytes.Repeat([]byte{tag}, 1000)) {
				t.Fatalf("value %d of generation %q was overwritten", i, tag)
			}
		}
	}
	fill('a', 200) // about 3 blocks; overwritten once recycled
	ga := s.Cut()
	b := fill('b', 200)
	gb := s.Cut()
	if len(ga) < 3 || len(gb) < 3 {
		t.Fatalf("generations of %d and %d blocks, want 3 or more", len(ga), len(gb))
	}
	first := &ga[0][:1][0]
	s.Recycle(ga)
	// A value larger than a block gets an array of its own, never kept.
	big := s.Keep(append(s.Grow(blockBytes+1), bytes.Repeat([]byte{'x'}, blockBytes+1)...))
	c := fill('c', 200)
	check(b, 'b')
	check(c, 'c')
	reused := false
	for _, blk := range s.Cut() {
		if &blk[:1][0] == first {
			reused = true
		}
		if cap(blk) == blockBytes {
			for _, old := range gb {
				if &old[:1][0] == &blk[:1][0] {
					t.Fatal("a block of a generation still in use was handed out")
				}
			}
		}
	}
	if !reused {
		t.Fatal("no recycled block was handed out again")
	}
	if len(big) != blockBytes+1 || big[blockBytes] != 'x' {
		t.Fatal("large value damaged")
	}
}

func BenchmarkRecyclerAppend(b *testing.B) {
	var s Recycler
	v := make([]byte, 900)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		s.Keep(append(s.Grow(len(v)), v...))
		if n++; n%10000 == 0 {
			s.Recycle(s.Cut())
		}
	}
}

// A Recycler keeps a bounded number of blocks, however large a generation:
// the rest are left to the collector.
func TestRecyclerKeepsBoundedBlocks(t *testing.T) {
	var s Recycler
	keepsBounded(t, maxBlocks, func(blocks int) {
		for i := 0; i < blocks*64; i++ { // 64 values of 1000 bytes a block
			s.Keep(append(s.Grow(1000), make([]byte, 1000)...))
		}
	}, func() int {
		g := s.Cut()
		s.Recycle(g)
		return len(g)
	}, func() int { return len(s.free) })
}

// keepsBounded fills a generation of four times bound blocks, three times
// over, and checks that the slab tracked (cutRecycle: Cut, then Recycle;
// it returns the generation's length) and kept free (free) at most bound.
func keepsBounded(t *testing.T, bound int, fill func(blocks int), cutRecycle, free func() int) {
	t.Helper()
	for round := 0; round < 3; round++ {
		fill(4 * bound)
		if n := cutRecycle(); n > bound {
			t.Fatalf("round %d: a generation tracks %d blocks, want at most %d", round, n, bound)
		}
		if n := free(); n > bound {
			t.Fatalf("round %d: %d free blocks, want at most %d", round, n, bound)
		}
	}
}

// After a large generation, a Recycler lets the free blocks it no longer
// needs go once two small generations have been recycled.
func TestRecyclerShrinksAfterALargeGeneration(t *testing.T) {
	var s Recycler
	gen := func(blocks int) Generation {
		for i := 0; i < blocks*64; i++ { // 64 values of 1 KiB a block
			s.Keep(append(s.Grow(1024), make([]byte, 1024)...))
		}
		return s.Cut()
	}
	s.Recycle(gen(100))
	if len(s.free) != 100 {
		t.Fatalf("after a generation of 100 blocks: %d free, want 100", len(s.free))
	}
	s.Recycle(gen(4)) // the large one may come back: still kept
	if len(s.free) != 100 {
		t.Fatalf("after a generation of 4 blocks: %d free, want 100", len(s.free))
	}
	s.Recycle(gen(4))
	if len(s.free) > 4 {
		t.Fatalf("after two generations of 4 blocks: %d free, want at most 4", len(s.free))
	}
	for i := 0; i < 10; i++ {
		s.Recycle(gen(4))
	}
	if len(s.free) != 4 {
		t.Fatalf("steady generations of 4 blocks: %d free, want 4", len(s.free))
	}
}

func TestRecyclerAppendKeepsNil(t *testing.T) {
	var s Recycler
	if v := s.Append(nil); v != nil {
		t.Fatalf("Append(nil) = %#v, want nil", v)
	}
	if v := s.Append([]byte{}); v == nil || len(v) != 0 {
		t.Fatalf("Append(empty) = %#v, want empty and not nil", v)
	}
	src := []byte("key")
	v := s.Append(src)
	src[0] = 'X'
	if string(v) != "key" || cap(v) != 3 {
		t.Fatalf("Append copied %q (cap %d), want \"key\" (cap 3)", v, cap(v))
	}
}

// A Pool hands out zero values, reuses the blocks of a generation given
// back, and never those of a generation still in use.
func TestPoolReusesOnlyRecycledBlocks(t *testing.T) {
	type rec struct {
		p *int
		n int
	}
	var s Pool[rec]
	x := 7
	fill := func(tag int) []*rec {
		var out []*rec
		for i := 0; i < 3*poolBlock; i++ {
			r := s.New()
			if r.p != nil || r.n != 0 {
				t.Fatalf("New returned a value that is not zero: %+v", *r)
			}
			r.p, r.n = &x, tag
			out = append(out, r)
		}
		return out
	}
	fill(1)
	g1 := s.Cut()
	b := fill(2)
	g2 := s.Cut()
	if len(g1) != 3 || len(g2) != 3 {
		t.Fatalf("generations of %d and %d blocks, want 3", len(g1), len(g2))
	}
	starts := map[*rec]bool{}
	for _, blk := range g1 {
		starts[&blk[0]] = true
	}
	s.Recycle(g1)
	c := fill(3)
	for _, r := range b {
		if r.n != 2 {
			t.Fatal("a value of a generation still in use was overwritten")
		}
	}
	if !starts[c[0]] {
		t.Fatal("the recycled block was not handed out again")
	}
	s.Recycle(g2)
	s.Recycle(s.Cut())
	if len(s.free) != 3 {
		t.Fatalf("%d free blocks, want 3", len(s.free))
	}
}

// A retaining slab hands its blocks out again after Reset, zeroing the
// typed ones, and a slab that does not retain never does.
func TestRetainReset(t *testing.T) {
	var b Bytes
	b.Retain()
	var o Of[*int]
	o.Retain()
	x := 1
	round := func() ([]byte, **int) {
		var first []byte
		var firstP **int
		for i := 0; i < 300; i++ { // 8 blocks of bytes, 5 of pointers, in the ramp
			v := b.Append(bytes.Repeat([]byte{byte(i)}, 1000))
			p := o.New()
			if *p != nil {
				t.Fatal("a reused typed block was not zeroed")
			}
			*p = &x
			if i == 0 {
				first, firstP = v, p
			}
		}
		return first, firstP
	}
	v1, p1 := round()
	kept, keptTyped := len(b.arena.blocks), len(o.arena.blocks)
	b.Reset()
	o.Reset()
	v2, p2 := round()
	if &v1[0] != &v2[0] || p1 != p2 {
		t.Fatal("Reset did not hand the first blocks out again")
	}
	if len(b.arena.blocks) != kept || len(o.arena.blocks) != keptTyped {
		t.Fatalf("kept %d byte blocks and %d typed blocks after a second round, want %d and %d as after the first",
			len(b.arena.blocks), len(o.arena.blocks), kept, keptTyped)
	}

	var plain Bytes
	w1 := plain.Append([]byte("a"))
	plain.Reset()
	w2 := plain.Append([]byte("b"))
	if string(w1) != "a" || &w1[0] == &w2[0] {
		t.Fatal("a slab without Retain reused a block")
	}
}

// A retaining slab starts with a sixteenth of a block and doubles up to a
// full one, so that one used for a few values holds little; one not
// retaining allocates full blocks from the first.
func TestRetainRampsUp(t *testing.T) {
	var b Bytes
	b.Retain()
	var o Of[[4]int64]
	o.Retain()
	for i := range 10 {
		b.Append([]byte("a small value"))
		o.New()[0] = int64(i)
	}
	if len(b.arena.blocks) != 1 || len(b.arena.blocks[0]) != blockBytes/16 {
		t.Fatalf("10 small values: %d byte blocks, the first of %d bytes; want one of %d", len(b.arena.blocks), len(b.arena.blocks[0]), blockBytes/16)
	}
	if len(o.arena.blocks) != 1 || len(o.arena.blocks[0]) != 16 {
		t.Fatalf("10 values: %d typed blocks, the first of %d values; want one of 16", len(o.arena.blocks), len(o.arena.blocks[0]))
	}
	var lens []int
	for range 256 * 4 {
		o.New()
	}
	for _, blk := range o.arena.blocks {
		lens = append(lens, len(blk))
	}
	if want := []int{16, 32, 64, 128, 256, 256, 256, 256}; !slices.Equal(lens[:len(want)], want) {
		t.Fatalf("typed block lengths %v, want %v first", lens, want)
	}
	// A slice larger than the ramp's block gets a block that fits it, kept
	// and reused.
	var v Of[int]
	v.Retain()
	wide := v.Slice(40)
	v.Reset()
	if again := v.Slice(40); &again[0] != &wide[0] {
		t.Fatal("a 40-value slice did not reuse its block after Reset")
	}
	var plain Of[int]
	plain.New()
	if cap(plain.free) != 255 {
		t.Fatalf("a slab without Retain: %d values left in its first block, want 255", cap(plain.free))
	}
}

// A value larger than a block gets an array of its own, which a retaining
// slab does not keep, even as its first block; its ordinary blocks are
// still reused.
func TestRetainSkipsLargeValues(t *testing.T) {
	var b Bytes
	b.Retain()
	b.Append(make([]byte, blockBytes+1))
	small := b.Append([]byte("x"))
	b.Reset()
	b.Append(make([]byte, blockBytes+1))
	again := b.Append([]byte("y"))
	if &small[0] != &again[0] || len(b.arena.blocks) != 1 {
		t.Fatalf("after a large first value: block reused %v, %d blocks kept; want the 64 KiB block reused and kept alone",
			&small[0] == &again[0], len(b.arena.blocks))
	}
}

// A Pool tracks and keeps a bounded number of blocks, however large a
// generation: the rest are left to the collector.
func TestPoolKeepsBoundedBlocks(t *testing.T) {
	var s Pool[[64]byte]
	keepsBounded(t, poolMaxBlocks, func(blocks int) {
		for i := 0; i < blocks*poolBlock; i++ {
			s.New()
		}
	}, func() int {
		g := s.Cut()
		s.Recycle(g)
		return len(g)
	}, func() int { return len(s.free) })
}
