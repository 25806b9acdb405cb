package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
)

// TestTruncate runs each format.truncate setting against a TRUNCATE between
// two inserts: skip sends nothing and counts it, event sends a truncate
// event in binlog order, fail stops with a fatal error that names the table
// and the setting, and keeps the position before the TRUNCATE.
func TestTruncate(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	for _, mode := range []string{config.TruncateSkip, config.TruncateEvent, config.TruncateFail} {
		t.Run(mode, func(t *testing.T) {
			table := "tr_" + mode
			m.Exec(t, "CREATE TABLE shop."+table+" (id INT PRIMARY KEY, v VARCHAR(10))")
			cfg := testConfig(m, "shop."+table)
			cfg.ID = "trunc_" + mode
			cfg.Source.ServerID = 0
			cfg.Source.Snapshot = "never"
			cfg.Format.Truncate = mode
			src, met := newSource(t, cfg)
			if err := src.Setup(t.Context(), false); err != nil {
				t.Fatal(err)
			}
			var k sink
			run := k.start(t, src)
			// A fresh Run starts at the server's position when it connects,
			// and says so with a checkpoint.
			k.waitFor(t, 30*time.Second, "the first checkpoint", func([]*change.Event) bool {
				_, st := k.snapshot()
				return st != nil
			})
			m.Exec(t, "INSERT INTO shop."+table+" VALUES (1, 'a')")
			k.waitFor(t, 30*time.Second, "the first insert", func(evs []*change.Event) bool { return len(evs) >= 1 })
			_, before := k.snapshot()
			m.Exec(t, "TRUNCATE TABLE shop."+table)
			m.Exec(t, "INSERT INTO shop."+table+" VALUES (2, 'b')")

			if mode == config.TruncateFail {
				err := run.wait(t, 30*time.Second)
				if !isFatal(err) || !strings.Contains(err.Error(), "shop."+table) || !strings.Contains(err.Error(), "format.truncate") {
					t.Fatalf("Run returned %v, want a fatal error naming the table and format.truncate", err)
				}
				evs, after := k.snapshot()
				if len(evs) != 1 || string(after) != string(before) {
					t.Fatalf("%d events committed and the state moved from %s to %s; want the insert only, and the position before the TRUNCATE", len(evs), before, after)
				}
				return
			}
			want := []change.Op{change.OpCreate, change.OpCreate}
			if mode == config.TruncateEvent {
				want = []change.Op{change.OpCreate, change.OpTruncate, change.OpCreate}
			}
			k.waitFor(t, 30*time.Second, "the events after the TRUNCATE", func(evs []*change.Event) bool { return len(evs) >= len(want) })
			time.Sleep(300 * time.Millisecond)
			evs, _ := k.snapshot()
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
				if tr.Key != nil || tr.Before != nil || tr.After != nil || tr.Table.Name != table || tr.Source.Table != table || tr.Source.GTID == "" {
					t.Fatalf("truncate event: %+v", tr)
				}
			}
			skipped := testGauge(met.TruncatesSkipped.WithLabelValues("shop." + table))
			if wantSkipped := map[string]float64{config.TruncateSkip: 1}[mode]; skipped != wantSkipped {
				t.Fatalf("cdcrelay_truncates_skipped_total = %v, want %v", skipped, wantSkipped)
			}
		})
	}
}
