package config

import (
	"fmt"
	"strconv"
	"strings"
)

// TableRef is one entry of source.tables: a namespace (PostgreSQL schema or
// MySQL database) and a table name, or "*" for every table of the namespace.
type TableRef struct {
	Namespace string
	Name      string // "*" matches every table
}

// Matches reports whether the table ns.name is covered by r.
func (r TableRef) Matches(ns, name string) bool {
	return r.Namespace == ns && (r.Name == "*" || r.Name == name)
}

func (r TableRef) String() string { return r.Namespace + "." + r.Name }

// ParseTable splits "schema.table". Either part may be double-quoted to hold
// dots, quotes (doubled) or any other character: "my.schema"."Odd ""name""".
// Unquoted parts are taken as written, case included.
func ParseTable(s string) (TableRef, error) {
	ns, rest, err := splitIdent(s)
	if err != nil {
		return TableRef{}, fmt.Errorf("%q: %v", s, err)
	}
	if !strings.HasPrefix(rest, ".") {
		return TableRef{}, fmt.Errorf("%q must be schema.table (or database.table, or schema.* for all tables)", s)
	}
	name, tail, err := splitIdent(rest[1:])
	if err != nil {
		return TableRef{}, fmt.Errorf("%q: %v", s, err)
	}
	if tail != "" {
		return TableRef{}, fmt.Errorf("%q has more than one dot; quote a name that holds a dot, as schema.\"a.b\"", s)
	}
	if ns == "" || name == "" {
		return TableRef{}, fmt.Errorf("%q must be schema.table (or database.table, or schema.* for all tables)", s)
	}
	return TableRef{Namespace: ns, Name: name}, nil
}

// splitIdent reads one identifier off the front of s and returns the rest.
func splitIdent(s string) (ident, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return s, "", nil
		}
		if strings.Contains(s[:i], `"`) {
			return "", "", fmt.Errorf("a quote inside an unquoted name; quote the whole name")
		}
		return s[:i], s[i:], nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), s[i+1:], nil
	}
	return "", "", fmt.Errorf("unterminated quoted name")
}

// TableRefs parses every entry of source.tables; Load has already validated
// them, so errors cannot occur on a loaded config.
func (s *Source) TableRefs() []TableRef {
	out := make([]TableRef, 0, len(s.Tables))
	for _, t := range s.Tables {
		if r, err := ParseTable(t); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// KeylessRefs parses source.keyless.
func (s *Source) KeylessRefs() []TableRef {
	out := make([]TableRef, 0, len(s.Keyless))
	for _, t := range s.Keyless {
		if r, err := ParseTable(t); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// KeyColumns is one entry of source.key_columns: the tables it covers and
// the columns of their Kafka key, in key order.
type KeyColumns struct {
	Table   TableRef
	Columns []string
}

// ParseKeyColumns reads "schema.table:col1,col2". The table part may be
// quoted as in source.tables; column names are taken as written.
func ParseKeyColumns(s string) (KeyColumns, error) {
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		ref, err := ParseTable(s[:i])
		if err != nil {
			continue // a colon inside a quoted table name
		}
		var cols []string
		seen := map[string]bool{}
		for _, c := range strings.Split(s[i+1:], ",") {
			c = strings.TrimSpace(c)
			if c == "" {
				return KeyColumns{}, fmt.Errorf("%q has an empty column name; write schema.table:col1,col2", s)
			}
			if seen[c] {
				return KeyColumns{}, fmt.Errorf("%q names column %s twice", s, c)
			}
			seen[c] = true
			cols = append(cols, c)
		}
		return KeyColumns{Table: ref, Columns: cols}, nil
	}
	return KeyColumns{}, fmt.Errorf("%q is not schema.table:col1,col2", s)
}

// KeyColumnsFor returns the Kafka key columns source.key_columns chooses for
// ns.name, nil when none; the first matching entry wins. Load has already
// validated the entries.
func (s *Source) KeyColumnsFor(ns, name string) []string {
	for _, e := range s.KeyColumns {
		if k, err := ParseKeyColumns(e); err == nil && k.Table.Matches(ns, name) {
			return k.Columns
		}
	}
	return nil
}

// ColumnRef names one column: schema.table.column. Each part may be quoted
// as in source.tables.
type ColumnRef struct {
	Table  TableRef
	Column string
}

func (c ColumnRef) String() string { return c.Table.String() + "." + c.Column }

// ParseColumn reads "schema.table.column".
func ParseColumn(s string) (ColumnRef, error) {
	bad := fmt.Errorf("%q is not schema.table.column (quote a part that holds a dot)", s)
	ns, rest, err := splitIdent(s)
	if err != nil || ns == "" || !strings.HasPrefix(rest, ".") {
		return ColumnRef{}, bad
	}
	tbl, rest, err := splitIdent(rest[1:])
	if err != nil || tbl == "" || tbl == "*" || !strings.HasPrefix(rest, ".") {
		return ColumnRef{}, bad
	}
	col, tail, err := splitIdent(rest[1:])
	if err != nil || col == "" || tail != "" {
		return ColumnRef{}, bad
	}
	return ColumnRef{Table: TableRef{Namespace: ns, Name: tbl}, Column: col}, nil
}

// ParseTruncate reads "schema.table.column:N", N from 1 to 1000000.
func ParseTruncate(s string) (ColumnRef, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return ColumnRef{}, 0, fmt.Errorf("%q is not schema.table.column:N", s)
	}
	ref, err := ParseColumn(s[:i])
	if err != nil {
		return ColumnRef{}, 0, err
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n < 1 || n > 1_000_000 {
		return ColumnRef{}, 0, fmt.Errorf("%q: the length after the colon must be a whole number from 1 to 1000000", s)
	}
	return ref, n, nil
}

// HasColumnRules reports whether any source.column_* entry names a column
// of ns.name.
func (s *Source) HasColumnRules(ns, name string) bool {
	for _, list := range [][]string{s.ColumnInclude, s.ColumnExclude, s.ColumnHash} {
		for _, e := range list {
			if r, err := ParseColumn(e); err == nil && r.Table.Namespace == ns && r.Table.Name == name {
				return true
			}
		}
	}
	for _, e := range s.ColumnTruncate {
		if r, _, err := ParseTruncate(e); err == nil && r.Table.Namespace == ns && r.Table.Name == name {
			return true
		}
	}
	return false
}

// VerifyRefusal says why verify cannot compare ns.name with its topic
// because of how the configuration shapes its events, "" when it can:
// source.key_columns keys the records by columns verify cannot read a row
// back by, and source.column_* rules change the rows.
func (s *Source) VerifyRefusal(ns, name string) string {
	if s.KeyColumnsFor(ns, name) != nil {
		return "keyed by source.key_columns, which verify cannot read rows back by"
	}
	if s.HasColumnRules(ns, name) {
		return "source.column_* rules change its rows in Kafka, so they differ from the table's"
	}
	return ""
}
