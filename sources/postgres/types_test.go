package postgres

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

var update = flag.Bool("update", false, "rewrite golden files")

// typeCases are (column name, SQL type, SQL literal) for the golden test.
var typeCases = [][3]string{
	{"c_int2", "int2", "-32768"},
	{"c_int4", "int4", "2147483647"},
	{"c_int8", "int8", "-9223372036854775808"},
	{"c_num", "numeric(12,3)", "123456789.125"},
	{"c_num_neg", "numeric(5,2)", "-0.50"},
	{"c_num_big", "numeric(40,2)", "12345678901234567890123456789012345678.12"},
	{"c_num_free", "numeric", "3.14159265358979323846264338327950288419716939937510"},
	{"c_num_nan", "numeric", "'NaN'"},
	{"c_num_inf", "numeric", "'-Infinity'"},
	{"c_float4", "float4", "1.5"},
	{"c_float8", "float8", "0.1"},
	{"c_float8_exp", "float8", "1e300"},
	{"c_float_nan", "float8", "'NaN'"},
	{"c_float_inf", "float4", "'Infinity'"},
	{"c_bool", "bool", "true"},
	{"c_text", "text", `E'quote " backslash \\ tab \t ünï 😀'`},
	{"c_varchar", "varchar(10)", "'abc'"},
	{"c_char", "char(5)", "'ab'"},
	{"c_bytea", "bytea", `'\x00ff10'`},
	{"c_date", "date", "'2024-01-31'"},
	{"c_date_inf", "date", "'infinity'"},
	{"c_time", "time", "'12:34:56.123456'"},
	{"c_time0", "time(0)", "'12:34:56'"},
	{"c_ts", "timestamp", "'2024-01-31 12:34:56.123456'"},
	{"c_ts3", "timestamp(3)", "'2024-01-31 12:34:56.5'"},
	{"c_ts_ninf", "timestamp", "'-infinity'"},
	{"c_tstz", "timestamptz", "'2024-01-31 12:34:56.123456+02'"},
	{"c_tstz_inf", "timestamptz", "'infinity'"},
	{"c_tstz_ninf", "timestamptz", "'-infinity'"},
	{"c_tstz_bc", "timestamptz", "'0044-03-15 12:00:00+00 BC'"},
	{"c_ts_big", "timestamp", "'10000-01-01 00:00:00.25'"},
	{"c_stamp", "stamp", "'2024-06-30 23:59:59.999999+00'"},
	{"c_timetz", "timetz", "'12:00:00+02'"},
	{"c_interval", "interval", "'1 year 2 mons 3 days 04:05:06.5'"},
	{"c_uuid", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"},
	{"c_json", "json", `'{"a": [1, 2]}'`},
	{"c_jsonb", "jsonb", `'{"b": null, "a": 1}'`},
	{"c_int_arr", "int4[]", "'{1,NULL,3}'"},
	{"c_text_arr", "text[]", `ARRAY['a b', 'q"uote', NULL, 'NULL', '']`},
	{"c_2d_arr", "int8[]", "'{{1,2},{3,4}}'"},
	{"c_num_arr", "numeric(6,2)[]", "'{1.50,-2.25}'"},
	{"c_ts_arr", "timestamptz[]", `'{"2024-01-01 00:00:00+00"}'`},
	{"c_empty_arr", "int4[]", "'{}'"},
	{"c_enum", "mood", "'happy'"},
	{"c_enum_arr", "mood[]", "'{sad,happy}'"},
	{"c_domain", "posint", "7"},
	{"c_range", "int4range", "'[1,10)'"},
	{"c_inet", "inet", "'10.0.0.1/8'"},
	{"c_money", "money", "12.34"},
	{"c_null", "text", "NULL"},
}

// TestTypesGolden streams one row holding every type through the snapshot
// path and the pgoutput path and compares both encodings, and the Flink
// types, with testdata/types.golden.
func TestTypesGolden(t *testing.T) {
	e := startPG(t)
	var cols, vals []string
	for _, c := range typeCases {
		cols = append(cols, c[0]+" "+c[1])
		vals = append(vals, c[2])
	}
	e.exec(t, `CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN stamp AS timestamptz;
CREATE TABLE types (id int PRIMARY KEY, `+strings.Join(cols, ", ")+`);
INSERT INTO types VALUES (1, `+strings.Join(vals, ", ")+`)`)
	s := newSource(t, e.config("public.types"))
	ctx := context.Background()
	if err := s.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, nil)
	r.waitEvents(t, 1, 20*time.Second)
	e.exec(t, `INSERT INTO types VALUES (2, `+strings.Join(vals, ", ")+`)`)
	evs := r.waitEvents(t, 2, 20*time.Second)
	snap, stream := evs[0], evs[1]
	if snap.Op != change.OpRead || stream.Op != change.OpCreate {
		t.Fatalf("ops %v %v", snap.Op, stream.Op)
	}
	schemas, err := s.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	flink := map[string]string{}
	for _, c := range schemas[0].Columns {
		flink[c.Name] = c.FlinkType
	}
	var b bytes.Buffer
	for _, c := range typeCases {
		sv, _ := snap.After.Get(c[0])
		tv, _ := stream.After.Get(c[0])
		if !bytes.Equal(sv, tv) {
			t.Errorf("%s: snapshot %s != stream %s", c[0], sv, tv)
		}
		if !jsonValid(tv) {
			t.Errorf("%s: %s is not JSON", c[0], tv)
		}
		fmt.Fprintf(&b, "%-13s %-15s %-18s %s\n", c[0], c[1], flink[c[0]], tv)
	}
	golden := filepath.Join("testdata", "types.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(want, b.Bytes()) {
		t.Errorf("encoding differs from %s (-update to accept):\n%s", golden, b.String())
	}
}
