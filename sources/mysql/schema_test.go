package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

// TestSchemaFingerprint checks the checkpoints' SchemaFingerprint: the same
// across a restart without DDL, a new value after each ALTER TABLE of a
// captured table, counted in cdcrelay_schema_changes_total, and a change
// made while the relay is stopped seen when the stream reaches it.
func TestSchemaFingerprint(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.sf (id INT PRIMARY KEY, v VARCHAR(10))")
	cfg := testConfig(m, "shop.sf")
	var k sink
	n := 0
	var run *running
	var src *Source
	start := func() {
		src, _ = newSource(t, cfg)
		if err := src.Setup(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		run = k.start(t, src)
	}
	insert := func(sql ...string) string {
		t.Helper()
		for _, q := range sql {
			m.Exec(t, q)
		}
		n++
		k.waitFor(t, 30*time.Second, sql[len(sql)-1], func(evs []*change.Event) bool { return len(evs) >= n })
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.fp
	}
	changes := func() float64 { return testGauge(src.m.SchemaChanges.WithLabelValues("shop.sf")) }

	start()
	// The empty table's snapshot done, the stream is running.
	k.waitFor(t, 30*time.Second, "snapshot", func([]*change.Event) bool {
		_, st := k.snapshot()
		return strings.Contains(string(st), `"done":["shop.sf"]`)
	})
	fp0 := insert("INSERT INTO shop.sf VALUES (1, 'a')")
	if len(fp0) != 16 {
		t.Fatalf("fingerprint %q after the first insert: want 16 hex digits", fp0)
	}
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	start()
	if fp := insert("INSERT INTO shop.sf VALUES (2, 'b')"); fp != fp0 {
		t.Fatalf("fingerprint after a restart without DDL: %q, want %q", fp, fp0)
	}
	if got := changes(); got != 0 {
		t.Fatalf("cdcrelay_schema_changes_total after a restart without DDL = %v, want 0", got)
	}
	seen := map[string]string{fp0: "start"}
	steps := []struct{ name, ddl, insert string }{
		{"add column", "ALTER TABLE shop.sf ADD COLUMN w INT DEFAULT 7", "INSERT INTO shop.sf VALUES (3, 'c', 3)"},
		{"retype column", "ALTER TABLE shop.sf MODIFY v TEXT", "INSERT INTO shop.sf VALUES (4, 'd', 4)"},
		{"int to bigint", "ALTER TABLE shop.sf MODIFY w BIGINT", "INSERT INTO shop.sf VALUES (5, 'e', 5)"},
		{"drop column", "ALTER TABLE shop.sf DROP COLUMN w", "INSERT INTO shop.sf VALUES (6, 'f')"},
	}
	for i, s := range steps {
		fp := insert(s.ddl, s.insert)
		if prev, dup := seen[fp]; dup {
			t.Fatalf("%s: fingerprint %q, the same as after %s", s.name, fp, prev)
		}
		seen[fp] = s.name
		if got := changes(); got != float64(i+1) {
			t.Fatalf("%s: cdcrelay_schema_changes_total = %v, want %d", s.name, got, i+1)
		}
	}
	last := k.fp
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	m.Exec(t, "ALTER TABLE shop.sf ADD COLUMN z BIGINT")
	start()
	fp := insert("INSERT INTO shop.sf VALUES (7, 'g', 7)")
	if fp == last || seen[fp] != "" {
		t.Fatalf("fingerprint after a change made while stopped: %q, seen before (%q)", fp, seen[fp])
	}
	if got := changes(); got != 1 {
		t.Fatalf("cdcrelay_schema_changes_total after a restart = %v, want 1", got)
	}
}
