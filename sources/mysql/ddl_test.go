package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

// TestDDLMidStream runs each schema change between row changes and checks
// the events on both sides of it.
func TestDDLMidStream(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY, a INT, b VARCHAR(10))")
	m.Exec(t, "CREATE TABLE shop.staging (id INT PRIMARY KEY, v VARCHAR(10))")
	m.Exec(t, "INSERT INTO shop.staging VALUES (1, 'x'), (2, 'y')")
	src, _ := newSource(t, testConfig(m, "shop.items", "shop.orders"))
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	k.start(t, src)
	// Wait until the (empty) initial snapshot of items is done.
	k.waitFor(t, 30*time.Second, "start", func([]*change.Event) bool {
		_, st := k.snapshot()
		return strings.Contains(string(st), `"done":["shop.items"]`) && !strings.Contains(string(st), `"queue"`)
	})

	last := func(evs []*change.Event, table string) *change.Event {
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].Table.Name == table {
				return evs[i]
			}
		}
		return nil
	}
	steps := []struct {
		name  string
		sql   []string
		table string
		n     int    // events of table expected so far
		want  string // row JSON of the last event's after (or before for d)
	}{
		{"before", []string{"INSERT INTO shop.items VALUES (1, 10, 'one')"}, "items", 1, `{"id":1,"a":10,"b":"one"}`},
		{"add column", []string{"ALTER TABLE shop.items ADD COLUMN c INT DEFAULT 5", "INSERT INTO shop.items VALUES (2, 20, 'two', 7)"}, "items", 2, `{"id":2,"a":20,"b":"two","c":7}`},
		{"drop column", []string{"ALTER TABLE shop.items DROP COLUMN a", "UPDATE shop.items SET b = 'uno' WHERE id = 1"}, "items", 3, `{"id":1,"b":"uno","c":5}`},
		{"rename column", []string{"ALTER TABLE shop.items RENAME COLUMN b TO name", "INSERT INTO shop.items VALUES (3, 'three', 0)"}, "items", 4, `{"id":3,"name":"three","c":0}`},
		{"truncate", []string{"TRUNCATE TABLE shop.items", "INSERT INTO shop.items VALUES (4, 'four', 1)"}, "items", 5, `{"id":4,"name":"four","c":1}`},
		{"rename into the list", []string{"RENAME TABLE shop.staging TO shop.orders", "INSERT INTO shop.orders VALUES (3, 'z')"}, "orders", 3, ``},
		{"rename out of the list", []string{"RENAME TABLE shop.items TO shop.items_old", "INSERT INTO shop.items_old VALUES (5, 'five', 1)", "INSERT INTO shop.orders VALUES (4, 'w')"}, "orders", 4, `{"id":4,"v":"w"}`},
		{"drop", []string{"DROP TABLE shop.items_old", "DROP TABLE shop.orders", "CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, total DECIMAL(8,2))", "INSERT INTO shop.orders VALUES (9, 1.50)"}, "orders", 5, `{"id":9,"total":1.50}`},
	}
	for _, s := range steps {
		for _, q := range s.sql {
			m.Exec(t, q)
		}
		evs := k.waitFor(t, 30*time.Second, s.name, func(evs []*change.Event) bool {
			n := 0
			for _, e := range evs {
				if e.Table.Name == s.table {
					n++
				}
			}
			return n >= s.n
		})
		if s.want != "" {
			e := last(evs, s.table)
			got := rowJSON(e.After)
			if e.Op == change.OpDelete {
				got = rowJSON(e.Before)
			}
			if got != s.want {
				t.Errorf("%s: last %s event %s %s, want %s", s.name, s.table, e.Op, got, s.want)
			}
		}
	}
	time.Sleep(1500 * time.Millisecond)
	evs, _ := k.snapshot()
	var lines []string
	r3 := false
	for _, e := range evs {
		op := string(e.Op)
		if e.Table.Name == "orders" && string(e.Key) == `{"id":3}` && (op == "r" || op == "c") {
			// Written right after the rename: the snapshot reads it or the
			// stream sends it, depending on whether it commits before the
			// first chunk; never both. Sent by the stream inside the chunk's
			// window, it comes before the chunk's rows, which wait for the
			// high watermark; so its place is not fixed either.
			if r3 {
				t.Errorf("key 3 of shop.orders sent twice")
			}
			r3 = true
			continue
		}
		lines = append(lines, op+" "+e.Table.String()+" "+string(e.Key))
		if e.Table.Name == "items_old" {
			t.Errorf("event of a table renamed out of the list: %s %s", e.Op, e.Key)
		}
	}
	got := strings.Join(lines, "\n")
	want := strings.Join([]string{
		`c shop.items {"id":1}`,
		`c shop.items {"id":2}`,
		`u shop.items {"id":1}`,
		`c shop.items {"id":3}`,
		`c shop.items {"id":4}`,
		`r shop.orders {"id":1}`, // the renamed table is snapshotted under its new name
		`r shop.orders {"id":2}`,
		`c shop.orders {"id":4}`,
		`c shop.orders {"id":9}`,
	}, "\n")
	if got != want || !r3 {
		t.Errorf("events (key 3 of shop.orders seen: %v):\n%s\nwant:\n%s", r3, got, want)
	}
}
