package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestFlinkToastNull shows, with Flink, why source.unchanged_toast is
// refuse by default. Under REPLICA IDENTITY DEFAULT, an update that leaves
// a TOASTed value unchanged carries no value for it:
//   - by default, `cdcrelay check` and `cdcrelay run` refuse the table with
//     one line that names it and the ALTER TABLE fix;
//   - with source.unchanged_toast: omit the field is absent from the event,
//     and Flink reads NULL, a value the database does not hold (the hazard
//     the option documents);
//   - after ALTER TABLE ... REPLICA IDENTITY FULL the default accepts the
//     table, the relay fills the value from the old row, and Flink reads it.
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
	config := func(extra string) string {
		return writeConfig(t, fmt.Sprintf(`id: toast
source:
  type: postgres
  dsn: %s
  tables: [public.docs]
%skafka:
  brokers: [%s]
  topic_prefix: toast
format:
  value: debezium-json
metrics:
  listen: "off"
`, pg.DSN("relay", "toast"), extra, b.Addr))
	}
	cfg := config("")
	omit := config("  unchanged_toast: omit\n")
	env := "CDCRELAY_SOURCE_PASSWORD=relay-pw"
	const refusal = `table "public"."docs": REPLICA IDENTITY is not FULL and body can be TOASTed`
	const fix = `ALTER TABLE "public"."docs" REPLICA IDENTITY FULL`

	// The default refuses the table, in check and in run, and run leaves
	// no slot behind.
	check := exec.Command(testenv.Binary(t), "check", "--config", cfg)
	check.Env = append(os.Environ(), env)
	out, err := check.CombinedOutput()
	t.Logf("check:\n%s", out)
	if check.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), refusal) || !strings.Contains(string(out), fix) {
		t.Fatalf("check: %v; want exit 1 and a line with %q and %q", err, refusal, fix)
	}
	refused := startRelay(t, cfg, env)
	if st := refused.wait(t, 2*time.Minute); st.ExitCode() == 0 || !strings.Contains(refused.out.String(), refusal) || !strings.Contains(refused.out.String(), fix) {
		t.Fatalf("run: exit %d; want non-zero and the refusal line; output:\n%s", st.ExitCode(), refused.out.String())
	}
	if n := pg.Exec(t, "toast", "SELECT 1 FROM pg_replication_slots").RowsAffected(); n != 0 {
		t.Fatalf("a refused run left %d replication slot(s)", n)
	}

	// With omit, the relay runs, and Flink reads NULL for the unchanged
	// value.
	p := startRelay(t, omit, env)
	ddl := flinkDDL(t, cfg, "toast")
	const query = "SELECT `id`, `n`, CHAR_LENGTH(`body`) AS `len` FROM `docs` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */"
	read := func(what string, records int64) map[string]any {
		t.Helper()
		eventually(t, time.Minute, what, func() bool { return topicEnd(t, b, "toast.public.docs") >= records })
		// The changelog as Flink reads it; the last +I or +U is the row.
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
	// The snapshot (a record and a commit marker), then one update.
	eventually(t, time.Minute, "the snapshot", func() bool { return topicEnd(t, b, "toast.public.docs") >= 2 })
	pg.Exec(t, "toast", "UPDATE docs SET n = 1 WHERE id = 1")
	row := read("update under REPLICA IDENTITY DEFAULT, unchanged_toast: omit", 4)
	if row["len"] != nil || fmt.Sprint(row["n"]) != "1" {
		t.Errorf("with omit Flink read %v; want n 1 and a NULL body, the hazard omit accepts", row)
	}
	if !strings.Contains(p.out.String(), "unchanged TOASTed value left out") {
		t.Errorf("with omit the relay logged no warning for the unchanged value")
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("relay exited %d on SIGTERM", code)
	}

	// The fix the refusal names: the default accepts the table, and Flink
	// reads the value.
	pg.Exec(t, "toast", "ALTER TABLE docs REPLICA IDENTITY FULL")
	startRelay(t, cfg, env)
	end := topicEnd(t, b, "toast.public.docs")
	pg.Exec(t, "toast", "UPDATE docs SET n = 2 WHERE id = 1")
	row = read("update under REPLICA IDENTITY FULL", end+2)
	if fmt.Sprint(row["len"]) != "20480" || fmt.Sprint(row["n"]) != "2" {
		t.Errorf("under REPLICA IDENTITY FULL Flink read %v; want n 2 and body of length 20480", row)
	}
}
