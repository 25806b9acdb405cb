package columns

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/sources"
)

// Rules are the column rules of every table. The zero of *Rules (nil)
// changes nothing. Apply and Schema are safe for use by one goroutine at a
// time (they cache per table version).
type Rules struct {
	tables map[change.TableID]*table
	salt   []byte
}

// table is the rules of one table.
type table struct {
	include  map[string]bool // nil: every column not excluded
	exclude  map[string]bool
	hash     map[string]bool
	truncate map[string]int
	// views caches, per column list of a table version (the address of
	// its first name, which sources share across the rows of a version),
	// how its rows are rewritten.
	views map[*string]*view
}

// view is how the rows of one column list are rewritten.
type view struct {
	n     int      // the number of columns of the source rows
	names []string // the columns kept
	from  []int    // their indexes in the source row
}

// New builds the rules of cfg's source.column_* keys, nil when there are
// none. cfg has been validated.
func New(cfg *config.Source) *Rules {
	r := &Rules{tables: map[change.TableID]*table{}, salt: []byte(cfg.ColumnHashSalt.Reveal())}
	get := func(ref config.ColumnRef) *table {
		id := change.TableID{Namespace: ref.Table.Namespace, Name: ref.Table.Name}
		t := r.tables[id]
		if t == nil {
			t = &table{exclude: map[string]bool{}, hash: map[string]bool{}, truncate: map[string]int{}, views: map[*string]*view{}}
			r.tables[id] = t
		}
		return t
	}
	for _, e := range cfg.ColumnInclude {
		if ref, err := config.ParseColumn(e); err == nil {
			t := get(ref)
			if t.include == nil {
				t.include = map[string]bool{}
			}
			t.include[ref.Column] = true
		}
	}
	for _, e := range cfg.ColumnExclude {
		if ref, err := config.ParseColumn(e); err == nil {
			get(ref).exclude[ref.Column] = true
		}
	}
	for _, e := range cfg.ColumnHash {
		if ref, err := config.ParseColumn(e); err == nil {
			get(ref).hash[ref.Column] = true
		}
	}
	for _, e := range cfg.ColumnTruncate {
		if ref, n, err := config.ParseTruncate(e); err == nil {
			get(ref).truncate[ref.Column] = n
		}
	}
	if len(r.tables) == 0 {
		return nil
	}
	return r
}

// Keeps reports whether the rules send column col of table id. A nil
// *Rules keeps every column.
func (r *Rules) Keeps(id change.TableID, col string) bool {
	if r == nil {
		return true
	}
	t := r.tables[id]
	return t == nil || t.keeps(col)
}

func (t *table) keeps(col string) bool {
	if t.exclude[col] {
		return false
	}
	return t.include == nil || t.include[col]
}

// Apply returns ev with the rules of its table applied: a new event with new
// row images and key, or ev itself when no rule covers its table. ev is not
// changed. A rule that would leave out or truncate a column of the Kafka key
// is an error: the key would then no longer name one row.
func (r *Rules) Apply(ev *change.Event) (*change.Event, error) {
	if r == nil {
		return ev, nil
	}
	t := r.tables[ev.Table]
	if t == nil {
		return ev, nil
	}
	out := *ev
	out.Before = r.row(t, ev.Before)
	out.After = r.row(t, ev.After)
	if ev.Key != nil {
		key, err := r.key(t, ev.Table, ev.Key)
		if err != nil {
			return nil, err
		}
		out.Key = key
	}
	return &out, nil
}

// row rewrites one row image.
func (r *Rules) row(t *table, in *change.Row) *change.Row {
	if in == nil || len(in.Names) == 0 {
		return in
	}
	v := t.views[&in.Names[0]]
	if v == nil || v.n != len(in.Names) {
		v = &view{n: len(in.Names)}
		for i, n := range in.Names {
			if t.keeps(n) {
				v.names = append(v.names, n)
				v.from = append(v.from, i)
			}
		}
		if len(t.views) > 4096 {
			clear(t.views)
		}
		t.views[&in.Names[0]] = v
	}
	out := &change.Row{Names: v.names, Values: make([][]byte, len(v.from))}
	for i, j := range v.from {
		out.Values[i] = r.value(t, v.names[i], in.Values[j])
	}
	return out
}

// value masks one value of column col; nil (absent) and null pass as they
// are.
func (r *Rules) value(t *table, col string, v []byte) []byte {
	if v == nil || bytes.Equal(v, change.Null) {
		return v
	}
	if t.hash[col] {
		return r.hashed(v)
	}
	if n, ok := t.truncate[col]; ok {
		return truncated(v, n)
	}
	return v
}

// hashed is the JSON string of the hex SHA-256 of the salt followed by v,
// the value's JSON text.
func (r *Rules) hashed(v []byte) []byte {
	h := sha256.New()
	h.Write(r.salt)
	h.Write(v)
	sum := h.Sum(nil)
	b := make([]byte, 0, 2+hex.EncodedLen(len(sum)))
	b = append(b, '"')
	b = hex.AppendEncode(b, sum)
	return append(b, '"')
}

// truncated cuts a JSON string to at most n characters; other values pass.
func truncated(v []byte, n int) []byte {
	if len(v) == 0 || v[0] != '"' {
		return v
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil || utf8.RuneCountInString(s) <= n {
		return v
	}
	i, k := 0, 0
	for k < n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		k++
	}
	return change.String(s[:i])
}

// key rewrites the Kafka key, a JSON object of key columns: hashed columns
// are hashed as in the row, and a key column left out or truncated is an
// error.
func (r *Rules) key(t *table, id change.TableID, key []byte) ([]byte, error) {
	var members []struct {
		name string
		raw  json.RawMessage
	}
	dec := json.NewDecoder(bytes.NewReader(key))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return key, nil // not an object: nothing to rewrite
	}
	changed := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("columns: key of %s: %w", id, err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("columns: key of %s: %w", id, err)
		}
		if !t.keeps(name) {
			return nil, fmt.Errorf("columns: column %s.%s is in the Kafka key, so source.column_include or source.column_exclude cannot leave it out; key the table by other columns with source.key_columns, or keep the column (source.column_hash masks it)", id, name)
		}
		if _, ok := t.truncate[name]; ok {
			return nil, fmt.Errorf("columns: column %s.%s is in the Kafka key, so source.column_truncate cannot cut it (two rows could share a key); use source.column_hash, or key the table by other columns with source.key_columns", id, name)
		}
		if t.hash[name] && string(raw) != "null" {
			raw = r.hashed(raw)
			changed = true
		}
		members = append(members, struct {
			name string
			raw  json.RawMessage
		}{name, raw})
	}
	if !changed {
		return key, nil
	}
	b := []byte{'{'}
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = change.AppendString(b, m.name)
		b = append(b, ':')
		b = append(b, m.raw...)
	}
	return append(b, '}'), nil
}

// Schema returns ts as the rules leave its table: columns left out are
// gone, hashed columns are strings. The key is checked as Apply checks it.
func (r *Rules) Schema(ts change.TableSchema) (change.TableSchema, error) {
	if r == nil {
		return ts, nil
	}
	t := r.tables[ts.ID]
	if t == nil {
		return ts, nil
	}
	out := ts
	out.Columns = nil
	for _, c := range ts.Columns {
		if !t.keeps(c.Name) {
			continue
		}
		if t.hash[c.Name] {
			c.FlinkType = "STRING"
		}
		out.Columns = append(out.Columns, c)
	}
	if len(ts.Key) == 0 && (len(out.Columns) < len(ts.Columns) || len(t.truncate) > 0) {
		return out, fmt.Errorf("columns: %s is keyed by the whole row, so its columns can be hashed but not left out or cut (the key would keep them, or two rows could share one); key it by other columns with source.key_columns", ts.ID)
	}
	for _, k := range ts.Key {
		if !t.keeps(k) {
			return out, fmt.Errorf("columns: column %s.%s is in the Kafka key, so source.column_include or source.column_exclude cannot leave it out; key the table by other columns with source.key_columns", ts.ID, k)
		}
		if _, ok := t.truncate[k]; ok {
			return out, fmt.Errorf("columns: column %s.%s is in the Kafka key, so source.column_truncate cannot cut it; use source.column_hash, or key the table by other columns with source.key_columns", ts.ID, k)
		}
	}
	return out, nil
}

// Check reports each rule against the captured tables as the source
// describes them: a rule on a column the table lacks (or on a table that is
// not captured) is a warning, one that would drop or cut a column of the
// Kafka key blocks the start.
func (r *Rules) Check(tables []change.TableSchema) sources.Report {
	if r == nil {
		return nil
	}
	var rep sources.Report
	byID := map[change.TableID]change.TableSchema{}
	for _, ts := range tables {
		byID[ts.ID] = ts
	}
	ids := make([]change.TableID, 0, len(r.tables))
	for id := range r.tables {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b change.TableID) int { return strings.Compare(a.String(), b.String()) })
	for _, id := range ids {
		t := r.tables[id]
		subj := "columns of " + id.String()
		ts, ok := byID[id]
		if !ok {
			rep = append(rep, sources.Finding{Level: sources.Warn, Subject: subj, Detail: "source.column_* names a table that is not captured (or does not exist); the rule does nothing"})
			continue
		}
		has := map[string]bool{}
		for _, c := range ts.Columns {
			has[c.Name] = true
		}
		var unknown []string
		for _, set := range []map[string]bool{t.include, t.exclude, t.hash} {
			for c := range set {
				if !has[c] {
					unknown = append(unknown, c)
				}
			}
		}
		for c := range t.truncate {
			if !has[c] {
				unknown = append(unknown, c)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			rep = append(rep, sources.Finding{Level: sources.Warn, Subject: subj, Detail: "source.column_* names columns the table does not have: " + strings.Join(slices.Compact(unknown), ", ")})
		}
		out, err := r.Schema(ts)
		if err != nil {
			rep = append(rep, sources.Finding{Level: sources.Block, Subject: subj, Detail: err.Error()})
			continue
		}
		rep = append(rep, sources.Finding{Level: sources.OK, Subject: subj, Detail: fmt.Sprintf("%d of %d columns sent, %d hashed, %d truncated", len(out.Columns), len(ts.Columns), len(t.hash), len(t.truncate))})
	}
	return rep
}
