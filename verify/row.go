package verify

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/cdcrelay/cdcrelay/change"
)

// absent is the state of a key with no row.
const absent = 0

// rowHasher hashes rows of one table. Both sides of the comparison go
// through it: the database's rows as the source's reader encoded them, and
// the topic's rows as JSON objects. Column values are compared byte for
// byte, since both were written by the same encoder, with one exception:
// a json or jsonb column (a JSON document carried in a JSON string) is
// compared as a document, so whitespace and member order do not count.
type rowHasher struct {
	jsonCols map[string]bool
	scratch  []byte
}

func newRowHasher(ts change.TableSchema) *rowHasher {
	h := &rowHasher{jsonCols: map[string]bool{}}
	for _, c := range ts.Columns {
		if c.SourceType == "json" || c.SourceType == "jsonb" {
			h.jsonCols[c.Name] = true
		}
	}
	return h
}

// FNV-1a, 64 bits, without the allocation of hash/fnv.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvAdd(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// mix spreads a hash's bits, so that sums of hashes stay well spread.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ x>>33
}

// member hashes one column; a row's hash is the sum of its members'
// hashes, so member order does not count.
func (h *rowHasher) member(name []byte, value []byte) uint64 {
	x := fnvAdd(fnvOffset, name)
	x = fnvAdd(x, []byte{0})
	return mix(x ^ h.value(name, value))
}

// value hashes what is compared of a column value.
func (h *rowHasher) value(name []byte, v []byte) uint64 {
	if len(v) > 0 && v[0] == '"' && h.jsonCols[string(name)] {
		var ok bool
		if h.scratch, ok = unquote(h.scratch[:0], v); ok {
			if d, err := docHash(h.scratch); err == nil {
				return d
			}
		}
	}
	return mix(fnvAdd(fnvOffset, v))
}

func finish(sum uint64) uint64 {
	if sum == absent {
		return 1
	}
	return sum
}

// dbRow hashes a row read from the database; absent columns (nil values)
// are left out, as the encoder leaves them out of the JSON.
func (h *rowHasher) dbRow(r *change.Row) uint64 {
	var sum uint64
	for i, v := range r.Values {
		if v != nil {
			sum += h.member(unsafeBytes(r.Names[i]), v)
		}
	}
	return finish(sum)
}

// topicRow hashes a row object from the topic.
func (h *rowHasher) topicRow(obj []byte) (uint64, error) {
	var sum uint64
	err := eachMember(obj, func(name, v []byte) error {
		sum += h.member(name, v)
		return nil
	})
	return finish(sum), err
}

// docHash hashes a JSON document by its structure: an object is the sum of
// its members' hashes (member order does not count), an array the chain
// of its elements', a scalar its text; whitespace between tokens does not
// count.
func docHash(b []byte) (uint64, error) {
	i := skipSpace(b, 0)
	end, err := skipValue(b, i)
	if err != nil {
		return 0, err
	}
	if skipSpace(b, end) != len(b) {
		return 0, errors.New("trailing data after a JSON document")
	}
	return valueHash(b[i:end])
}

func valueHash(v []byte) (uint64, error) {
	switch v[0] {
	case '{':
		sum := uint64(0x6f626a)
		err := eachMember(v, func(name, m []byte) error {
			mh, err := valueHash(m)
			sum += mix(fnvAdd(fnvOffset, name) ^ mh)
			return err
		})
		return mix(sum), err
	case '[':
		x := uint64(0x617272)
		i := skipSpace(v, 1)
		if i < len(v) && v[i] == ']' {
			return mix(x), nil
		}
		for i < len(v) {
			end, err := skipValue(v, i)
			if err != nil {
				return 0, err
			}
			eh, err := valueHash(v[i:end])
			if err != nil {
				return 0, err
			}
			x = mix(x*fnvPrime ^ eh)
			i = skipSpace(v, end)
			if i < len(v) && v[i] == ']' {
				return x, nil
			}
			if i >= len(v) || v[i] != ',' {
				return 0, errors.New("bad JSON array")
			}
			i = skipSpace(v, i+1)
		}
		return 0, errors.New("unterminated JSON array")
	}
	return mix(fnvAdd(fnvOffset, v)), nil
}

// unquote appends the text of the JSON string q to dst; false when q is
// not a well-formed JSON string.
func unquote(dst, q []byte) ([]byte, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return dst, false
	}
	q = q[1 : len(q)-1]
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		if i+1 >= len(q) {
			return dst, false
		}
		i++
		switch q[i] {
		case '"', '\\', '/':
			dst = append(dst, q[i])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n, ok := hexRune(q[i+1:])
			if !ok {
				return dst, false
			}
			i += n
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, false
		}
	}
	return dst, true
}

// hexRune reads the XXXX of a \uXXXX escape, and a low surrogate's
// \uXXXX after a high one; it returns the rune and the bytes read.
func hexRune(b []byte) (rune, int, bool) {
	if len(b) < 4 {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 16)
	if err != nil {
		return 0, 0, false
	}
	r := rune(v)
	if utf16.IsSurrogate(r) && len(b) >= 10 && b[4] == '\\' && b[5] == 'u' {
		if lo, err := strconv.ParseUint(string(b[6:10]), 16, 16); err == nil {
			if d := utf16.DecodeRune(r, rune(lo)); d != utf8.RuneError {
				return d, 10, true
			}
		}
	}
	return r, 4, true
}

// unsafeBytes views a string's bytes, for hashing only.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// colDiff is one column that differs; a nil value is absent.
type colDiff struct {
	name      string
	db, topic []byte
}

// diff lists the columns of a database row and a topic row object that
// differ, in the row's column order, then columns only the topic has.
func (h *rowHasher) diff(r *change.Row, obj []byte) ([]colDiff, error) {
	topic := map[string][]byte{}
	var order []string
	err := eachMember(obj, func(nb, v []byte) error {
		name := string(nb)
		if _, dup := topic[name]; !dup {
			order = append(order, name)
		}
		topic[name] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []colDiff
	seen := map[string]bool{}
	for i, name := range r.Names {
		seen[name] = true
		db, tv := r.Values[i], topic[name]
		if db == nil && tv == nil {
			continue
		}
		if db != nil && tv != nil && h.value(unsafeBytes(name), db) == h.value(unsafeBytes(name), tv) {
			continue
		}
		out = append(out, colDiff{name: name, db: db, topic: tv})
	}
	for _, name := range order {
		if !seen[name] {
			out = append(out, colDiff{name: name, topic: topic[name]})
		}
	}
	return out, nil
}

// eachMember calls fn with the name and the raw value of each member of a
// JSON object, in order. The name is valid during the call only.
func eachMember(obj []byte, fn func(name, value []byte) error) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return errors.New("bad JSON object: member name expected")
		}
		end, err := skipValue(obj, i)
		if err != nil {
			return err
		}
		name, ok := memberName(obj[i:end])
		if !ok {
			return errors.New("bad JSON object: bad member name")
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return errors.New("bad JSON object: colon expected")
		}
		i = skipSpace(obj, i+1)
		vend, err := skipValue(obj, i)
		if err != nil {
			return err
		}
		if err := fn(name, obj[i:vend]); err != nil {
			return err
		}
		i = skipSpace(obj, vend)
		if i >= len(obj) {
			return errors.New("bad JSON object: unterminated")
		}
		if obj[i] == '}' {
			return nil
		}
		if obj[i] != ',' {
			return errors.New("bad JSON object: comma expected")
		}
		i = skipSpace(obj, i+1)
	}
}

// memberName returns the text of a quoted member name: a slice of q
// without escapes, a copy with them.
func memberName(q []byte) ([]byte, bool) {
	if bytes.IndexByte(q, '\\') < 0 {
		return q[1 : len(q)-1], true
	}
	return unquote(nil, q)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at b[i]. It checks
// the nesting and the strings, not every detail of the grammar.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("bad JSON: value expected")
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1, nil
			}
		}
		return 0, errors.New("bad JSON: unterminated string")
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipValue(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errors.New("bad JSON: unterminated object or array")
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("bad JSON: unexpected %q", b[i])
	}
	return j, nil
}

// keyHash hashes an event key. The relay writes each key in one canonical
// form (change.EncodeKey), and the reader builds its keys with the same
// function, so the bytes are hashed as they are.
func keyHash(key []byte) uint64 { return fnvAdd(fnvOffset, key) }
