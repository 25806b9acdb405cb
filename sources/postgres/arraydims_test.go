package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/sources"
)

func TestArrayDimsText(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"{1,2}", 1},
		{"{{1,2},{3,4}}", 2},
		{`{{{a,"b c"}}}`, 3},
		{"{}", 0},
		{"[0:1]={7,8}", 1},
		{"[0:1][1:1]={{7},{8}}", 2},
		{`{"{x}"}`, 1},
	} {
		if got := arrayDims([]byte(c.in)); got != c.want {
			t.Errorf("arrayDims(%s) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestArrayDimsRefused: a value whose dimensions differ from its column's
// declaration stops Run fatally, on the stream and in the snapshot, with
// one line naming the column and the fix; values of the declared
// dimensions, empty arrays and columns the rules leave out pass.
func TestArrayDimsRefused(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE arr (id int PRIMARY KEY, one int8[], two int8[][], gone int4[]);
ALTER TABLE arr REPLICA IDENTITY FULL;
INSERT INTO arr VALUES (1, '{1,2}', '{{1,2},{3,4}}', '{{5}}'), (2, '{}', '{}', NULL)`)
	cfg := e.config("public.arr")
	cfg.Source.ColumnExclude = []string{"public.arr.gone"}
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, nil)
	r.waitEvents(t, 2, time.Minute)
	e.exec(t, `INSERT INTO arr VALUES (3, '{7}', '{{8}}', '{9}')`)
	r.waitEvents(t, 3, time.Minute)
	e.exec(t, `INSERT INTO arr VALUES (4, '{{1,2},{3,4}}', NULL, NULL)`)
	err := waitDone(t, r)
	var fe *sources.FatalError
	if !errors.As(err, &fe) {
		t.Fatalf("Run: %v, want a fatal error", err)
	}
	t.Logf("stream: %v", err)
	for _, want := range []string{`column one of "public"."arr" is declared with 1 array dimension(s)`, "ARRAY<BIGINT>", "value of 2 dimension(s)", "CHECK (array_ndims(one) = 1)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("stream error lacks %q", want)
		}
	}
	if n := len(r.events()); n != 3 {
		t.Errorf("%d events committed, want 3", n)
	}

	// The same row, met by a snapshot.
	e.exec(t, `CREATE TABLE arr2 (id int PRIMARY KEY, two int4[][]);
ALTER TABLE arr2 REPLICA IDENTITY FULL;
INSERT INTO arr2 VALUES (1, '{{1}}'), (2, '{3}')`)
	cfg2 := e.config("public.arr2")
	cfg2.ID, cfg2.Source.Slot, cfg2.Source.Publication = "t2", "cdcrelay_t2", "cdcrelay_t2"
	s2 := newSource(t, cfg2)
	if err := s2.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r2 := runSource(t, s2, nil)
	err = waitDone(t, r2)
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), `column two of "public"."arr2" is declared with 2 array dimension(s), so flink-ddl declares it ARRAY<ARRAY<INT>>, but a row read by the snapshot holds a value of 1 dimension(s)`) {
		t.Fatalf("snapshot: %v, want the fatal dimensions error", err)
	}
	if n := len(r2.events()); n != 0 {
		t.Errorf("%d events committed from the refused snapshot chunk, want 0", n)
	}
}
