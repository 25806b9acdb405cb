package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"sort"
	"strconv"

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
	scratch  bytes.Buffer
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

// member hashes one column; a row's hash is the sum of its members'
// hashes, so member order does not count.
func (h *rowHasher) member(name string, value []byte) uint64 {
	f := fnv.New64a()
	f.Write([]byte(name))
	f.Write([]byte{0})
	f.Write(h.value(name, value))
	// FNV's low bits mix poorly into a sum: spread them.
	x := f.Sum64()
	return bits.RotateLeft64(x*0x9E3779B97F4A7C15, 31) ^ x
}

// value is what is compared of a column value.
func (h *rowHasher) value(name string, v []byte) []byte {
	if !h.jsonCols[name] || len(v) == 0 || v[0] != '"' {
		return v
	}
	var doc string
	if json.Unmarshal(v, &doc) != nil {
		return v
	}
	h.scratch.Reset()
	if canonical(&h.scratch, []byte(doc)) != nil {
		return v
	}
	return h.scratch.Bytes()
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
			sum += h.member(r.Names[i], v)
		}
	}
	return finish(sum)
}

// topicRow hashes a row object from the topic.
func (h *rowHasher) topicRow(obj []byte) (uint64, error) {
	var sum uint64
	err := eachMember(obj, func(name string, v []byte) error {
		sum += h.member(name, v)
		return nil
	})
	return finish(sum), err
}

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
	err := eachMember(obj, func(name string, v []byte) error {
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
		if db != nil && tv != nil {
			a := append([]byte(nil), h.value(name, db)...) // value reuses its buffer
			if bytes.Equal(a, h.value(name, tv)) {
				continue
			}
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
// JSON object, in order.
func eachMember(obj []byte, fn func(name string, value []byte) error) error {
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
		name, err := memberName(obj[i:end])
		if err != nil {
			return err
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

func memberName(q []byte) (string, error) {
	if bytes.IndexByte(q, '\\') < 0 {
		return string(q[1 : len(q)-1]), nil
	}
	var s string
	err := json.Unmarshal(q, &s)
	return s, err
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

// canonical writes a JSON document with object members sorted by name and
// no whitespace; numbers and strings keep their text.
func canonical(w *bytes.Buffer, doc []byte) error {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	writeCanonical(w, v)
	return nil
}

func writeCanonical(w *bytes.Buffer, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				w.WriteByte(',')
			}
			w.Write(change.String(k))
			w.WriteByte(':')
			writeCanonical(w, x[k])
		}
		w.WriteByte('}')
	case []any:
		w.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				w.WriteByte(',')
			}
			writeCanonical(w, e)
		}
		w.WriteByte(']')
	case json.Number:
		w.WriteString(string(x))
	case string:
		w.Write(change.String(x))
	case bool:
		w.WriteString(strconv.FormatBool(x))
	case nil:
		w.WriteString("null")
	}
}

// keyHash hashes an event key. The relay writes each key in one canonical
// form (change.EncodeKey), and the reader builds its keys with the same
// function, so the bytes are hashed as they are.
func keyHash(key []byte) uint64 {
	f := fnv.New64a()
	f.Write(key)
	return f.Sum64()
}
