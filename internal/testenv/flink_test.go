package testenv

import (
	"encoding/json"
	"testing"
)

// TestFlinkSelect runs a query in the Flink runner's select mode and reads
// back its rows, values typed as the runner documents.
func TestFlinkSelect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JVM")
	}
	rows := FlinkSelect(t, "", "SELECT x, y, CAST(1.50 AS DECIMAL(10, 2)) AS d, X'0102' AS b "+
		"FROM (VALUES (1, 'a'), (2, 'b\"é')) AS t(x, y)")
	want := []map[string]any{
		{"x": json.Number("1"), "y": "a", "d": "1.50", "b": "AQI="},
		{"x": json.Number("2"), "y": "b\"é", "d": "1.50", "b": "AQI="},
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows, want %d: %v", len(rows), len(want), rows)
	}
	for i := range want {
		for k, v := range want[i] {
			if rows[i][k] != v {
				t.Errorf("row %d %s = %#v, want %#v", i, k, rows[i][k], v)
			}
		}
	}
}
