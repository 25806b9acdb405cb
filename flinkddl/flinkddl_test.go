package flinkddl

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdcrelay/cdcrelay/change"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// shopTables is a PostgreSQL-like capture with the awkward cases: a reserved
// word, a backtick and spaces in names, a leading digit, a composite key, a
// keyless table and the same table name in two schemas.
func shopTables() []change.TableSchema {
	return []change.TableSchema{
		{
			ID: change.TableID{Namespace: "public", Name: "orders"},
			Columns: []change.ColumnSchema{
				{Name: "id", SourceType: "bigint", FlinkType: "BIGINT"},
				{Name: "customer_id", SourceType: "bigint", FlinkType: "BIGINT"},
				{Name: "amount", SourceType: "numeric(12,2)", FlinkType: "DECIMAL(12, 2)", Nullable: true},
				{Name: "note`s", SourceType: "text", FlinkType: "STRING", Nullable: true},
				{Name: "created_at", SourceType: "timestamp with time zone", FlinkType: "TIMESTAMP_LTZ(6)"},
			},
			Key: []string{"id"},
		},
		{
			ID: change.TableID{Namespace: "archive", Name: "orders"},
			Columns: []change.ColumnSchema{
				{Name: "id", SourceType: "bigint", FlinkType: "BIGINT", Nullable: true},
				{Name: "payload", SourceType: "jsonb", FlinkType: "STRING", Nullable: true},
			},
			Key: []string{"id"},
		},
		{
			ID: change.TableID{Namespace: "public", Name: "order line"},
			Columns: []change.ColumnSchema{
				{Name: "order_id", SourceType: "bigint", FlinkType: "BIGINT"},
				{Name: "line", SourceType: "integer", FlinkType: "INT"},
				{Name: "select", SourceType: "text", FlinkType: "STRING", Nullable: true},
			},
			Key: []string{"order_id", "line"},
		},
		{
			ID: change.TableID{Namespace: "public", Name: "2024_stats"},
			Columns: []change.ColumnSchema{
				{Name: "day", SourceType: "date", FlinkType: "DATE"},
				{Name: "hits", SourceType: "bigint", FlinkType: "BIGINT", Nullable: true},
			},
			Key: []string{"day"},
		},
	}
}

func keylessTable() change.TableSchema {
	return change.TableSchema{
		ID: change.TableID{Namespace: "public", Name: "audit_log"},
		Columns: []change.ColumnSchema{
			{Name: "at", SourceType: "timestamp without time zone", FlinkType: "TIMESTAMP(6)", Nullable: true},
			{Name: "message", SourceType: "text", FlinkType: "STRING", Nullable: true},
		},
	}
}

func TestGolden(t *testing.T) {
	cases := []struct {
		name   string
		tables []change.TableSchema
		opts   Options
	}{
		{
			name:   "debezium",
			tables: append(shopTables(), keylessTable()),
			opts:   Options{Brokers: []string{"kafka:9092"}, TopicPrefix: "shop", Format: Debezium},
		},
		{
			name:   "debezium_group",
			tables: shopTables()[:1],
			opts:   Options{Brokers: []string{"k1:9092", "k2:9092"}, TopicPrefix: "shop", GroupID: "orders-job"},
		},
		{
			name:   "upsert",
			tables: shopTables(),
			opts:   Options{Brokers: []string{"kafka:9092"}, TopicPrefix: "inv", Format: Upsert},
		},
		{
			name: "topic_func",
			tables: []change.TableSchema{{
				ID:      change.TableID{Namespace: "inventory", Name: "it's"},
				Columns: []change.ColumnSchema{{Name: "id", FlinkType: "INT"}},
				Key:     []string{"id"},
			}},
			opts: Options{
				Brokers:   []string{"kafka:9092"},
				TopicName: func(id change.TableID) string { return "custom." + id.Name },
				Format:    Upsert,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tc.tables, tc.opts); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".golden.sql")
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./flinkddl -update to create it)", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", path, got)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	good := shopTables()[:1]
	opts := Options{Brokers: []string{"kafka:9092"}, TopicPrefix: "shop"}
	cases := []struct {
		name   string
		tables []change.TableSchema
		opts   Options
		want   []string
	}{
		{
			name:   "no brokers",
			tables: good,
			opts:   Options{TopicPrefix: "shop"},
			want:   []string{"no brokers"},
		},
		{
			name:   "empty broker and no prefix",
			tables: good,
			opts:   Options{Brokers: []string{" "}},
			want:   []string{"brokers[0] is empty", "no topic prefix"},
		},
		{
			name:   "bad format",
			tables: good,
			opts:   Options{Brokers: []string{"kafka:9092"}, TopicPrefix: "shop", Format: "avro"},
			want:   []string{`unknown format "avro"`},
		},
		{
			name: "missing flink type and bad key",
			tables: []change.TableSchema{{
				ID:      change.TableID{Namespace: "public", Name: "t"},
				Columns: []change.ColumnSchema{{Name: "id", SourceType: "money"}},
				Key:     []string{"nope"},
			}},
			opts: opts,
			want: []string{`column "id" (money) has no Flink type`, `key column "nope" is not a column`},
		},
		{
			name: "duplicate and unnamed columns",
			tables: []change.TableSchema{{
				ID: change.TableID{Namespace: "public", Name: "t"},
				Columns: []change.ColumnSchema{
					{Name: "a", FlinkType: "INT"}, {Name: "a", FlinkType: "INT"}, {FlinkType: "INT"},
				},
			}},
			opts: opts,
			want: []string{`has column "a" twice`, "column 2 has no name"},
		},
		{
			name:   "no columns",
			tables: []change.TableSchema{{ID: change.TableID{Namespace: "public", Name: "t"}}},
			opts:   opts,
			want:   []string{"public.t has no columns"},
		},
		{
			name:   "upsert without key",
			tables: []change.TableSchema{keylessTable()},
			opts:   Options{Brokers: []string{"kafka:9092"}, TopicPrefix: "shop", Format: Upsert},
			want:   []string{"public.audit_log has no primary key"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tc.tables, tc.opts)
			if err == nil {
				t.Fatalf("no error; wrote:\n%s", buf.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if buf.Len() != 0 {
				t.Errorf("wrote output despite the error:\n%s", buf.String())
			}
		})
	}
}

func TestIdentifierAndQuote(t *testing.T) {
	cases := []struct{ in, ident, quoted string }{
		{"orders", "orders", "`orders`"},
		{"order line", "order_line", "`order line`"},
		{"2024", "_2024", "`2024`"},
		{"a`b", "a_b", "`a``b`"},
		{"", "_", "``"},
		{"café", "café", "`café`"},
		{"x-y.z", "x_y_z", "`x-y.z`"},
	}
	for _, tc := range cases {
		if got := Identifier(tc.in); got != tc.ident {
			t.Errorf("Identifier(%q) = %q, want %q", tc.in, got, tc.ident)
		}
		if got := Quote(tc.in); got != tc.quoted {
			t.Errorf("Quote(%q) = %q, want %q", tc.in, got, tc.quoted)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"debezium-json", "upsert"} {
		if f, err := ParseFormat(s); err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("json"); err == nil {
		t.Error("ParseFormat(json) accepted")
	}
}

// The input slice is sorted on a copy, never in place.
func TestWriteKeepsInput(t *testing.T) {
	in := shopTables()
	first := in[0].ID
	var buf bytes.Buffer
	if err := Write(&buf, in, Options{Brokers: []string{"kafka:9092"}, TopicPrefix: "shop"}); err != nil {
		t.Fatal(err)
	}
	if in[0].ID != first {
		t.Errorf("input reordered: first is now %v", in[0].ID)
	}
}
