package main

import "testing"

func TestParseLSN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"0/0", 0},
		{"0/16B3748", 0x16B3748},
		{"1/1EAA1E78", 1<<32 | 0x1EAA1E78},
		{"", 0},
		{"garbage", 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := parseLSN(tc.in); got != tc.want {
				t.Fatalf("parseLSN(%q) = %X, want %X", tc.in, got, tc.want)
			}
			if tc.want != 0 && parseLSN(fmtLSN(tc.want)) != tc.want {
				t.Fatalf("fmtLSN does not round-trip %X", tc.want)
			}
		})
	}
}

func TestGTIDSeq(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"0-1-1234", 1234},
		{"1-7-88,0-1-5", 5},
		{"1-7-88", 0},
		{"", 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := gtidSeq(tc.in); got != tc.want {
				t.Fatalf("gtidSeq(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	for _, tc := range []struct {
		p    float64
		want float64
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentile(xs, tc.p); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v, want 0", got)
	}
}

func TestSetLimitsTakesTheSmallest(t *testing.T) {
	var r result
	r.setLimits(50, limit{"source", 100}, limit{"produce", 400}, limit{"unknown", 0})
	if r.LimitName != "source" || *r.LimitRate != 100 || *r.Ratio != 0.5 {
		t.Fatalf("got limit %s %v ratio %v, want source 100 ratio 0.5", r.LimitName, *r.LimitRate, *r.Ratio)
	}
}
