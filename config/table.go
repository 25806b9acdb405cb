package config

import (
	"fmt"
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
