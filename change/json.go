package change

import (
	"strconv"
	"unicode/utf8"
)

// EncodeKey returns the canonical JSON object {"name":value,...} of the given
// key columns, in the order given. values are already-encoded JSON values.
func EncodeKey(names []string, values [][]byte) []byte {
	n := 2
	for i := range names {
		n += len(names[i]) + len(values[i]) + 4
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, names[i])
		b = append(b, ':')
		if values[i] == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, values[i]...)
		}
	}
	return append(b, '}')
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
	start := 0
	for i := 0; i < len(s); {
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
