package slab

import (
	"bytes"
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
