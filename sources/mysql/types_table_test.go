package mysql

import "testing"

// Every row of the type table answers every question, and every binlog
// type names a row.
func TestTypeTableComplete(t *testing.T) {
	for name, r := range types {
		if r.binlog == nil || r.text == nil || r.flink == nil {
			t.Errorf("%s: a rule is missing: %+v", name, r)
			continue
		}
		if r.flink("") == "" || r.text("", "utf8mb4") == nil || r.binlog(binlogCol{meta: 1}) == nil {
			t.Errorf("%s: a rule returns nothing", name)
		}
	}
	for tp, name := range binlogTypes {
		if _, ok := types[name]; !ok {
			t.Errorf("binlog type %d names %q, which has no row", tp, name)
		}
	}
	for _, tc := range []struct{ dataType, columnType, flink string }{
		{"tinyint", "tinyint(4)", "TINYINT"},
		{"tinyint", "tinyint(3) unsigned", "SMALLINT"},
		{"mediumint", "mediumint(8) unsigned", "INT"},
		{"int", "int(10) unsigned zerofill", "BIGINT"},
		{"bigint", "bigint(20) unsigned", "DECIMAL(20, 0)"},
		{"decimal", "decimal(8,2) unsigned zerofill", "DECIMAL(8, 2)"},
		{"decimal", "decimal(65,30)", "STRING"},
		{"bit", "bit(1)", "BOOLEAN"},
		{"bit", "bit(12)", "BYTES"},
		{"datetime", "datetime(6)", "TIMESTAMP(6)"},
		{"timestamp", "timestamp", "TIMESTAMP_LTZ(0)"},
		{"year", "year(4)", "INT"},
		{"uuid", "uuid", "STRING"},
		{"point", "point", "BYTES"},
		{"no such type", "x", "BYTES"},
	} {
		if got := FlinkType(tc.dataType, tc.columnType); got != tc.flink {
			t.Errorf("FlinkType(%s, %s) = %s, want %s", tc.dataType, tc.columnType, got, tc.flink)
		}
	}
	if !typeOf("geometry").spatial || typeOf("varchar").spatial {
		t.Error("spatial flags")
	}
	if k, ok := kindOf(column{dataType: "inet6"}); !ok || k != kindText {
		t.Errorf("inet6 key kind %v, %v", k, ok)
	}
	if _, ok := kindOf(column{dataType: "float"}); ok {
		t.Error("float keys are orderable")
	}
}
