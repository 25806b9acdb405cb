package postgres

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cdcrelay/cdcrelay/metrics"
)

// TestSchemaFingerprint checks the checkpoints' SchemaFingerprint: the same
// across a restart without DDL, a new value after each ALTER TABLE of a
// captured table, counted in cdcrelay_schema_changes_total, and a change
// made while the relay is stopped seen when the stream reaches it.
func TestSchemaFingerprint(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE sf (id int PRIMARY KEY, v varchar(10));
ALTER TABLE sf REPLICA IDENTITY FULL;
CREATE TABLE other (id int PRIMARY KEY)`)
	cfg := e.config("public.sf", "public.other")
	cfg.ID = "fp"
	var m *metrics.Metrics
	start := func(resume []byte) *relaySim {
		m = metrics.New(prometheus.NewRegistry())
		src, err := New(cfg, testLogger(t), m)
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Setup(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		return runSource(t, src, resume)
	}
	changes := func() float64 {
		var got dto.Metric
		if err := m.SchemaChanges.WithLabelValues("public.sf").Write(&got); err != nil {
			t.Fatal(err)
		}
		return got.GetCounter().GetValue()
	}
	fingerprint := func(r *relaySim) string {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.fp
	}
	n := 0
	insert := func(r *relaySim, sql string) string {
		t.Helper()
		e.exec(t, sql)
		n++
		r.waitEvents(t, n, 30*time.Second)
		return fingerprint(r)
	}

	r := start(nil)
	fp0 := insert(r, `INSERT INTO sf VALUES (1, 'a')`)
	if len(fp0) != 16 {
		t.Fatalf("fingerprint %q after the first insert: want 16 hex digits", fp0)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// A restart without DDL keeps the fingerprint.
	r = start(r.lastState())
	n = 0
	if fp := insert(r, `INSERT INTO sf VALUES (2, 'b')`); fp != fp0 {
		t.Fatalf("fingerprint after a restart without DDL: %q, want %q", fp, fp0)
	}
	seen := map[string]string{fp0: "start"}
	steps := []struct{ name, sql string }{
		{"add column", `ALTER TABLE sf ADD COLUMN w int DEFAULT 7; INSERT INTO sf VALUES (3, 'c', 3)`},
		{"retype column", `ALTER TABLE sf ALTER COLUMN v TYPE text; INSERT INTO sf VALUES (4, 'd', 4)`},
		{"drop column", `ALTER TABLE sf DROP COLUMN w; INSERT INTO sf VALUES (5, 'e')`},
	}
	for i, s := range steps {
		fp := insert(r, s.sql)
		if prev, dup := seen[fp]; dup {
			t.Fatalf("%s: fingerprint %q, the same as after %s", s.name, fp, prev)
		}
		seen[fp] = s.name
		if got := changes(); got != float64(i+1) {
			t.Fatalf("%s: cdcrelay_schema_changes_total = %v, want %d", s.name, got, i+1)
		}
	}
	last := fingerprint(r)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// Changed while stopped: the stored digests still describe the table
	// as of the stored position, so the change counts when streamed.
	e.exec(t, `ALTER TABLE sf ADD COLUMN z bigint`)
	r = start(r.lastState())
	n = 0
	fp := insert(r, `INSERT INTO sf VALUES (6, 'f', 6)`)
	if fp == last || seen[fp] != "" {
		t.Fatalf("fingerprint after a change made while stopped: %q, seen before (%q)", fp, seen[fp])
	}
	if got := changes(); got != 1 {
		t.Fatalf("cdcrelay_schema_changes_total after a restart = %v, want 1", got)
	}
}
