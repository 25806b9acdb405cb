package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// schemaDB is one database of the schema change scenario: how to run SQL,
// the relay's source block, and the dialect's ALTER statements.
type schemaDB struct {
	name   string
	exec   func(sql string)
	source func(id string, n int) string // the source: block of a relay
	// retypeT makes t.a BIGINT and t.b unbounded text; retypeX makes x.n
	// text; retypeBig makes big.a BIGINT.
	retypeT, retypeX, retypeBig string
}

// TestFlinkSchemaChangesPostgres and TestFlinkSchemaChangesMariaDB show
// with a real Flink what a job reads when a captured table changes shape
// mid-stream, with the DDL `cdcrelay flink-ddl` printed before the change
// and the one it prints after, for both value formats; and that a TRUNCATE
// record (format.truncate: event) passes through a Flink job, which keeps
// the truncated rows. docs/flink.md describes each result.
func TestFlinkSchemaChangesPostgres(t *testing.T) {
	requireFlinkE2E(t)
	pg := testenv.StartPostgres(t)
	pg.CreateDB(t, "sch")
	pg.Exec(t, "sch", "CREATE ROLE relay LOGIN REPLICATION PASSWORD 'relay-pw'")
	pg.Exec(t, "sch", "GRANT CREATE ON DATABASE sch TO relay")
	pg.Exec(t, "sch", "ALTER SCHEMA public OWNER TO relay")
	db := schemaDB{
		name: "postgres",
		exec: func(sql string) { pg.Exec(t, "sch", "SET ROLE relay; "+sql) },
		source: func(id string, _ int) string {
			return fmt.Sprintf("  type: postgres\n  dsn: %s\n  tables: [public.t, public.x, public.big, public.tr]\n", pg.DSN("relay", "sch"))
		},
		retypeT:   "ALTER TABLE t ALTER COLUMN a TYPE bigint, ALTER COLUMN b TYPE text",
		retypeX:   "ALTER TABLE x ALTER COLUMN n TYPE text USING n::text",
		retypeBig: "ALTER TABLE big ALTER COLUMN a TYPE bigint",
	}
	db.exec(`CREATE TABLE t (id int PRIMARY KEY, a int, b varchar(10), c int);
CREATE TABLE x (id int PRIMARY KEY, n int);
CREATE TABLE big (id int PRIMARY KEY, a int);
CREATE TABLE tr (id int PRIMARY KEY, v text);
ALTER TABLE t REPLICA IDENTITY FULL; ALTER TABLE x REPLICA IDENTITY FULL;
ALTER TABLE big REPLICA IDENTITY FULL; ALTER TABLE tr REPLICA IDENTITY FULL`)
	schemaScenario(t, db, "public")
}

func TestFlinkSchemaChangesMariaDB(t *testing.T) {
	requireFlinkE2E(t)
	m := testenv.StartMariaDB(t)
	m.Exec(t, "CREATE DATABASE shop")
	m.Exec(t, "CREATE USER 'relay'@'%' IDENTIFIED BY 'relay-pw'")
	m.Exec(t, "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'relay'@'%'")
	m.Exec(t, "GRANT SELECT, INSERT, UPDATE, CREATE ON shop.* TO 'relay'@'%'")
	db := schemaDB{
		name: "mariadb",
		exec: func(sql string) {
			for _, q := range strings.Split(sql, ";") {
				if q = strings.TrimSpace(q); q != "" {
					m.Exec(t, q)
				}
			}
		},
		source: func(id string, n int) string {
			return fmt.Sprintf("  type: mysql\n  dsn: %s\n  tables: [shop.t, shop.x, shop.big, shop.tr]\n  server_id: %d\n", m.DSN("relay", "shop"), 5601+n)
		},
		retypeT:   "ALTER TABLE shop.t MODIFY a BIGINT, MODIFY b TEXT",
		retypeX:   "ALTER TABLE shop.x MODIFY n TEXT",
		retypeBig: "ALTER TABLE shop.big MODIFY a BIGINT",
	}
	db.exec(`CREATE TABLE shop.t (id INT PRIMARY KEY, a INT, b VARCHAR(10), c INT);
CREATE TABLE shop.x (id INT PRIMARY KEY, n INT);
CREATE TABLE shop.big (id INT PRIMARY KEY, a INT);
CREATE TABLE shop.tr (id INT PRIMARY KEY, v TEXT)`)
	schemaScenario(t, db, "shop")
}

// schemaFormat is one relay of the scenario.
type schemaFormat struct{ id, format, truncate string }

// schemaFormats are the scenario's relays. The upsert one skips TRUNCATE:
// upsert-kafka has no record for it, and the config refuses event there.
var schemaFormats = []schemaFormat{{"sdbz", "debezium-json", "event"}, {"sups", "upsert", "skip"}}

// schemaCols are the columns each query selects: those of the DDL printed
// before ("old") or after ("new") the changes.
var schemaCols = map[string][]string{
	"old t": {"id", "a", "b", "c"}, "new t": {"id", "a", "b", "d", "e"},
	"old x": {"id", "n"}, "new x": {"id", "n"},
	"old big": {"id", "a"}, "new big": {"id", "a"},
	"old tr": {"id", "v"}, "new tr": {"id", "v"},
}

// schemaScenario runs the changes on tables t, x, big and tr of db (in
// namespace ns), already created, through two relays (debezium-json and
// upsert), and checks what Flink reads with the old and the new DDL.
func schemaScenario(t *testing.T, db schemaDB, ns string) {
	t.Helper()
	b := testenv.StartKafka(t)
	q := func(table string) string {
		if db.name == "mariadb" {
			return "shop." + table
		}
		return table
	}
	db.exec(fmt.Sprintf(`INSERT INTO %s VALUES (1, 1, 'one', 10), (2, 2, 'two', 20);
INSERT INTO %s VALUES (1, 1); INSERT INTO %s VALUES (1, 1);
INSERT INTO %s VALUES (1, 'a'), (2, 'b')`, q("t"), q("x"), q("big"), q("tr")))
	cfgs := map[string]string{}
	for i, f := range schemaFormats {
		cfg := writeConfig(t, fmt.Sprintf(`id: %s
source:
%skafka:
  brokers: [%s]
  topic_prefix: %s
format:
  value: %s
  truncate: %s
metrics:
  listen: "off"
`, f.id, db.source(f.id, i), b.Addr, f.id, f.format, f.truncate))
		startRelay(t, cfg, "CDCRELAY_SOURCE_PASSWORD=relay-pw")
		cfgs[f.format] = cfg
	}
	waitSchemaTopics(t, b, ns, false)
	fpBefore := offsetsFingerprint(t, cfgs["debezium-json"])
	ddl := map[string]string{}
	for _, f := range schemaFormats {
		ddl["old "+f.format] = renameDDL(t, flinkDDL(t, cfgs[f.format], f.id+"-old"), "_old_"+f.id)
	}

	// (a) ADD COLUMN without and with a default, (b) DROP COLUMN,
	// (c) retype: int -> bigint and varchar(10) -> text, int -> text with a
	// non-numeric value, int -> bigint with a value beyond INT; and a
	// TRUNCATE between inserts.
	for _, sql := range []string{
		fmt.Sprintf("ALTER TABLE %s ADD COLUMN d int", q("t")),
		fmt.Sprintf("INSERT INTO %s (id, a, b, c, d) VALUES (3, 3, 'three', 30, 33)", q("t")),
		fmt.Sprintf("ALTER TABLE %s ADD COLUMN e int DEFAULT 5", q("t")),
		fmt.Sprintf("INSERT INTO %s (id, a, b, c, d, e) VALUES (4, 4, 'four', 40, 44, 45)", q("t")),
		fmt.Sprintf("UPDATE %s SET a = 11 WHERE id = 1", q("t")),
		fmt.Sprintf("ALTER TABLE %s DROP COLUMN c", q("t")),
		fmt.Sprintf("INSERT INTO %s (id, a, b, d, e) VALUES (5, 5, 'five', 55, 56)", q("t")),
		db.retypeT,
		fmt.Sprintf("INSERT INTO %s (id, a, b, d, e) VALUES (6, 6, 'longer than ten', 66, 67)", q("t")),
		db.retypeX,
		fmt.Sprintf("INSERT INTO %s VALUES (2, 'abc')", q("x")),
		db.retypeBig,
		fmt.Sprintf("INSERT INTO %s VALUES (2, 5000000000)", q("big")),
		fmt.Sprintf("TRUNCATE TABLE %s", q("tr")),
		fmt.Sprintf("INSERT INTO %s VALUES (3, 'c')", q("tr")),
	} {
		db.exec(sql)
	}
	waitSchemaTopics(t, b, ns, true)
	// The offsets record's fingerprint follows the change. MariaDB knows a
	// table's shape from its first row event, so before any it has none.
	fpAfter := offsetsFingerprint(t, cfgs["debezium-json"])
	t.Logf("schema fingerprint before the changes %q, after %q", fpBefore, fpAfter)
	if len(fpAfter) != 16 || fpAfter == fpBefore || (db.name == "postgres" && len(fpBefore) != 16) {
		t.Errorf("schema fingerprint before the changes %q, after %q: want 16 hex digits that differ", fpBefore, fpAfter)
	}
	nulls := 0
	for _, r := range readAll(t, b, "sdbz."+ns+".tr") {
		if r.Value == nil && r.Key == "{}" {
			nulls++
		}
	}
	if nulls != 1 {
		t.Fatalf("sdbz.%s.tr holds %d truncate records (key {}, null value), want 1", ns, nulls)
	}
	for _, f := range schemaFormats {
		ddl["new "+f.format] = renameDDL(t, flinkDDL(t, cfgs[f.format], f.id+"-new"), "_new_"+f.id)
	}
	checkSchemaResults(t, readSchemaTables(t, b, db.name, ddl))
	checkNormalized(t, b, db.name, ddl["new debezium-json"])
}

// waitSchemaTopics waits for every record of the scenario in each topic:
// the snapshot's, or all of them (changes). Changes: t 5, x 1, big 1, tr 1,
// and the TRUNCATE record where format.truncate is event.
func waitSchemaTopics(t *testing.T, b *testenv.Broker, ns string, changes bool) {
	t.Helper()
	counts := map[string]int{"t": 2, "x": 1, "big": 1, "tr": 2}
	what := "snapshot"
	if changes {
		counts = map[string]int{"t": 7, "x": 2, "big": 2, "tr": 3}
		what = "changes"
	}
	for _, f := range schemaFormats {
		for table, n := range counts {
			if table == "tr" && f.truncate == "event" && changes {
				n++
			}
			topic := f.id + "." + ns + "." + table
			eventually(t, 2*time.Minute, what+" "+topic, func() bool { return len(readAll(t, b, topic)) >= n })
		}
	}
}

// readSchemaTables reads every table with the old and the new DDL of
// each format, in one Flink runner, and returns what each query read, by
// "old|new format table": its rows, or the error that ended it.
func readSchemaTables(t *testing.T, b *testenv.Broker, dbName string, ddl map[string]string) map[string]string {
	t.Helper()
	type query struct{ when, format, table string }
	var queries []query
	var sqls, files []string
	for _, f := range schemaFormats {
		for _, when := range []string{"old", "new"} {
			files = append(files, ddl[when+" "+f.format])
			for _, table := range []string{"t", "x", "big", "tr"} {
				sqls = append(sqls, fmt.Sprintf("SELECT `%s` FROM `%s_%s_%s` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */",
					strings.Join(schemaCols[when+" "+table], "`, `"), table, when, f.id))
				queries = append(queries, query{when, f.format, table})
			}
		}
	}
	results := testenv.FlinkSelectEach(t, b.Addr, sqls, files...)
	got := map[string]string{}
	for i, qu := range queries {
		r := results[i]
		text := "rows: " + strings.Join(flinkRows(r.Rows, schemaCols[qu.when+" "+qu.table]), "; ")
		if r.Error != "" {
			text = "error: " + r.Error
		}
		got[qu.when+" "+qu.format+" "+qu.table] = text
		t.Logf("%s, %s %s DDL, table %s: %s", dbName, qu.when, qu.format, qu.table, text)
	}
	return got
}

// checkNormalized reads t with the new debezium-json DDL keyed by its
// primary key. The update of row 1 carries the before image the database
// has now (e = 5, the default), which no earlier record held: a job that
// applies -U by the whole row (readSchemaTables) stops; one keyed by the
// primary key, as Flink is when told the source may repeat events, reads
// the new shape.
func checkNormalized(t *testing.T, b *testenv.Broker, dbName, ddl string) {
	t.Helper()
	set := filepath.Join(t.TempDir(), "normalize.sql")
	if err := os.WriteFile(set, []byte("SET 'table.exec.source.cdc-events-duplicate' = 'true';\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cols := schemaCols["new t"]
	rows := testenv.FlinkSelect(t, b.Addr, fmt.Sprintf("SELECT `%s` FROM `t_new_sdbz` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */",
		strings.Join(cols, "`, `")), set, ddl)
	g := "rows: " + strings.Join(flinkRows(rows, cols), "; ")
	t.Logf("%s, new debezium-json DDL with cdc-events-duplicate, table t: %s", dbName, g)
	if w := schemaWant["new t"]; g != w {
		t.Errorf("new debezium-json DDL with cdc-events-duplicate, table t: Flink read\n  %s\nwant\n  %s", g, w)
	}
}

func rowsText(r ...string) string { return "rows: " + strings.Join(r, "; ") }

// schemaWant is what Flink reads of each table with the DDL printed before
// ("old") or after ("new") the changes, in both formats unless
// checkSchemaResults says otherwise.
var schemaWant = map[string]string{
	// The old DDL: a new column is not read; a dropped one reads NULL; a
	// widened type reads as long as the values fit the old one.
	"old t": rowsText("a=11 b=one c=10 id=1", "a=2 b=two c=20 id=2", "a=3 b=three c=30 id=3",
		"a=4 b=four c=40 id=4", "a=5 b=five c=NULL id=5", "a=6 b=longer than ten c=NULL id=6"),
	// The new DDL: records written before a column existed read NULL for
	// it, even where the database filled in a default (row 2's e); row 1
	// was updated after, so its record carries e.
	"new t": rowsText("a=11 b=one d=NULL e=5 id=1", "a=2 b=two d=NULL e=NULL id=2", "a=3 b=three d=33 e=NULL id=3",
		"a=4 b=four d=44 e=45 id=4", "a=5 b=five d=55 e=56 id=5", "a=6 b=longer than ten d=66 e=67 id=6"),
	// A number written before int -> text reads as its digits.
	"new x":   rowsText("id=1 n=1", "id=2 n=abc"),
	"new big": rowsText("a=1 id=1", "a=5000000000 id=2"),
	// The TRUNCATE record is skipped: Flink keeps the truncated rows.
	"old tr": rowsText("id=1 v=a", "id=2 v=b", "id=3 v=c"),
	"new tr": rowsText("id=1 v=a", "id=2 v=b", "id=3 v=c"),
}

// checkSchemaResults compares what Flink read with schemaWant, and checks
// that a value the old type cannot hold fails the job.
func checkSchemaResults(t *testing.T, got map[string]string) {
	t.Helper()
	// The job's error names the value (debezium-json) or the field (json).
	failures := map[string][]string{"old x": {`"abc"`, "field: n."}, "old big": {`"5000000000"`, "field: a."}}
	for _, format := range []string{"debezium-json", "upsert"} {
		for _, key := range []string{"old t", "new t", "old x", "new x", "old big", "new big", "old tr", "new tr"} {
			when, table, _ := strings.Cut(key, " ")
			g := got[when+" "+format+" "+table]
			w, ok := schemaWant[key]
			if format == "debezium-json" && key == "new t" {
				// The update's before image holds e = 5, which the record
				// of row 1 read before did not: see the normalized read.
				w = "error: a change for a row not seen"
			}
			if ok && g != w {
				t.Errorf("%s, %s DDL, table %s: Flink read\n  %s\nwant\n  %s", format, when, table, g, w)
			}
			if v, ok := failures[key]; ok {
				if i := map[string]int{"debezium-json": 0, "upsert": 1}[format]; !strings.HasPrefix(g, "error: ") || !strings.Contains(g, v[i]) {
					t.Errorf("%s, %s DDL, table %s: %s; want the job to fail naming %s", format, when, table, g, v[i])
				}
			}
		}
	}
}

// flinkRows formats rows as sorted "col=value" lines of the named columns.
func flinkRows(rows []map[string]any, cols []string) []string {
	var out []string
	for _, r := range rows {
		var f []string
		for _, c := range cols {
			v := r[c]
			if v == nil {
				f = append(f, c+"=NULL")
				continue
			}
			f = append(f, fmt.Sprintf("%s=%v", c, v))
		}
		sort.Strings(f)
		out = append(out, strings.Join(f, " "))
	}
	sort.Strings(out)
	return out
}

var createTable = regexp.MustCompile("(?m)^CREATE TABLE `([^`]+)`")

// renameDDL copies a flink-ddl script with suffix added to each table
// name, so that scripts of several relays and times load into one session.
func renameDDL(t *testing.T, path, suffix string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := createTable.ReplaceAllString(string(b), "CREATE TABLE `${1}"+suffix+"`")
	p := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// offsetsFingerprint returns the schema fingerprint of the offsets record
// as `cdcrelay offsets show --json` prints it.
func offsetsFingerprint(t *testing.T, cfg string) string {
	t.Helper()
	out, err := exec.Command(testenv.Binary(t), "offsets", "show", "--json", "--config", cfg).Output()
	if err != nil {
		t.Fatalf("offsets show: %v\n%s", err, out)
	}
	var rec struct {
		SchemaFingerprint string `json:"schema_fingerprint"`
	}
	mustJSON(t, out, &rec)
	return rec.SchemaFingerprint
}
