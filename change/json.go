package change

import (
	"strconv"
	"unicode/utf8"
)

// EncodeKey returns the canonical JSON object {"name":value,...} of the given
// key columns, in the order given. values are already-encoded JSON values.
func EncodeKey(names []string, values [][]byte) []byte {
	return appendKey(make([]byte, 0, keySize(names, nil, values)), names, nil, values)
}

// keySize is the room the key of names takes: values[idx[i]], or values[i]
// when idx is nil, under names[i].
func keySize(names []string, idx []int, values [][]byte) int {
	n := 2
	for i := range names {
		n += len(names[i]) + len(values[keyIndex(idx, i)]) + 4
	}
	return n
}

// appendKey appends the key object of names and their values, taken as in
// keySize.
func appendKey(b []byte, names []string, idx []int, values [][]byte) []byte {
	b = append(b, '{')
	for i := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, names[i])
		b = append(b, ':')
		if v := values[keyIndex(idx, i)]; v == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, v...)
		}
	}
	return append(b, '}')
}

func keyIndex(idx []int, i int) int {
	if idx == nil {
		return i
	}
	return idx[i]
}

// ObjectKeys returns the member key of each name, encoded once for many
// rows: the JSON string and its colon.
func ObjectKeys(names []string) [][]byte {
	keys := make([][]byte, len(names))
	for i, n := range names {
		keys[i] = append(AppendString(nil, n), ':')
	}
	return keys
}

// ObjectSize is the room the keys from ObjectKeys take in an object: the
// braces, the keys and the commas between members.
func ObjectSize(keys [][]byte) int {
	n := 2
	for _, k := range keys {
		n += len(k) + 1
	}
	return n
}

// ObjectWriter writes a JSON object into one buffer member by member, and
// hands out each member's value as a slice of that buffer. A value keeps its
// bytes even if a later append moves the buffer, since nothing writes to the
// old array again.
type ObjectWriter struct {
	// B is the buffer; the caller appends each value to it after Key.
	B     []byte
	start int
}

// Open starts an object at the end of b.
func (w *ObjectWriter) Open(b []byte) {
	w.start = len(b)
	w.B = append(b, '{')
}

// Key writes the separator and the member key (from ObjectKeys), and returns
// the mark that Value takes once the value is appended to B.
func (w *ObjectWriter) Key(key []byte) int {
	if len(w.B) > w.start+1 {
		w.B = append(w.B, ',')
	}
	w.B = append(w.B, key...)
	return len(w.B)
}

// Value returns what was appended to B since mark, capped so that an append
// to it cannot write into the buffer.
func (w *ObjectWriter) Value(mark int) []byte { return w.B[mark:len(w.B):len(w.B)] }

// Close ends the object and returns it, capped like Value.
func (w *ObjectWriter) Close() []byte {
	w.B = append(w.B, '}')
	return w.B[w.start:len(w.B):len(w.B)]
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does.
func AppendString(b []byte, s string) []byte { return appendString(b, s) }

// AppendBytes is AppendString for text held in a byte slice. It spares the
// copy that AppendString(b, string(s)) makes.
func AppendBytes(b, s []byte) []byte { return appendString(b, s) }

func appendString[T ~string | ~[]byte](b []byte, s T) []byte {
	b = append(b, '"')
	start, words := 0, 0
	for i := 0; i < len(s); {
		// Most text needs no escaping: skip it eight bytes at a time. Where
		// a word needs attention, its bytes go one by one before the next
		// try, so text full of escapes pays one test per eight bytes.
		if i >= words {
			for i+8 <= len(s) && plain8(load64(s, i)) {
				i += 8
			}
			if i == len(s) {
				break
			}
			words = i + 8
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// load64 reads the eight bytes of s from i on, the first in the low byte.
func load64[T ~string | ~[]byte](s T, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// plain8 reports whether none of the eight bytes in x needs attention from
// appendString: each is ASCII, at least 0x20, and none of " \ < > &.
//
// It uses the word-at-a-time tests for a zero byte, (v-ones) & ^v & highs,
// and for a byte below n, (v - n*ones) & ^v & highs. Both are exact about
// whether such a byte exists once every byte is known to be below 0x80.
func plain8(x uint64) bool {
	if x&highs != 0 {
		return false
	}
	zero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	ctl := (x - 0x20*ones) & ^x & highs
	// " (0x22) and & (0x26) differ only in bit 2, < (0x3c) and > (0x3e)
	// only in bit 1: clearing that bit tests each pair at once, and no other
	// byte maps onto the pair.
	quoteAmp := zero((x &^ (0x04 * ones)) ^ ('"' * ones))
	angle := zero((x &^ (0x02 * ones)) ^ ('<' * ones))
	return ctl|quoteAmp|angle|zero(x^('\\'*ones)) == 0
}

// decodeRune is utf8.DecodeRune for either kind of text, without a copy of
// s: a rune is at most utf8.UTFMax bytes long.
func decodeRune[T ~string | ~[]byte](s T) (rune, int) {
	var buf [utf8.UTFMax]byte
	n := copy(buf[:], s)
	return utf8.DecodeRune(buf[:n])
}

// AppendInt appends v as a JSON number.
func AppendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }

// String returns s encoded as a JSON string value.
func String(s string) []byte { return AppendString(nil, s) }

// Null is the JSON null value, for SQL NULL.
var Null = []byte("null")

// IsNumber reports whether s is a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. Encoders that pass a
// server's number text through unquoted check it with IsNumber, so a text
// JSON cannot hold (a leading zero, a sign or dot out of place) becomes a
// string rather than a broken value.
func IsNumber[T ~string | ~[]byte](s T) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

func skipDigits[T ~string | ~[]byte](s T, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
