package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestFlinkToastNull shows, with Flink, what docs/postgres.md and `cdcrelay
// check` warn about: under REPLICA IDENTITY DEFAULT, an update that leaves
// a TOASTed value unchanged carries no value for it, the field is absent
// from the event, and Flink reads it as NULL. With REPLICA IDENTITY FULL
// the relay fills it from the old row, and Flink reads the value.
func TestFlinkToastNull(t *testing.T) {
	requireFlinkE2E(t)
	b := testenv.StartKafka(t)
	pg := testenv.StartPostgres(t)
	pg.CreateDB(t, "toast")
	pg.Exec(t, "toast", "CREATE ROLE relay LOGIN REPLICATION PASSWORD 'relay-pw'")
	pg.Exec(t, "toast", "GRANT CREATE ON DATABASE toast TO relay")
	// 20 kB of md5 text does not compress below the TOAST threshold.
	pg.Exec(t, "toast", `CREATE TABLE docs (id int PRIMARY KEY, n int NOT NULL, body text);
ALTER TABLE docs OWNER TO relay;
INSERT INTO docs SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 640) g`)
	cfg := writeConfig(t, fmt.Sprintf(`id: toast
source:
  type: postgres
  dsn: %s
  tables: [public.docs]
kafka:
  brokers: [%s]
  topic_prefix: toast
format:
  value: debezium-json
metrics:
  listen: "off"
`, pg.DSN("relay", "toast"), b.Addr))
	startRelay(t, cfg, "CDCRELAY_SOURCE_PASSWORD=relay-pw")
	ddl := flinkDDL(t, cfg, "toast")
	const query = "SELECT `id`, `n`, CHAR_LENGTH(`body`) AS `len` FROM `docs` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */"
	read := func(what string, records int64) map[string]any {
		t.Helper()
		eventually(t, time.Minute, what, func() bool { return topicEnd(t, b, "toast.public.docs") >= records })
		// The changelog as Flink reads it; the last +I or +U is the row.
		// (Under DEFAULT the -U of an update holds only the key.)
		var last map[string]any
		for _, c := range testenv.FlinkChangelog(t, b.Addr, query, ddl) {
			t.Logf("%s: Flink reads %v %v", what, c["op"], c["row"])
			if op := c["op"]; op == "+I" || op == "+U" {
				last, _ = c["row"].(map[string]any)
			}
		}
		if last == nil {
			t.Fatalf("%s: Flink read no row", what)
		}
		return last
	}

	// The snapshot (a record and a commit marker), then one update under
	// REPLICA IDENTITY DEFAULT.
	eventually(t, time.Minute, "the snapshot", func() bool { return topicEnd(t, b, "toast.public.docs") >= 2 })
	pg.Exec(t, "toast", "UPDATE docs SET n = 1 WHERE id = 1")
	row := read("update under REPLICA IDENTITY DEFAULT", 4)
	if row["len"] != nil {
		t.Errorf("under REPLICA IDENTITY DEFAULT Flink read body of length %v; expected NULL, the hazard this test shows", row["len"])
	}

	// The fix `cdcrelay check` names.
	pg.Exec(t, "toast", "ALTER TABLE docs REPLICA IDENTITY FULL")
	end := topicEnd(t, b, "toast.public.docs")
	pg.Exec(t, "toast", "UPDATE docs SET n = 2 WHERE id = 1")
	row = read("update under REPLICA IDENTITY FULL", end+2)
	if fmt.Sprint(row["len"]) != "20480" || fmt.Sprint(row["n"]) != "2" {
		t.Errorf("under REPLICA IDENTITY FULL Flink read %v; want n 2 and body of length 20480", row)
	}
}
