package change

import (
	"fmt"
	"testing"
)

func TestDescribeShape(t *testing.T) {
	got := DescribeShape([]ShapeColumn{{"id", "integer"}, {"v", "character varying(10)"}}, []string{"id"})
	want := "id integer, v character varying(10); key (id)"
	if got != want {
		t.Fatalf("DescribeShape = %q, want %q", got, want)
	}
}

func TestSchemasFingerprint(t *testing.T) {
	base := DescribeShape([]ShapeColumn{{"id", "integer"}, {"v", "text"}}, []string{"id"})
	other := DescribeShape([]ShapeColumn{{"id", "integer"}}, []string{"id"})

	var a Schemas
	if a.Fingerprint() != "" || a.JSON() != nil {
		t.Fatalf("empty Schemas: fingerprint %q, json %s", a.Fingerprint(), a.JSON())
	}
	a.Seed("public.t", base)
	a.Seed("public.u", other)
	fp := a.Fingerprint()
	if len(fp) != 16 {
		t.Fatalf("fingerprint %q: want 16 hex digits", fp)
	}

	// The order tables become known in does not matter.
	var b Schemas
	b.Seed("public.u", other)
	b.Seed("public.t", base)
	if b.Fingerprint() != fp {
		t.Fatalf("same shapes in another order: %q, want %q", b.Fingerprint(), fp)
	}

	// Seed does not overwrite; Observe of the same shape is no change.
	b.Seed("public.t", other)
	if changed, _ := b.Observe("public.t", base); changed || b.Fingerprint() != fp {
		t.Fatalf("same shape observed: changed %v, fingerprint %q want %q", changed, b.Fingerprint(), fp)
	}

	cases := []struct {
		name  string
		shape string
	}{
		{"column added", DescribeShape([]ShapeColumn{{"id", "integer"}, {"v", "text"}, {"w", "integer"}}, []string{"id"})},
		{"column dropped", DescribeShape([]ShapeColumn{{"id", "integer"}}, []string{"id"})},
		{"column retyped", DescribeShape([]ShapeColumn{{"id", "bigint"}, {"v", "text"}}, []string{"id"})},
		{"column renamed", DescribeShape([]ShapeColumn{{"id", "integer"}, {"w", "text"}}, []string{"id"})},
		{"key changed", DescribeShape([]ShapeColumn{{"id", "integer"}, {"v", "text"}}, []string{"id", "v"})},
	}
	seen := map[string]string{fp: "base"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s Schemas
			s.Seed("public.t", base)
			s.Seed("public.u", other)
			changed, was := s.Observe("public.t", c.shape)
			if !changed || was != base {
				t.Fatalf("Observe: changed %v, was %q; want true, %q", changed, was, base)
			}
			got := s.Fingerprint()
			if prev, dup := seen[got]; dup {
				t.Fatalf("fingerprint %q equals that of %s", got, prev)
			}
			seen[got] = c.name
		})
	}
}

func TestSchemasRestore(t *testing.T) {
	shape := DescribeShape([]ShapeColumn{{"id", "int(11)"}}, []string{"id"})
	var a Schemas
	if changed, _ := a.Observe("db.t", shape); changed {
		t.Fatal("first description of a table reported as a change")
	}
	saved := a.JSON()

	var b Schemas
	if err := b.Restore(saved); err != nil {
		t.Fatal(err)
	}
	if b.Fingerprint() != a.Fingerprint() {
		t.Fatalf("restored fingerprint %q, want %q", b.Fingerprint(), a.Fingerprint())
	}
	// The catalog may already show a later shape; the stored one wins.
	b.Seed("db.t", DescribeShape([]ShapeColumn{{"id", "bigint(20)"}}, []string{"id"}))
	if b.Fingerprint() != a.Fingerprint() {
		t.Fatalf("Seed overwrote a restored table: %q, want %q", b.Fingerprint(), a.Fingerprint())
	}
	if changed, _ := b.Observe("db.t", shape); changed {
		t.Fatal("the stored shape observed again reported as a change")
	}
	newer := DescribeShape([]ShapeColumn{{"id", "bigint(20)"}}, []string{"id"})
	changed, was := b.Observe("db.t", newer)
	if !changed || was != shape {
		t.Fatalf("Observe after restore: changed %v, was %q; want true, %q", changed, was, shape)
	}
	b.Forget("db.t")
	if b.Fingerprint() != "" || b.JSON() != nil {
		t.Fatalf("after Forget of the only table: fingerprint %q, json %s", b.Fingerprint(), b.JSON())
	}
	if err := b.Restore([]byte(`not json`)); err == nil {
		t.Fatal("Restore of invalid JSON: no error")
	}
}

// TestSchemasJSONBounded: the digests stay out of the state once they pass
// MaxSchemasJSON, so the per-commit state does not grow with the tables;
// the fingerprint still covers every table.
func TestSchemasJSONBounded(t *testing.T) {
	var s Schemas
	for i := range 5 {
		s.Seed(fmt.Sprintf("public.t%d", i), "id integer; key (id)")
	}
	small := s.JSON()
	if len(small) == 0 || len(small) > MaxSchemasJSON {
		t.Fatalf("5 tables: JSON is %d bytes, want 1..%d", len(small), MaxSchemasJSON)
	}
	fp5 := s.Fingerprint()
	for i := 5; i < 10000; i++ {
		s.Seed(fmt.Sprintf("public.t%d", i), "id integer; key (id)")
	}
	if b := s.JSON(); b != nil {
		t.Fatalf("10,000 tables: JSON is %d bytes, want nil (over %d)", len(b), MaxSchemasJSON)
	}
	fp := s.Fingerprint()
	if fp == "" || fp == fp5 {
		t.Fatalf("fingerprint of 10,000 tables %q, of 5 tables %q: want a new, non-empty one", fp, fp5)
	}
	s.Observe("public.t5000", "id bigint; key (id)")
	if s.Fingerprint() == fp {
		t.Fatal("a changed table among 10,000 left the fingerprint unchanged")
	}
	for i := 5; i < 10000; i++ {
		s.Forget(fmt.Sprintf("public.t%d", i))
	}
	if b := s.JSON(); len(b) == 0 {
		t.Fatal("back to 5 tables: JSON is empty, want the digests again")
	}
}
