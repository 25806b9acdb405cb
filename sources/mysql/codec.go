package mysql

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"golang.org/x/text/encoding/charmap"

	"github.com/cdcrelay/cdcrelay/change"
)

// encoder appends the JSON encoding of one non-NULL column value as decoded
// by go-mysql (ParseTime on, UseDecimal off, TIMESTAMP in UTC). Encoders are
// chosen once per table version from the TABLE_MAP metadata, so a row is
// encoded with one type switch per value and no reflection.
type encoder func(b []byte, v any) []byte

// tableCodec turns the rows of one table version into change rows.
type tableCodec struct {
	id    change.TableID
	names []string
	keys  [][]byte // names as JSON object keys (change.ObjectKeys)
	// keysLen is the room the keys take in a row's JSON object.
	keysLen int
	enc     []encoder
	// key holds the column indexes of the primary key in key order; for a
	// keyless table, every column.
	key      []int
	keyNames []string
	keyless  bool
	// chosen: key and keyNames come from source.key_columns; chunk is the
	// snapshot key (see keys.go).
	chosen bool
	chunk  []int
	// shape describes the table version for the schema fingerprint.
	shape string
}

const binaryCollation = 63

// newTableCodec builds the codec for the table version described by tm.
// keyless tells whether the table may lack a primary key. textTypes, when
// set, is asked once, if the table has a binary string of 4 or 16 bytes,
// which of its columns are MariaDB UUID, INET6 or INET4 (addr.go).
func newTableCodec(tm *replication.TableMapEvent, keyless bool, textTypes func() map[string]string) (c *tableCodec, err error) {
	id := change.TableID{Namespace: string(tm.Schema), Name: string(tm.Table)}
	// go-mysql's metadata accessors index without bounds checks; a
	// malformed TABLE_MAP must become an error, not a crash.
	defer func() {
		if p := recover(); p != nil {
			c, err = nil, fmt.Errorf("mysql: TABLE_MAP of %s has inconsistent metadata: %v", id, p)
		}
	}()
	n := int(tm.ColumnCount)
	names := tm.ColumnNameString()
	if len(names) != n {
		return nil, fmt.Errorf("mysql: TABLE_MAP of %s carries no column names; set binlog_row_metadata=FULL on the server", id)
	}
	c = &tableCodec{id: id, names: names, keys: change.ObjectKeys(names), enc: make([]encoder, n)}
	c.keysLen = change.ObjectSize(c.keys)
	unsigned := tm.UnsignedMap()
	collations := tm.CollationMap()
	enums := tm.EnumStrValueMap()
	sets := tm.SetStrValueMap()
	var texts map[string]string
	for i := 0; i < n; i++ {
		e, err := columnEncoder(tm.ColumnType[i], tm.ColumnMeta[i], unsigned[i], collations[i], enums[i], sets[i])
		if err != nil {
			return nil, fmt.Errorf("mysql: %s column %q: %v", id, names[i], err)
		}
		if l := stringLength(tm.ColumnMeta[i]); textTypes != nil && realType(tm.ColumnType[i], tm.ColumnMeta[i]) == gomysql.MYSQL_TYPE_STRING &&
			collations[i] == binaryCollation && (l == 16 || l == 4) {
			if texts == nil {
				texts = textTypes()
			}
			if dt, ok := texts[names[i]]; ok && typeOf(dt).textLen == l {
				e = typeOf(dt).binlog(binlogCol{})
			}
		}
		c.enc[i] = e
	}
	for _, k := range tm.PrimaryKey {
		if int(k) >= n {
			return nil, fmt.Errorf("mysql: TABLE_MAP of %s names primary-key column %d of %d", id, k, n)
		}
		c.key = append(c.key, int(k))
	}
	if len(c.key) == 0 {
		if !keyless {
			return nil, fmt.Errorf("mysql: %s has no primary key; add one or list the table in source.keyless", id)
		}
		c.keyless = true
		for i := 0; i < n; i++ {
			c.key = append(c.key, i)
		}
	}
	c.keyNames = make([]string, len(c.key))
	for i, k := range c.key {
		c.keyNames[i] = names[k]
	}
	return c, nil
}

// row encodes one row image. skipped lists columns absent from the image
// (only with binlog_row_image other than FULL); they are left out.
func (c *tableCodec) row(a *change.Alloc, vals []any, skipped []int) (r *change.Row, err error) {
	if len(vals) != len(c.enc) {
		return nil, fmt.Errorf("mysql: %s row has %d values for %d columns", c.id, len(vals), len(c.enc))
	}
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("mysql: %s: undecodable row value: %v", c.id, p)
		}
	}()
	return c.encodeRow(a, vals, skipped), nil
}

// encodeRow is row without the recover; the fuzz test calls it directly so
// that a panic shows.
//
// The values and the row's JSON object are written together into one
// buffer (change.ObjectWriter), each value a slice of the object, and the
// row is carved from a's slabs.
func (c *tableCodec) encodeRow(a *change.Alloc, vals []any, skipped []int) *change.Row {
	values := a.Values.Slice(len(vals))
	n := c.keysLen
	for _, v := range vals {
		switch x := v.(type) {
		case string:
			n += len(x) + 8
		case []byte:
			n += len(x)*4/3 + 8 // base64 for binary columns
		default:
			n += 24
		}
	}
	var w change.ObjectWriter
	w.Open(a.Bytes.Grow(n))
	for i, v := range vals {
		if slices.Contains(skipped, i) {
			continue
		}
		m := w.Key(c.keys[i])
		if v == nil {
			w.B = append(w.B, "null"...)
		} else {
			w.B = c.enc[i](w.B, v)
		}
		values[i] = w.Value(m)
	}
	row := a.Rows.New()
	*row = change.Row{Names: c.names, Values: values, JSON: w.Close()}
	a.Bytes.Keep(w.B)
	return row
}

// keyOf returns the canonical key of a row encoded by row, built in a.
func (c *tableCodec) keyOf(a *change.Alloc, r *change.Row) []byte {
	return a.Key(c.keyNames, c.key, r.Values)
}

// sameKey reports whether two rows encoded by row have the same key.
func (c *tableCodec) sameKey(x, y *change.Row) bool {
	for _, k := range c.key {
		if !bytes.Equal(x.Values[k], y.Values[k]) {
			return false
		}
	}
	return true
}

// realType resolves the type byte and metadata of a STRING column, which
// the binlog also uses for ENUM and SET.
func realType(tp byte, meta uint16) byte {
	if tp == gomysql.MYSQL_TYPE_STRING && meta >= 256 {
		b0 := byte(meta >> 8)
		if b0 == gomysql.MYSQL_TYPE_ENUM || b0 == gomysql.MYSQL_TYPE_SET {
			return b0
		}
	}
	return tp
}

func encSigned(b []byte, v any) []byte {
	switch x := v.(type) {
	case int8:
		return strconv.AppendInt(b, int64(x), 10)
	case int16:
		return strconv.AppendInt(b, int64(x), 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	}
	return badValue(b, v)
}

// encUnsigned reinterprets go-mysql's signed decoding of an unsigned column.
func encUnsigned(b []byte, v any) []byte {
	switch x := v.(type) {
	case int8:
		return strconv.AppendUint(b, uint64(uint8(x)), 10)
	case int16:
		return strconv.AppendUint(b, uint64(uint16(x)), 10)
	case int32:
		return strconv.AppendUint(b, uint64(uint32(x)), 10)
	case int64:
		return strconv.AppendUint(b, uint64(x), 10)
	}
	return badValue(b, v)
}

// encUnsigned24 handles MEDIUMINT UNSIGNED, which go-mysql decodes
// sign-extended from 24 bits.
func encUnsigned24(b []byte, v any) []byte {
	if x, ok := v.(int32); ok {
		return strconv.AppendUint(b, uint64(uint32(x)&0xFFFFFF), 10)
	}
	return badValue(b, v)
}

func encDecimal(b []byte, v any) []byte {
	s, ok := v.(string)
	if !ok || !isDecimal(s) {
		return badValue(b, v)
	}
	return append(b, s...)
}

// isDecimal checks the shape -?digits(.digits)? so that the value can go
// into the JSON as a bare number.
func isDecimal(s string) bool {
	if strings.HasPrefix(s, "-") {
		s = s[1:]
	}
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && digits > 0:
			dot = true
			digits = 0
		default:
			return false
		}
	}
	return digits > 0
}

func encFloat(b []byte, v any) []byte {
	switch x := v.(type) {
	case float32:
		return appendFloat(b, float64(x), 32)
	case float64:
		return appendFloat(b, x, 64)
	}
	return badValue(b, v)
}

func appendFloat(b []byte, f float64, bits int) []byte {
	if f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
		return append(b, "null"...) // NaN and infinities have no JSON form
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

func encBool(b []byte, v any) []byte {
	if x, ok := v.(int64); ok {
		return strconv.AppendBool(b, x != 0)
	}
	return badValue(b, v)
}

func bitEncoder(n int) encoder {
	return func(b []byte, v any) []byte {
		x, ok := v.(int64)
		if !ok {
			return badValue(b, v)
		}
		var raw [8]byte
		for i := 0; i < n; i++ {
			raw[i] = byte(uint64(x) >> (8 * (n - 1 - i)))
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, raw[:n])
		return append(b, '"')
	}
}

// encDate writes YYYY-MM-DD; a zero or partly zero date ('0000-00-00',
// '2024-00-10'), which no Flink type can hold, becomes null.
func encDate(b []byte, v any) []byte {
	s, ok := v.(string)
	if !ok {
		return badValue(b, v)
	}
	if zeroDate(s) {
		return append(b, "null"...)
	}
	return change.AppendString(b, s)
}

func zeroDate(s string) bool {
	return len(s) < 10 || s[:4] == "0000" || s[5:7] == "00" || s[8:10] == "00"
}

func encDatetime(b []byte, v any) []byte {
	s, ok := v.(string)
	if !ok {
		return badValue(b, v)
	}
	if zeroDate(s) {
		return append(b, "null"...)
	}
	return change.AppendString(b, s)
}

// datetimeEncoder writes a DATETIME with dec fractional digits. go-mysql
// (ParseTime on) hands over a time.Time in UTC for the values it can hold,
// and its string form for the others (zero dates, years before 1970); both
// give the same text. Formatting here spares go-mysql's fmt.Sprintf, which
// is costly on a path run once per DATETIME value.
func datetimeEncoder(dec int) encoder {
	return func(b []byte, v any) []byte {
		if t, ok := v.(time.Time); ok {
			b = appendDatetime(append(b, '"'), t, dec)
			return append(b, '"')
		}
		return encDatetime(b, v)
	}
}

// timestampEncoder is datetimeEncoder for TIMESTAMP: the instant in UTC with
// a Z suffix, as encTimestamp writes it.
func timestampEncoder(dec int) encoder {
	return func(b []byte, v any) []byte {
		if t, ok := v.(time.Time); ok {
			b = appendDatetime(append(b, '"'), t.UTC(), dec)
			return append(b, 'Z', '"')
		}
		return encTimestamp(b, v)
	}
}

// appendDatetime appends t as YYYY-MM-DD hh:mm:ss and dec digits of its
// microseconds (truncated, not rounded), the text MySQL and go-mysql give.
// The year must be between 0 and 9999.
func appendDatetime(b []byte, t time.Time, dec int) []byte {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = appendDigits(b, y, 4)
	b = appendDigits(append(b, '-'), int(mo), 2)
	b = appendDigits(append(b, '-'), d, 2)
	b = appendDigits(append(b, ' '), h, 2)
	b = appendDigits(append(b, ':'), mi, 2)
	b = appendDigits(append(b, ':'), s, 2)
	if dec > 0 {
		var frac [6]byte
		us := t.Nanosecond() / 1000
		for i := 5; i >= 0; i-- {
			frac[i] = byte('0' + us%10)
			us /= 10
		}
		b = append(append(b, '.'), frac[:min(dec, 6)]...)
	}
	return b
}

// appendDigits appends v, 0 <= v < 10^n, as n decimal digits; n <= 4.
func appendDigits(b []byte, v, n int) []byte {
	var d [4]byte
	for i := n - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:n]...)
}

// encTimestamp writes the UTC instant with a Z suffix, the SQL form of
// Flink's TIMESTAMP_LTZ.
func encTimestamp(b []byte, v any) []byte {
	s, ok := v.(string)
	if !ok {
		return badValue(b, v)
	}
	if zeroDate(s) {
		return append(b, "null"...)
	}
	b = change.AppendString(b, s)
	b[len(b)-1] = 'Z'
	return append(b, '"')
}

// timeEncoder writes a TIME value with all its fractional digits, as a
// SELECT shows it (go-mysql leaves them out when they are all zero).
func timeEncoder(dec int) encoder {
	return func(b []byte, v any) []byte {
		s, ok := v.(string)
		if !ok {
			return badValue(b, v)
		}
		if dec > 0 && dec <= 6 && !strings.Contains(s, ".") {
			s += ".000000"[:dec+1]
		}
		return change.AppendString(b, s)
	}
}

func encText(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return change.AppendString(b, x)
	case []byte:
		return change.AppendString(b, string(x))
	}
	return badValue(b, v)
}

// encJSONText writes a MySQL JSON document as its text, in a JSON string.
// An empty document (written by INSERT IGNORE of NULL) is the JSON null.
func encJSONText(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return change.AppendString(b, x)
	case []byte:
		if len(x) == 0 {
			return change.AppendString(b, "null")
		}
		return change.AppendString(b, string(x))
	}
	return badValue(b, v)
}

// stringLength is the declared byte length of a CHAR/BINARY column, from its
// TABLE_MAP metadata.
func stringLength(meta uint16) int {
	b0, b1 := byte(meta>>8), byte(meta)
	if b0&0x30 != 0x30 {
		return int(uint16(b1) | uint16((b0&0x30)^0x30)<<4)
	}
	return int(b1)
}

// paddedBytes encodes BINARY(n): the binlog leaves out the trailing zero
// bytes that the column stores and a SELECT returns, so they are put back.
func paddedBytes(n int) encoder {
	return func(b []byte, v any) []byte {
		raw, ok := rawBytes(v)
		if !ok {
			return badValue(b, v)
		}
		if len(raw) < n {
			raw = append(append(make([]byte, 0, n), raw...), make([]byte, n-len(raw))...)
		}
		return encBytes(b, raw)
	}
}

// rawBytes returns the bytes of a binary value, which go-mysql decodes into
// a []byte or a string.
func rawBytes(v any) ([]byte, bool) {
	switch x := v.(type) {
	case []byte:
		return x, true
	case string:
		return []byte(x), true
	}
	return nil, false
}

func encBytes(b []byte, v any) []byte {
	raw, ok := rawBytes(v)
	if !ok {
		return badValue(b, v)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, '"')
}

var latin1 = charmap.Windows1252.NewDecoder()

// MySQL's latin1 is Windows-1252.
func isLatin1(collation uint64) bool {
	switch collation {
	case 5, 8, 15, 31, 47, 48, 49, 94:
		return true
	}
	return false
}

func encLatin1(b []byte, v any) []byte {
	switch x := v.(type) {
	// ASCII is the same in latin1 and UTF-8: no decoding, no copy.
	case string:
		if !isASCII(x) {
			if u, err := latin1.String(x); err == nil {
				x = u
			}
		}
		return change.AppendString(b, x)
	case []byte:
		if !isASCII(x) {
			if u, err := latin1.Bytes(x); err == nil {
				x = u
			}
		}
		return change.AppendBytes(b, x)
	}
	return badValue(b, v)
}

func isASCII[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func enumEncoder(names []string) encoder {
	return func(b []byte, v any) []byte {
		x, ok := v.(int64)
		if !ok {
			return badValue(b, v)
		}
		// 0 is MySQL's "invalid value" index and stands for ''.
		if x < 1 || int(x) > len(names) {
			return append(b, `""`...)
		}
		return change.AppendString(b, names[x-1])
	}
}

func setEncoder(names []string) encoder {
	return func(b []byte, v any) []byte {
		x, ok := v.(int64)
		if !ok {
			return badValue(b, v)
		}
		b = append(b, '"')
		first := true
		for i := 0; i < len(names) && i < 64; i++ {
			if uint64(x)&(1<<uint(i)) == 0 {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			q := change.AppendString(nil, names[i])
			b = append(b, q[1:len(q)-1]...)
		}
		return append(b, '"')
	}
}

// badValue is reached only if go-mysql decodes a column into a Go type its
// binlog type never produces; it panics, and row turns that into an error.
func badValue(_ []byte, v any) []byte {
	panic(fmt.Sprintf("unexpected decoded value %T", v))
}
