package change

import (
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
