package postgres

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/internal/goldentypes"
)

var update = flag.Bool("update", false, "rewrite golden files")

// typeCases are (column name, SQL type, SQL literal) for the golden test.
var typeCases = goldentypes.PostgresCases

// TestTypesGolden streams one row holding every type through the snapshot
// path and the pgoutput path and compares both encodings, and the Flink
// types, with testdata/types.golden.
func TestTypesGolden(t *testing.T) {
	e := startPG(t)
	e.exec(t, goldentypes.PostgresTable()+`;
INSERT INTO types VALUES (1, `+goldentypes.PostgresValues()+`)`)
	s := newSource(t, e.config("public.types"))
	ctx := context.Background()
	if err := s.Setup(ctx, false); err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, nil)
	r.waitEvents(t, 1, 20*time.Second)
	e.exec(t, `INSERT INTO types VALUES (2, `+goldentypes.PostgresValues()+`)`)
	evs := r.waitEvents(t, 2, 20*time.Second)
	snap, stream := evs[0], evs[1]
	if snap.Op != change.OpRead || stream.Op != change.OpCreate {
		t.Fatalf("ops %v %v", snap.Op, stream.Op)
	}
	schemas, err := s.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	flink := map[string]string{}
	for _, c := range schemas[0].Columns {
		flink[c.Name] = c.FlinkType
	}
	var b bytes.Buffer
	for _, c := range typeCases {
		sv, _ := snap.After.Get(c[0])
		tv, _ := stream.After.Get(c[0])
		if !bytes.Equal(sv, tv) {
			t.Errorf("%s: snapshot %s != stream %s", c[0], sv, tv)
		}
		if !jsonValid(tv) {
			t.Errorf("%s: %s is not JSON", c[0], tv)
		}
		fmt.Fprintf(&b, "%-13s %-15s %-18s %s\n", c[0], c[1], flink[c[0]], tv)
	}
	golden := filepath.Join("testdata", "types.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(want, b.Bytes()) {
		t.Errorf("encoding differs from %s (-update to accept):\n%s", golden, b.String())
	}
}

// TestISOYear: years BC and past 9999 get ISO-8601's signed astronomical
// form, which java.time (and so Flink) parses; other values pass as they are.
func TestISOYear(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"2024-01-31", "2024-01-31"},
		{"0044-03-15 BC", "-0043-03-15"},
		{"0001-01-01 00:00:00 BC", "0000-01-01 00:00:00"},
		{"0002-12-31 23:59:59.5+00 BC", "-0001-12-31 23:59:59.5+00"},
		{"4713-01-01 BC", "-4712-01-01"},
		{"10000-01-01 00:00:00.25", "+10000-01-01 00:00:00.25"},
		{"294276-12-31 23:59:59.999999+00", "+294276-12-31 23:59:59.999999+00"},
		{"0000-01-01 00:00:00", "0000-01-01 00:00:00"},
		{"infinity", "infinity"},
	} {
		if got := string(isoYear([]byte(c.in))); got != c.want {
			t.Errorf("isoYear(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := string(encTimestamptz(nil, []byte("0044-03-15 12:00:00+00 BC"))); got != `"-0043-03-15 12:00:00Z"` {
		t.Errorf("encTimestamptz BC = %s", got)
	}
}
