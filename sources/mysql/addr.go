package mysql

import (
	"fmt"
	"strconv"

	"github.com/go-mysql-org/go-mysql/client"
)

// MariaDB's UUID, INET6 and INET4 types are fixed-length binary strings in
// the binlog (16, 16 and 4 bytes), with nothing in the TABLE_MAP to tell
// them from BINARY(16) or BINARY(4); a SELECT returns their text. Both
// paths write the server's text: the binlog path learns which columns have
// these types from information_schema when it builds a table's codec, and
// formats the bytes the way the server does.

// textTypedColumns returns the columns of db.tbl whose DATA_TYPE is one of
// these (a types row with a textLen), by name.
func textTypedColumns(c *client.Conn, db, tbl string) (map[string]string, error) {
	rows, err := queryRows(c, `SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = `+quoteString(db)+` AND TABLE_NAME = `+quoteString(tbl)+` AND DATA_TYPE IN ('uuid', 'inet6', 'inet4')`)
	if err != nil {
		return nil, fmt.Errorf("mysql: read the UUID and INET columns of %s.%s: %w", db, tbl, err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r[0]] = r[1]
	}
	return out, nil
}

// textTypedEncoder returns the binlog encoder of a column of DATA_TYPE
// dataType stored in n bytes.
func textTypedEncoder(dataType string, n int) encoder {
	var format func(dst, raw []byte) []byte
	switch dataType {
	case "uuid":
		format = appendUUID
	case "inet6":
		format = appendInet6
	default:
		format = appendInet4
	}
	return func(b []byte, v any) []byte {
		raw, ok := rawBytes(v)
		if !ok {
			return badValue(b, v)
		}
		if len(raw) > n {
			return encBytes(b, raw)
		}
		var full [16]byte // the binlog drops trailing zero bytes
		copy(full[:], raw)
		b = append(b, '"')
		b = format(b, full[:n])
		return append(b, '"')
	}
}

// appendUUID writes 16 bytes as MariaDB prints a UUID: lowercase hex in
// groups of 8-4-4-4-12.
func appendUUID(dst, raw []byte) []byte {
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

const hexDigits = "0123456789abcdef"

func appendInet4(dst, raw []byte) []byte {
	for i, c := range raw {
		if i > 0 {
			dst = append(dst, '.')
		}
		dst = strconv.AppendUint(dst, uint64(c), 10)
	}
	return dst
}

// appendInet6 writes 16 bytes as MariaDB prints an INET6: eight groups of
// lowercase hex without leading zeros, the longest run of zero groups (the
// first, on a tie; unlike RFC 5952, a single zero group too) written as
// "::", and the last four bytes
// in dotted form for an IPv4-compatible (::a.b.c.d) or IPv4-mapped
// (::ffff:a.b.c.d) address.
func appendInet6(dst, raw []byte) []byte {
	var w [8]uint16
	for i := range w {
		w[i] = uint16(raw[2*i])<<8 | uint16(raw[2*i+1])
	}
	gapPos, gapLen := -1, 0
	for i := 0; i < 8; {
		if w[i] != 0 {
			i++
			continue
		}
		j := i
		for j < 8 && w[j] == 0 {
			j++
		}
		if j-i > gapLen {
			gapPos, gapLen = i, j-i
		}
		i = j
	}
	for i := 0; i < 8; i++ {
		if i == gapPos {
			if i == 0 {
				dst = append(dst, ':')
			}
			dst = append(dst, ':')
			continue
		}
		if gapPos >= 0 && i > gapPos && i < gapPos+gapLen {
			continue
		}
		if i == 6 && gapPos == 0 && (gapLen == 6 || gapLen == 5 && w[5] == 0xffff) {
			return appendInet4(dst, raw[12:])
		}
		dst = strconv.AppendUint(dst, uint64(w[i]), 16)
		if i < 7 {
			dst = append(dst, ':')
		}
	}
	return dst
}
