package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// flinkEnv gates the Flink tests: they start a JVM with a Flink cluster
// beside Kafka and both databases, so `make test` leaves them to
// `make flink-e2e`, which sets it.
const flinkEnv = "CDCRELAY_FLINK_E2E"

func requireFlinkE2E(t *testing.T) {
	t.Helper()
	if os.Getenv(flinkEnv) == "" {
		t.Skipf("set %s=1 or run make flink-e2e", flinkEnv)
	}
}

// TestFlinkJobs runs the compose story: both databases with the demo
// schemas, one relay each, every job of deploy/flink/sql in a real Flink.
// After the snapshot of the existing rows, and after a scripted workload of
// inserts, updates (key changes included), deletes and one large
// transaction in each database, every sink topic read read_committed must
// equal what the database says, row for row.
func TestFlinkJobs(t *testing.T) {
	requireFlinkE2E(t)
	s := startFlinkStack(t)
	s.converged(t, "snapshot", 3*time.Minute)

	pgReads0, myReads0 := s.snapshotReads(t)
	t.Logf("relay reads after the snapshot: postgres %d rows, mariadb %d rows", pgReads0, myReads0)

	start := time.Now()
	pgScript(t, s)
	myScript(t, s)
	t.Logf("workload written in %v", time.Since(start).Round(time.Millisecond))
	s.converged(t, "workload", 3*time.Minute)
	time.Sleep(2 * time.Second) // one auto-commit interval and more
	committed, end := groupOffsets(t, s.b, "flink-orders-normalized", "shop.public.orders")
	t.Logf("consumer group flink-orders-normalized: committed %d of %d records of shop.public.orders", committed, end)

	pgReads, myReads := s.snapshotReads(t)
	if pgReads != pgReads0 || myReads != myReads0 {
		t.Errorf("the relays read rows again: postgres %d -> %d, mariadb %d -> %d", pgReads0, pgReads, myReads0, myReads)
	}
}

// pgScript changes shop.orders: inserts, updates, primary key changes,
// deletes, then one large transaction.
func pgScript(t *testing.T, s *flinkStack) {
	t.Helper()
	ctx := context.Background()
	c := s.pg.Conn(t, "shop")
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("postgres: %v\n%s", err, sql)
		}
	}
	exec(`INSERT INTO customers (name, email) VALUES ('Dörte', 'doerte@example.com'), ('Émile', 'emile@example.com')`)
	for i := 0; i < 200; i++ {
		exec(`INSERT INTO orders (customer_id, amount, status) VALUES ($1, $2, $3)`,
			1+i%5, fmt.Sprintf("%d.%02d", i*7%1000, i%100), []string{"new", "paid", "shipped"}[i%3])
	}
	exec(`UPDATE orders SET status = 'paid', amount = amount + 0.01 WHERE id % 3 = 0`)
	exec(`UPDATE orders SET status = 'cancelled' WHERE id % 11 = 0`)
	// Key changes: each becomes a delete of the old key and an insert of
	// the new one.
	exec(`UPDATE orders SET id = id + 100000 WHERE id % 10 = 1`)
	exec(`DELETE FROM orders WHERE id % 7 = 0`)
	// One large transaction: 20,000 inserts, then updates and deletes of
	// some of them and of older rows.
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`INSERT INTO orders (id, customer_id, amount, status)
		 SELECT 200000 + g, 1 + g % 5, (g % 50000) / 100.0, 'bulk' FROM generate_series(1, 20000) g`,
		`UPDATE orders SET status = 'bulk-paid' WHERE id BETWEEN 200001 AND 210000 AND id % 2 = 0`,
		`UPDATE orders SET id = id + 100000 WHERE id BETWEEN 210001 AND 210100`,
		`DELETE FROM orders WHERE id BETWEEN 215001 AND 216000`,
		`UPDATE orders SET amount = amount * 2 WHERE id < 1000`,
	} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			t.Fatalf("postgres: %v\n%s", err, sql)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// myScript changes inventory.products and stock_levels: inserts, updates
// (prices and quantities), primary key changes, deletes, then one large
// transaction.
func myScript(t *testing.T, s *flinkStack) {
	t.Helper()
	c := myConn(t, s.my, "inventory")
	defer c.Close()
	exec := func(sql string) {
		t.Helper()
		if _, err := c.Execute(sql); err != nil {
			t.Fatalf("mariadb: %v\n%s", err, sql)
		}
	}
	exec(`INSERT INTO products (id, sku, name, price)
		SELECT 100 + seq, CONCAT('SKU-', seq), CONCAT('Product ', seq, ' – ü'), seq * 1.25 FROM seq_1_to_60`)
	exec(`INSERT INTO stock_levels (product_id, warehouse, qty)
		SELECT 100 + seq, w.name, seq * 3 % 17 FROM seq_1_to_50
		CROSS JOIN (SELECT 'north' AS name UNION ALL SELECT 'south' UNION ALL SELECT 'east') AS w`)
	exec(`UPDATE stock_levels SET qty = qty + 5 WHERE warehouse = 'north'`)
	exec(`UPDATE products SET price = price + 0.10 WHERE id % 4 = 0`)
	exec(`UPDATE products SET name = 'Enamel mug, blue' WHERE id = 1`)
	// Key changes: a warehouse renamed, and products with no stock moved.
	exec(`UPDATE stock_levels SET warehouse = 'west' WHERE warehouse = 'east' AND product_id % 2 = 0`)
	exec(`UPDATE products SET id = id + 1000 WHERE id BETWEEN 151 AND 160`)
	exec(`DELETE FROM stock_levels WHERE qty < 3`)
	exec(`DELETE FROM stock_levels WHERE product_id = 2`)
	exec(`DELETE FROM products WHERE id = 2`)
	// One large transaction.
	exec(`START TRANSACTION`)
	exec(`INSERT INTO products (id, sku, name, price)
		SELECT 10000 + seq, CONCAT('BULK-', seq), CONCAT('Bulk ', seq), (seq % 1000) / 100 FROM seq_1_to_5000`)
	exec(`INSERT INTO stock_levels (product_id, warehouse, qty)
		SELECT 10000 + seq, 'bulk', seq % 97 FROM seq_1_to_5000`)
	exec(`UPDATE stock_levels SET qty = qty * 2 WHERE warehouse = 'bulk' AND product_id % 3 = 0`)
	exec(`UPDATE stock_levels SET warehouse = 'bulk-2' WHERE warehouse = 'bulk' AND product_id % 5 = 0`)
	exec(`DELETE FROM stock_levels WHERE warehouse = 'bulk' AND product_id % 7 = 0`)
	exec(`DELETE FROM products WHERE id BETWEEN 14001 AND 14100 AND id NOT IN (SELECT product_id FROM stock_levels)`)
	exec(`COMMIT`)
}
