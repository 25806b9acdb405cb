package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// events returns the value of cdcrelay_events_total per table label.
func events(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "cdcrelay_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// Past the limit, tables share the label _other: their counters add up
// there, and the series stay limit+1 whatever the number of tables.
func TestLimitTables(t *testing.T) {
	for _, c := range []struct {
		limit, tables, wantSeries int
	}{
		{limit: 0, tables: 50, wantSeries: 50},
		{limit: 10, tables: 50, wantSeries: 11},
		{limit: 10, tables: 10, wantSeries: 10},
	} {
		reg := prometheus.NewRegistry()
		m := New(reg)
		m.LimitTables(c.limit)
		for i := range c.tables {
			name := "public.t" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			m.Events.WithLabelValues(m.Table(name), "r").Add(2)
			// A table seen before keeps its own label.
			m.Events.WithLabelValues(m.Table(name), "r").Add(1)
		}
		got := events(t, reg)
		if len(got) != c.wantSeries {
			t.Errorf("limit %d, %d tables: %d series, want %d", c.limit, c.tables, len(got), c.wantSeries)
		}
		if c.limit > 0 && c.tables > c.limit {
			if got := got[OtherTable]; got != float64(3*(c.tables-c.limit)) {
				t.Errorf("limit %d: _other counts %v, want %d", c.limit, got, 3*(c.tables-c.limit))
			}
		}
	}
}
