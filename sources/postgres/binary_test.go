package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// TestBinaryTimestampMatchesServerText reads the same timestamps and
// timestamptzs from the server as text and as binary, and checks that the
// binary readers make exactly the server's text of every value: the
// infinities, both ends of the range, BC years, years past 9999, leap days
// of every kind of century, fractions of every length, and random values
// over the whole range.
func TestBinaryTimestampMatchesServerText(t *testing.T) {
	e := startPG(t)
	ctx := context.Background()
	for k, v := range sessionParams {
		if _, err := e.admin.Exec(ctx, fmt.Sprintf("SET %s = '%s'", k, v)); err != nil {
			t.Fatal(err)
		}
	}
	fixed := []string{
		"infinity", "-infinity",
		"4714-11-24 00:00:00 BC", "294276-12-31 23:59:59.999999",
		"0001-01-01 00:00:00", "0001-12-31 23:59:59.999999 BC", "0001-03-01 00:00:00 BC", "0005-02-29 12:00:00 BC",
		"1970-01-01 00:00:00", "1999-12-31 23:59:59.999999", "2000-01-01 00:00:00", "2000-01-01 00:00:00.000001",
		"1900-02-28 23:59:59", "1900-03-01 00:00:00", "1600-02-29 00:00:00", "2000-02-29 13:14:15.5",
		"2024-02-29 00:00:00.1", "2024-01-31 12:34:56.123456", "2024-01-31 12:34:56.12345", "2024-01-31 12:34:56.00001",
		"9999-12-31 23:59:59.999999", "10000-01-01 00:00:00", "123456-07-08 09:10:11.012",
	}
	var lits []string
	for _, f := range fixed {
		lits = append(lits, "('"+f+"')")
	}
	for _, typ := range []string{"timestamp", "timestamptz"} {
		col, err := resolveType(map[string]uint32{"timestamp": oidTimestamp, "timestamptz": oidTimestamptz}[typ], -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		lo := "'4714-11-24 00:00:00 BC'::" + typ
		sql := fmt.Sprintf(`SELECT v::%[1]s::text, v::%[1]s FROM (VALUES %[2]s) f(v)
UNION ALL SELECT v::text, v FROM (
  SELECT %[3]s + floor(random() * 109000000) * interval '1 day' + floor(random() * 86400e6) * interval '1 microsecond' AS v FROM generate_series(1, 20000)
  UNION ALL SELECT (timestamp '1582-10-01' + g * interval '1 day' + g * interval '1.001 microsecond')::%[1]s FROM generate_series(-1000000, 1000000, 997) g
) q`, typ, strings.Join(lits, ", "), lo)
		if _, err := e.admin.Exec(ctx, "SELECT setseed(0.5)"); err != nil {
			t.Fatal(err)
		}
		rr := e.admin.PgConn().ExecParams(ctx, sql, nil, nil, nil, []int16{0, binaryFormat})
		n := 0
		for rr.NextRow() {
			text, bin := rr.Values()[0], rr.Values()[1]
			got, ok := col.binary(nil, bin)
			if !ok || string(got) != string(text) {
				t.Errorf("%s %x: binary reader made %q, the server's text is %q", typ, bin, got, text)
			}
			if a, b := col.enc(nil, got), col.enc(nil, text); string(a) != string(b) {
				t.Errorf("%s %s: encodes as %s, not %s", typ, text, a, b)
			}
			n++
		}
		if _, err := rr.Close(); err != nil {
			t.Fatal(err)
		}
		if n < 22000 {
			t.Fatalf("%s: compared %d values", typ, n)
		}
	}
}

// refTimestampText is PostgreSQL's ISO text output of a timestamp, written
// with Go's own calendar, for the fuzzer to compare appendTimestampText
// against.
func refTimestampText(micros int64, tz bool) string {
	switch micros {
	case math.MaxInt64:
		return "infinity"
	case math.MinInt64:
		return "-infinity"
	}
	secs, us := micros/1e6, micros%1e6
	if us < 0 {
		secs, us = secs-1, us+1e6
	}
	tm := time.Unix(secs+946_684_800, us*1000).UTC()
	year, bc := tm.Year(), ""
	if year <= 0 {
		year, bc = 1-year, " BC"
	}
	s := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", year, tm.Month(), tm.Day(), tm.Hour(), tm.Minute(), tm.Second())
	if us := tm.Nanosecond() / 1000; us != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", us), "0")
	}
	if tz {
		s += "+00"
	}
	return s + bc
}

// PostgreSQL's timestamps run from 4714-11-24 BC to 294276-12-31.
const (
	minPGMicros = -211_813_488_000_000_000
	maxPGMicros = 9_223_371_331_199_999_999
)

func FuzzBinaryTimestamp(f *testing.F) {
	for _, v := range []int64{0, -1, 1, math.MaxInt64, math.MinInt64, minPGMicros, maxPGMicros, 86_400_000_000, -86_400_000_000 * 730_120} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, micros int64) {
		if micros != math.MaxInt64 && micros != math.MinInt64 && (micros < minPGMicros || micros > maxPGMicros) {
			return // not a value the server can hold
		}
		var bin [8]byte
		binary.BigEndian.PutUint64(bin[:], uint64(micros))
		for _, tz := range []bool{false, true} {
			read := binaryTimestamp
			if tz {
				read = binaryTimestamptz
			}
			got, ok := read([]byte("x"), bin[:])
			if want := "x" + refTimestampText(micros, tz); !ok || string(got) != want {
				t.Fatalf("%d (tz %v): %q, want %q", micros, tz, got, want)
			}
		}
		if _, ok := binaryTimestamp(nil, bin[:7]); ok {
			t.Fatal("7 bytes read as a timestamp")
		}
	})
}
