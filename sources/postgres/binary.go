package postgres

import (
	"encoding/binary"
	"math"
)

// Snapshot chunk queries read some types in PostgreSQL's binary format,
// because the server spends much less on sending them that way than on
// their text output (a timestamptz's text output converts to the session's
// time zone and formats a calendar date on every row). The pgoutput stream
// always sends text, and one type has one encoder, so a column read in
// binary is turned back into exactly the text the server would have sent
// and then goes through the same encoder as the stream's values.

// binaryText appends the server's text output of a value, given its binary
// form; ok is false when the binary form is not one this source knows.
type binaryText func(dst, bin []byte) (out []byte, ok bool)

// Microseconds in a day, and days from 0000-03-01 (the origin of the civil
// calendar arithmetic below) to 2000-01-01, PostgreSQL's epoch.
const (
	microsPerDay   = 86_400_000_000
	daysTo2000From = 730_425
)

func binaryTimestamp(dst, bin []byte) ([]byte, bool) {
	if len(bin) != 8 {
		return dst, false
	}
	return appendTimestampText(dst, int64(binary.BigEndian.Uint64(bin)), false), true
}

func binaryTimestamptz(dst, bin []byte) ([]byte, bool) {
	if len(bin) != 8 {
		return dst, false
	}
	return appendTimestampText(dst, int64(binary.BigEndian.Uint64(bin)), true), true
}

// appendTimestampText appends what PostgreSQL prints for a timestamp (tz
// false) or a timestamptz in time zone UTC (tz true) with DateStyle ISO,
// given micros since 2000-01-01 00:00:00: "2024-01-31 12:34:56.5+00", with
// the fraction's trailing zeros dropped, a four-digit year at least, " BC"
// after years before 1, and infinity and -infinity as words.
func appendTimestampText(dst []byte, micros int64, tz bool) []byte {
	switch micros {
	case math.MaxInt64:
		return append(dst, "infinity"...)
	case math.MinInt64:
		return append(dst, "-infinity"...)
	}
	days := micros / microsPerDay
	tod := micros % microsPerDay
	if tod < 0 {
		days--
		tod += microsPerDay
	}
	year, month, day := civilDate(days + daysTo2000From)
	bc := year <= 0
	if bc {
		year = 1 - year
	}
	dst = appendPadded(dst, year, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, month, 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, day, 2)
	dst = append(dst, ' ')
	secs := tod / 1_000_000
	dst = appendPadded(dst, secs/3600, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, secs/60%60, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, secs%60, 2)
	if frac := tod % 1_000_000; frac != 0 {
		digits := 6
		for frac%10 == 0 {
			frac /= 10
			digits--
		}
		dst = append(dst, '.')
		dst = appendPadded(dst, frac, digits)
	}
	if tz {
		dst = append(dst, "+00"...)
	}
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

// civilDate turns a day count from 0000-03-01 of the proleptic Gregorian
// calendar into year (astronomical: 0 is 1 BC), month and day. The
// calendar repeats every 400 years (146,097 days); inside an era, years
// start on March 1, so the leap day is the last day of a year.
func civilDate(d int64) (year, month, day int64) {
	era := d / 146_097
	if d < 0 && d%146_097 != 0 {
		era--
	}
	doe := d - era*146_097                                   // day of era, 0..146096
	yoe := (doe - doe/1460 + doe/36_524 - doe/146_096) / 365 // year of era, 0..399
	doy := doe - (365*yoe + yoe/4 - yoe/100)                 // day of year from March 1
	mp := (5*doy + 2) / 153                                  // month from March, 0..11
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// appendPadded appends v (not negative) in decimal, zero-padded to width.
func appendPadded(dst []byte, v int64, width int) []byte {
	var b [20]byte
	i := len(b)
	for v >= 10 || width > 1 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	i--
	b[i] = byte('0' + v)
	return append(dst, b[i:]...)
}
