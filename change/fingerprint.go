package change

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strings"
)

// ShapeColumn is one column of a table shape: its name and its type as the
// source database names it (e.g. "character varying(10)" or "varchar(40
// bytes)").
type ShapeColumn struct {
	Name string
	Type string
}

// DescribeShape renders a table's columns, in table order, and its Kafka key
// as one line, e.g. "id integer, v text; key (id)". The line is what the
// fingerprint hashes and what a schema change log shows.
func DescribeShape(cols []ShapeColumn, key []string) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.Name)
		b.WriteByte(' ')
		b.WriteString(c.Type)
	}
	b.WriteString("; key (")
	b.WriteString(strings.Join(key, ", "))
	b.WriteByte(')')
	return b.String()
}

// digest is the first 16 hex digits of the SHA-256 of s: short enough for an
// offsets record, long enough that two shapes never collide in practice.
func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// Schemas tracks the shape of each captured table as a source last described
// it, and derives the checkpoint's SchemaFingerprint from them. While they
// fit in MaxSchemasJSON bytes, the per-table digests travel in the source's
// resumable state (JSON), so the fingerprint after a restart is the one
// stored, and a change made while the relay was down is still seen as a
// change when the stream reaches it. Past that size they are left out: the
// state is written with every Kafka transaction and must not grow with the
// number of tables, so a restart then learns the shapes afresh and only the
// fingerprint tells of a change made while the relay was down.
//
// A Schemas is used by one goroutine; the zero value is empty and ready.
type Schemas struct {
	digests map[string]string // table -> digest of its shape
	shapes  map[string]string // table -> shape, for tables described in this run
	fp      string            // cached Fingerprint, "" when stale
	js      []byte            // cached JSON, nil when stale
}

// Restore loads the digests saved by JSON. Empty input leaves s empty.
func (s *Schemas) Restore(b []byte) error {
	s.digests, s.shapes, s.fp, s.js = map[string]string{}, map[string]string{}, "", nil
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, &s.digests)
}

// Seed records the shape of a table that has none yet, as read from the
// catalog before the stream describes it; a known table keeps its shape.
func (s *Schemas) Seed(table, shape string) {
	if _, ok := s.digests[table]; ok {
		return
	}
	s.set(table, shape)
}

// Observe records the shape the stream gives table. It reports whether the
// table had a different shape before, and that shape ("" when only its
// digest is known, from the stored state).
func (s *Schemas) Observe(table, shape string) (changed bool, was string) {
	old, ok := s.digests[table]
	if ok && s.shapes[table] == shape {
		return false, ""
	}
	d := digest(shape)
	if ok && old == d {
		s.shapes[table] = shape
		return false, ""
	}
	was = s.shapes[table]
	s.set(table, shape)
	return ok, was
}

// Forget drops a table that is no longer captured.
func (s *Schemas) Forget(table string) {
	if _, ok := s.digests[table]; !ok {
		return
	}
	delete(s.digests, table)
	delete(s.shapes, table)
	s.fp, s.js = "", nil
}

func (s *Schemas) set(table, shape string) {
	if s.digests == nil {
		s.digests, s.shapes = map[string]string{}, map[string]string{}
	}
	s.digests[table] = digest(shape)
	s.shapes[table] = shape
	s.fp, s.js = "", nil
}

// Fingerprint is the digest of every table's shape, in table name order; ""
// when no table is known.
func (s *Schemas) Fingerprint() string {
	if s.fp != "" || len(s.digests) == 0 {
		return s.fp
	}
	var b strings.Builder
	for _, t := range slices.Sorted(maps.Keys(s.digests)) {
		b.WriteString(t)
		b.WriteByte(0)
		b.WriteString(s.digests[t])
		b.WriteByte('\n')
	}
	s.fp = digest(b.String())
	return s.fp
}

// MaxSchemasJSON bounds the per-table digests kept in a source's state,
// about ten tables' worth, so that with the snapshot's inline lists the
// state written with every Kafka transaction stays within about 1 KiB.
const MaxSchemasJSON = 384

// JSON is the digests as a JSON object for the source's state; nil when no
// table is known or the object would pass MaxSchemasJSON bytes. The result
// is shared until the next change and must not be modified.
func (s *Schemas) JSON() []byte {
	if s.js == nil && len(s.digests) > 0 {
		b, err := json.Marshal(s.digests)
		if err != nil {
			panic(err) // a map of strings
		}
		if len(b) > MaxSchemasJSON {
			b = []byte{} // cached as "too large" until the next change
		}
		s.js = b
	}
	if len(s.js) == 0 {
		return nil
	}
	return s.js
}
