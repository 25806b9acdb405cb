package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFlinkDemo is `make flink-demo`: the compose story on this machine,
// narrated on stdout. It starts the stack of TestFlinkJobs, prints the sink
// topics, changes both databases and prints them again, then kills Flink
// with SIGKILL, changes the databases while it is down, starts it again and
// shows the changes arrive. Only with CDCRELAY_FLINK_DEMO=1.
func TestFlinkDemo(t *testing.T) {
	requireFlinkE2E(t)
	if os.Getenv("CDCRELAY_FLINK_DEMO") == "" {
		t.Skip("run make flink-demo")
	}
	say := func(format string, args ...any) { fmt.Printf("\n== "+format+"\n", args...) }
	say("starting Apache Kafka, PostgreSQL, MariaDB, two relays (deploy/configs) and Flink with every job of deploy/flink/sql")
	s := startFlinkStack(t)
	say("Flink runs %d jobs: %v (up in %v)", len(s.flink.Jobs), s.flink.Jobs, s.flink.StartupTime().Round(time.Millisecond))
	s.converged(t, "snapshot", 3*time.Minute)
	s.show(t, "after the snapshot of the seeded rows")

	say("PostgreSQL: UPDATE orders SET status = 'shipped' WHERE id = 1; INSERT a new order; DELETE order 2")
	s.pg.Exec(t, "shop", "UPDATE orders SET status = 'shipped' WHERE id = 1")
	s.pg.Exec(t, "shop", "INSERT INTO orders (customer_id, amount, status) VALUES (2, 77.70, 'new')")
	s.pg.Exec(t, "shop", "DELETE FROM orders WHERE id = 2")
	say("MariaDB: 100 more mugs in the north warehouse; a new warehouse for caps")
	s.my.Exec(t, "UPDATE inventory.stock_levels SET qty = qty + 100 WHERE product_id = 1 AND warehouse = 'north'")
	s.my.Exec(t, "INSERT INTO inventory.stock_levels VALUES (3, 'east', 5)")
	s.converged(t, "changes", time.Minute)
	s.show(t, "after the changes")

	say("kill -9 of the Flink process; while it is down, another order and a price change")
	s.flink.Kill(t)
	s.pg.Exec(t, "shop", "INSERT INTO orders (customer_id, amount, status) VALUES (3, 12.34, 'written while Flink was down')")
	s.my.Exec(t, "UPDATE inventory.products SET price = 13.00 WHERE id = 1")
	start := time.Now()
	s.flink.Start(t)
	say("Flink is back after %v: the stateless job resumes from its consumer group's offsets, the stateful one rebuilds from the compacted topics", time.Since(start).Round(time.Millisecond))
	took := s.converged(t, "after the restart", time.Minute)
	s.show(t, fmt.Sprintf("after the restart (caught up %v after the jobs ran)", took.Round(time.Millisecond)))
	pg, my := s.snapshotReads(t)
	say("rows the relays read from the databases in all: PostgreSQL %d, MariaDB %d (the snapshot only)", pg, my)
}

// show prints both sink topics as tables.
func (s *flinkStack) show(t *testing.T, when string) {
	t.Helper()
	for _, sink := range []struct{ topic, cols string }{
		{"shop.flink.orders_normalized", "order_id customer_id amount_cents status created_at"},
		{"inv.flink.product_stock", "product_id sku name warehouses total_qty stock_value"},
	} {
		// The last value of each key, as Flink wrote it.
		state := map[string]map[string]json.RawMessage{}
		for _, r := range readAll(t, s.b, sink.topic) {
			if r.Value == nil {
				delete(state, r.Key)
				continue
			}
			var v map[string]json.RawMessage
			mustJSON(t, r.Value, &v)
			state[r.Key] = v
		}
		cols := strings.Fields(sink.cols)
		var rows []string
		for _, r := range state {
			var f []string
			for _, c := range cols {
				f = append(f, string(r[c]))
			}
			rows = append(rows, strings.Join(f, " | "))
		}
		// By the key, the first column, as a number.
		id := func(r string) int { n, _ := strconv.Atoi(strings.SplitN(r, " ", 2)[0]); return n }
		sort.Slice(rows, func(i, j int) bool { return id(rows[i]) < id(rows[j]) })
		fmt.Printf("\n%s, %s (%d rows):\n%s\n", sink.topic, when, len(rows), strings.Join(cols, " | "))
		for _, r := range rows {
			fmt.Println(r)
		}
	}
}
