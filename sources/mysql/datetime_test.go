package mysql

import (
	"math/rand/v2"
	"testing"
	"time"
)

// appendDatetime writes what go-mysql's own string form holds: Go's layout
// with dec fractional digits, truncated, for every precision.
func TestAppendDatetimeMatchesLayout(t *testing.T) {
	layouts := []string{
		"2006-01-02 15:04:05", "2006-01-02 15:04:05.0", "2006-01-02 15:04:05.00", "2006-01-02 15:04:05.000",
		"2006-01-02 15:04:05.0000", "2006-01-02 15:04:05.00000", "2006-01-02 15:04:05.000000",
	}
	r := rand.New(rand.NewPCG(1, 2))
	lo := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	times := []time.Time{
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2024, 1, 31, 12, 34, 56, 123456000, time.UTC),
		time.Date(2024, 1, 31, 12, 34, 56, 900000000, time.UTC),
	}
	for range 2000 {
		times = append(times, time.Unix(lo+r.Int64N(hi-lo), int64(r.IntN(1000000))*1000).UTC())
	}
	for _, tm := range times {
		for dec, layout := range layouts {
			if got, want := string(appendDatetime(nil, tm, dec)), tm.Format(layout); got != want {
				t.Fatalf("appendDatetime(%v, %d) = %s, want %s", tm, dec, got, want)
			}
		}
	}
	// A TIMESTAMP comes in local time and is written in UTC.
	local := time.Date(2024, 6, 1, 2, 3, 4, 5000, time.FixedZone("x", 5*3600))
	if got := string(timestampEncoder(6)(nil, local)); got != `"2024-05-31 21:03:04.000005Z"` {
		t.Fatalf("timestampEncoder = %s", got)
	}
	if got := string(datetimeEncoder(0)(nil, "0000-00-00 00:00:00")); got != "null" {
		t.Fatalf("zero DATETIME = %s, want null", got)
	}
}
