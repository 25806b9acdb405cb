package mysql

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/internal/goldentypes"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	typesDDL  = goldentypes.MariaDBTable
	typesRow  = goldentypes.MariaDBRow
	typesEdge = goldentypes.MariaDBEdge
)

// TestTypesGolden checks the JSON of every supported type, as read by a
// snapshot (op r) and as streamed (op c, u, d), against testdata, and that
// both paths encode the same row to the same bytes.
func TestTypesGolden(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "SET GLOBAL sql_mode = 'NO_ENGINE_SUBSTITUTION'")
	m.Exec(t, typesDDL)
	m.Exec(t, fmt.Sprintf(typesRow, 1))
	m.Exec(t, fmt.Sprintf(typesEdge, 2))
	src, _ := newSource(t, testConfig(m, "shop.types"))
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	k.start(t, src)
	k.waitFor(t, 30*time.Second, "snapshot", func(evs []*change.Event) bool { return countOps(evs, "types", change.OpRead) == 2 })
	m.Exec(t, fmt.Sprintf(typesRow, 11))
	m.Exec(t, fmt.Sprintf(typesEdge, 12))
	m.Exec(t, "UPDATE shop.types SET vc = 'changed', nul = 1 WHERE id = 11")
	m.Exec(t, "DELETE FROM shop.types WHERE id = 12")
	evs := k.waitFor(t, 30*time.Second, "stream", func(evs []*change.Event) bool { return countOps(evs, "types", change.OpDelete) == 1 })

	// The snapshot and the stream must encode the same values identically.
	after := map[string]string{}
	for _, e := range evs {
		if e.Op == change.OpRead || e.Op == change.OpCreate {
			after[string(e.Key)] = strings.Replace(rowJSON(e.After), fmt.Sprintf(`"id":%s`, idOf(e)), `"id":0`, 1)
		}
	}
	for _, pair := range [][2]string{{`{"id":1}`, `{"id":11}`}, {`{"id":2}`, `{"id":12}`}} {
		if after[pair[0]] != after[pair[1]] {
			t.Errorf("snapshot and stream differ:\nsnapshot %s\nstream   %s", after[pair[0]], after[pair[1]])
		}
	}

	var buf bytes.Buffer
	for _, e := range evs {
		fmt.Fprintf(&buf, "%s %s\n  before %s\n  after  %s\n  source connector=%s name=%s db=%s table=%s snapshot=%s server_id=%d\n",
			e.Op, e.Key, rowJSON(e.Before), rowJSON(e.After), e.Source.Connector, e.Source.Name, e.Source.DB, e.Source.Table, e.Source.Snapshot, e.Source.ServerID)
		for _, r := range []*change.Row{e.Before, e.After} {
			if r != nil && !json.Valid([]byte(rowJSON(r))) {
				t.Errorf("row is not valid JSON: %s", rowJSON(r))
			}
		}
	}
	schemas, err := src.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\nDescribe:\n")
	for _, ts := range schemas {
		fmt.Fprintf(&buf, "%s key=%v\n", ts.ID, ts.Key)
		for _, c := range ts.Columns {
			fmt.Fprintf(&buf, "  %-6s %-28s %-16s nullable=%v\n", c.Name, c.SourceType, c.FlinkType, c.Nullable)
		}
	}
	golden(t, "types.golden", buf.Bytes())
}

func idOf(e *change.Event) string {
	v, _ := e.After.Get("id")
	return string(v)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run with -update to accept):\n%s", path, got)
	}
}
