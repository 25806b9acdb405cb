package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/sources"
)

// TestTruncate runs each format.truncate setting against a TRUNCATE between
// two inserts: skip sends nothing and counts it, event sends a truncate
// event in stream order, fail stops with a fatal error that names the table
// and the setting, and keeps the position before the TRUNCATE.
func TestTruncate(t *testing.T) {
	e := startPG(t)
	for _, mode := range []string{config.TruncateSkip, config.TruncateEvent, config.TruncateFail} {
		t.Run(mode, func(t *testing.T) {
			table := "tr_" + mode
			e.exec(t, `CREATE TABLE `+table+` (id int PRIMARY KEY, v text)`)
			cfg := e.config("public." + table)
			cfg.ID = "trunc_" + mode
			cfg.Format.Truncate = mode
			cfg.Source.Snapshot = "never"
			m := metrics.New(prometheus.NewRegistry())
			s, err := New(cfg, testLogger(t), m)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Setup(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			r := runSource(t, s, nil)
			e.exec(t, `INSERT INTO `+table+` VALUES (1, 'a')`)
			r.waitEvents(t, 1, 20*time.Second)
			before := r.lastState()
			e.exec(t, `TRUNCATE `+table+`; INSERT INTO `+table+` VALUES (2, 'b')`)

			if mode == config.TruncateFail {
				var err error
				select {
				case err = <-r.done:
					r.done <- err
				case <-time.After(20 * time.Second):
					t.Fatal("Run did not stop at the TRUNCATE")
				}
				var fe *sources.FatalError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), `"public"."`+table+`"`) || !strings.Contains(err.Error(), "format.truncate") {
					t.Fatalf("Run returned %v, want a fatal error naming the table and format.truncate", err)
				}
				if got := r.events(); len(got) != 1 {
					t.Fatalf("%d events committed, want only the insert before the TRUNCATE", len(got))
				}
				if string(r.lastState()) != string(before) {
					t.Fatal("the position moved past the TRUNCATE")
				}
				return
			}

			want := []change.Op{change.OpCreate, change.OpCreate}
			if mode == config.TruncateEvent {
				want = []change.Op{change.OpCreate, change.OpTruncate, change.OpCreate}
			}
			evs := r.waitEvents(t, len(want), 20*time.Second)
			time.Sleep(200 * time.Millisecond)
			evs = r.events()
			if len(evs) != len(want) {
				t.Fatalf("%d events, want %d", len(evs), len(want))
			}
			for i, ev := range evs {
				if ev.Op != want[i] {
					t.Fatalf("event %d is op %s, want %s", i, ev.Op, want[i])
				}
			}
			if mode == config.TruncateEvent {
				tr := evs[1]
				if tr.Key != nil || tr.Before != nil || tr.After != nil || tr.Table.Name != table || tr.Source.Table != table || tr.Source.LSN == 0 {
					t.Fatalf("truncate event: %+v", tr)
				}
			}
			var got dto.Metric
			if err := m.TruncatesSkipped.WithLabelValues("public." + table).Write(&got); err != nil {
				t.Fatal(err)
			}
			skipped := got.GetCounter().GetValue()
			if wantSkipped := map[string]float64{config.TruncateSkip: 1}[mode]; skipped != wantSkipped {
				t.Fatalf("cdcrelay_truncates_skipped_total = %v, want %v", skipped, wantSkipped)
			}
		})
	}
}
