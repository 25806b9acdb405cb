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
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const typesDDL = `CREATE TABLE shop.types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED, b BOOL,
  d DECIMAL(20,6), dn DECIMAL(5,2), f FLOAT, db DOUBLE,
  bit1 BIT(1), bit12 BIT(12),
  c CHAR(10), vc VARCHAR(100), tx TEXT, l1 VARCHAR(20) CHARACTER SET latin1,
  bn BINARY(4), vb VARBINARY(10), bl BLOB,
  dt DATE, dtm DATETIME(6), dt0 DATETIME, ts TIMESTAMP(6) NULL DEFAULT NULL,
  tm TIME(6), tm0 TIME, yr YEAR,
  js JSON, en ENUM('a','b','c'), st SET('x','y','z'),
  zd DATE, dz DECIMAL(8,2) ZEROFILL, iz INT ZEROFILL, u UUID, ip6 INET6, ip4 INET4, nul INT
) DEFAULT CHARSET=utf8mb4`

// typesRow is every type at interesting values; %d is the id.
const typesRow = `INSERT INTO shop.types VALUES (%d,
  -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615, 1,
  -12345678901234.123456, 0.50, 3.14159, 2.718281828459045,
  b'1', b'101010101010',
  'abc', _utf8mb4'ünï😀 "q"\n\\<&>', 'long text', _utf8mb4'café',
  X'0102', X'00FF', X'DEADBEEF',
  '2024-01-31', '2024-01-31 12:34:56.123456', '2024-01-31 12:34:56', '2024-01-31 12:34:56.123456',
  '12:34:56.000000', '838:59:59', 2024,
  '{"a": [1, 2.5, "x"]}', 'b', 'x,z',
  '0000-00-00', 12.5, 7, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2001:db8::1', '10.0.0.1', NULL)`

// typesEdge holds the other ends: zeros, negatives, empty strings.
const typesEdge = `INSERT INTO shop.types VALUES (%d,
  127, 0, 32767, 0, 8388607, 0, 2147483647, 0,
  9223372036854775807, 0, 0,
  0, -0.01, -1.5e-7, 1e300,
  b'0', b'000000000001',
  '', '', '', '',
  X'', X'', X'',
  '1000-01-01', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:00', '1970-01-01 00:00:01.000001',
  '-01:02:03.500000', '-838:59:59', 1901,
  'null', 'a', '',
  NULL, 0, 0, 'a0eebc99-9c0b-11e8-bb6d-6bb9bd380a00', '::ffff:1.2.3.0', '0.0.0.0', 7)`

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
	if err := src.Setup(t.Context()); err != nil {
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
