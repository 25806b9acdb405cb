package columns

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
)

func rules(t *testing.T, src config.Source) *Rules {
	t.Helper()
	r := New(&src)
	if r == nil {
		t.Fatal("no rules")
	}
	return r
}

var customers = change.TableID{Namespace: "public", Name: "customers"}

func row(names []string, vals ...string) *change.Row {
	r := &change.Row{Names: names}
	for _, v := range vals {
		if v == "<absent>" {
			r.Values = append(r.Values, nil)
			continue
		}
		r.Values = append(r.Values, []byte(v))
	}
	return r
}

func rowJSON(r *change.Row) string {
	if r == nil {
		return "null"
	}
	var b []byte
	b = append(b, '{')
	for i, n := range r.Names {
		if r.Values[i] == nil {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = change.AppendString(b, n)
		b = append(b, ':')
		b = append(b, r.Values[i]...)
	}
	return string(append(b, '}'))
}

func hashOf(salt, v string) string {
	s := sha256.Sum256([]byte(salt + v))
	return `"` + hex.EncodeToString(s[:]) + `"`
}

func TestApply(t *testing.T) {
	names := []string{"id", "email", "ssn", "note"}
	full := func() *change.Row {
		return row(names, "7", `"ann@example.com"`, `"123-45-6789"`, `"Grüße aus Köln, und mehr"`)
	}
	cases := []struct {
		name    string
		src     config.Source
		ev      *change.Event
		wantKey string
		want    string // the after image, or the before image of a delete
		wantErr string
	}{
		{
			name:    "exclude and truncate by characters",
			src:     config.Source{ColumnExclude: []string{"public.customers.ssn"}, ColumnTruncate: []string{"public.customers.note:5"}},
			ev:      &change.Event{Table: customers, Op: change.OpCreate, Key: []byte(`{"id":7}`), After: full()},
			wantKey: `{"id":7}`,
			want:    `{"id":7,"email":"ann@example.com","note":"Grüße"}`,
		},
		{
			name:    "include",
			src:     config.Source{ColumnInclude: []string{"public.customers.id", "public.customers.note"}},
			ev:      &change.Event{Table: customers, Op: change.OpDelete, Key: []byte(`{"id":7}`), Before: full()},
			wantKey: `{"id":7}`,
			want:    `{"id":7,"note":"Grüße aus Köln, und mehr"}`,
		},
		{
			name: "hash, in the row and in the key; null and absent stay",
			src:  config.Source{ColumnHash: []string{"public.customers.email", "public.customers.ssn", "public.customers.note"}, ColumnHashSalt: "pepper"},
			ev: &change.Event{Table: customers, Op: change.OpUpdate, Key: []byte(`{"email":"ann@example.com"}`),
				After: row(names, "7", `"ann@example.com"`, "null", "<absent>")},
			wantKey: `{"email":` + hashOf("pepper", `"ann@example.com"`) + `}`,
			want:    `{"id":7,"email":` + hashOf("pepper", `"ann@example.com"`) + `,"ssn":null}`,
		},
		{
			name:    "a key column left out",
			src:     config.Source{ColumnExclude: []string{"public.customers.id"}},
			ev:      &change.Event{Table: customers, Op: change.OpCreate, Key: []byte(`{"id":7}`), After: full()},
			wantErr: "public.customers.id is in the Kafka key",
		},
		{
			name:    "a key column truncated",
			src:     config.Source{ColumnTruncate: []string{"public.customers.email:3"}},
			ev:      &change.Event{Table: customers, Op: change.OpCreate, Key: []byte(`{"email":"ann@example.com"}`), After: full()},
			wantErr: "source.column_truncate cannot cut it",
		},
		{
			name:    "another table",
			src:     config.Source{ColumnExclude: []string{"public.other.ssn"}},
			ev:      &change.Event{Table: customers, Op: change.OpCreate, Key: []byte(`{"id":7}`), After: full()},
			wantKey: `{"id":7}`,
			want:    `{"id":7,"email":"ann@example.com","ssn":"123-45-6789","note":"Grüße aus Köln, und mehr"}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := rowJSON(c.ev.After) + rowJSON(c.ev.Before)
			got, err := rules(t, c.src).Apply(c.ev)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			img := got.After
			if got.Op == change.OpDelete {
				img = got.Before
			}
			if s := rowJSON(img); s != c.want {
				t.Errorf("row %s, want %s", s, c.want)
			}
			if string(got.Key) != c.wantKey {
				t.Errorf("key %s, want %s", got.Key, c.wantKey)
			}
			if rowJSON(c.ev.After)+rowJSON(c.ev.Before) != orig {
				t.Error("Apply changed the event it was given")
			}
		})
	}
}

// The same value hashes to the same bytes in every event, and a second
// table version (new column list) gets its own view.
func TestApplyStableAcrossVersions(t *testing.T) {
	r := rules(t, config.Source{ColumnHash: []string{"public.customers.email"}, ColumnExclude: []string{"public.customers.ssn"}, ColumnHashSalt: "s"})
	v1 := []string{"id", "email", "ssn"}
	v2 := []string{"id", "ssn", "email", "added"}
	a, _ := r.Apply(&change.Event{Table: customers, After: row(v1, "1", `"x@y"`, `"1"`)})
	b, _ := r.Apply(&change.Event{Table: customers, After: row(v2, "1", `"1"`, `"x@y"`, "true")})
	if got, want := rowJSON(a.After), `{"id":1,"email":`+hashOf("s", `"x@y"`)+`}`; got != want {
		t.Errorf("v1 row %s, want %s", got, want)
	}
	if got, want := rowJSON(b.After), `{"id":1,"email":`+hashOf("s", `"x@y"`)+`,"added":true}`; got != want {
		t.Errorf("v2 row %s, want %s", got, want)
	}
}

func TestSchema(t *testing.T) {
	r := rules(t, config.Source{ColumnExclude: []string{"public.customers.ssn"}, ColumnHash: []string{"public.customers.email"}, ColumnHashSalt: "s"})
	ts := change.TableSchema{ID: customers, Key: []string{"id"}, Columns: []change.ColumnSchema{
		{Name: "id", FlinkType: "INT"}, {Name: "email", FlinkType: "STRING"}, {Name: "ssn", FlinkType: "STRING"}, {Name: "age", FlinkType: "INT"},
	}}
	got, err := r.Schema(ts)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range got.Columns {
		cols = append(cols, c.Name+" "+c.FlinkType)
	}
	if s := strings.Join(cols, ", "); s != "id INT, email STRING, age INT" {
		t.Errorf("columns %s", s)
	}
	ts.Key = []string{"ssn"}
	if _, err := r.Schema(ts); err == nil {
		t.Error("a key column left out passed")
	}
}

func TestCheck(t *testing.T) {
	r := rules(t, config.Source{
		ColumnExclude:  []string{"public.customers.ssn", "public.customers.nope", "public.logs.msg", "public.gone.x"},
		ColumnHash:     []string{"public.customers.id"},
		ColumnHashSalt: "s",
	})
	logs := change.TableID{Namespace: "public", Name: "logs"}
	rep := r.Check([]change.TableSchema{
		{ID: customers, Key: []string{"id"}, Columns: []change.ColumnSchema{{Name: "id"}, {Name: "ssn"}, {Name: "email"}}},
		{ID: logs, Columns: []change.ColumnSchema{{Name: "at"}, {Name: "msg"}}}, // keyed by the whole row
	})
	var lines []string
	for _, f := range rep {
		lines = append(lines, f.Level.String()+" "+f.Subject+": "+f.Detail)
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"ok columns of public.customers: 2 of 3 columns sent, 1 hashed, 0 truncated",
		"warn columns of public.customers: source.column_* names columns the table does not have: nope",
		"warn columns of public.gone: source.column_* names a table that is not captured",
		"FAIL columns of public.logs: columns: public.logs is keyed by the whole row",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}
