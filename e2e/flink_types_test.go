package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/goldentypes"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// pgTypeCases are the rows of docs/types-postgres.md: (column, SQL type,
// SQL literal), the golden types table whose JSON
// sources/postgres/types_test.go pins.
var pgTypeCases = goldentypes.PostgresCases

// TestFlinkDDLTypes proves `cdcrelay flink-ddl` with Flink: a PostgreSQL
// table with a column of every type of docs/types-postgres.md, one row of
// the values of the golden test, one of NULLs and one written after the
// snapshot, goes through two relays (debezium-json and upsert). Flink runs
// the DDL flink-ddl prints for each and selects every column; each value
// it reads must equal the value the relay wrote (which the golden test
// pins against the database), as the Flink type says it should read it.
// The verdict table is logged; a column whose Flink value differs fails
// the test unless flinkKnownDifferences lists it with the reason.
func TestFlinkDDLTypes(t *testing.T) {
	requireFlinkE2E(t)
	b := testenv.StartKafka(t)
	pg := testenv.StartPostgres(t)
	pg.CreateDB(t, "types")
	pg.Exec(t, "types", "CREATE ROLE relay LOGIN REPLICATION PASSWORD 'relay-pw'")
	pg.Exec(t, "types", "GRANT CREATE ON DATABASE types TO relay")
	var cols, vals, nulls []string
	for _, c := range pgTypeCases {
		cols = append(cols, c[0]+" "+c[1])
		vals = append(vals, c[2])
		nulls = append(nulls, "NULL")
	}
	pg.Exec(t, "types", `CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN stamp AS timestamptz;
CREATE TABLE types (id int PRIMARY KEY, `+strings.Join(cols, ", ")+`);
ALTER TABLE types REPLICA IDENTITY FULL;
ALTER TABLE types OWNER TO relay;
INSERT INTO types VALUES (1, `+strings.Join(vals, ", ")+`), (2, `+strings.Join(nulls, ", ")+`)`)

	formats := []struct{ id, format string }{{"tdbz", "debezium-json"}, {"tups", "upsert"}}
	ddl := map[string]string{}
	for _, f := range formats {
		cfg := writeConfig(t, fmt.Sprintf(`id: %s
source:
  type: postgres
  dsn: %s
  tables: [public.types]
kafka:
  brokers: [%s]
  topic_prefix: %s
format:
  value: %s
metrics:
  listen: "off"
`, f.id, pg.DSN("relay", "types"), b.Addr, f.id, f.format))
		startRelay(t, cfg, "CDCRELAY_SOURCE_PASSWORD=relay-pw")
		cmd := exec.Command(testenv.Binary(t), "flink-ddl", "--config", cfg)
		cmd.Env = append(os.Environ(), "CDCRELAY_SOURCE_PASSWORD=relay-pw")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("flink-ddl %s: %v\n%s", f.format, err, stderr.String())
		}
		path := filepath.Join(t.TempDir(), f.id+".sql")
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		ddl[f.format] = path
	}
	pg.Exec(t, "types", `INSERT INTO types VALUES (3, `+strings.Join(vals, ", ")+`)`)
	for _, f := range formats {
		eventually(t, 2*time.Minute, f.id+" rows", func() bool { return topicEnd(t, b, f.id+".public.types") >= 3 })
	}

	var cases [][2]string
	for _, c := range pgTypeCases {
		cases = append(cases, [2]string{c[0], c[1]})
	}
	checkConformance(t, "PostgreSQL", b, ddl, cases, flinkKnownDifferences)
}

// checkConformance reads every column of the table in the flink-ddl
// output ddl[format] through Flink, for the relay topic <id>.<table> of
// each format, and compares each value with the one the relay wrote.
func checkConformance(t *testing.T, db string, b *testenv.Broker, ddl map[string]string, cases [][2]string, known map[string]string) {
	t.Helper()
	flinkTypes := ddlTypes(t, ddl["debezium-json"])
	var cols []string
	for _, c := range cases {
		cols = append(cols, c[0])
	}
	verdicts := map[string]map[string]string{} // column -> format -> verdict
	for _, format := range []string{"debezium-json", "upsert"} {
		relay := relayRows(t, b, ddlTopic(t, ddl[format]), format)
		got := flinkColumns(t, b.Addr, ddl[format], cols, known)
		for _, c := range cols {
			if verdicts[c] == nil {
				verdicts[c] = map[string]string{}
			}
			verdicts[c][format] = verdict(flinkTypes[c], c, relay, got[c])
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| column | %s | Flink type | debezium-json | upsert |\n|---|---|---|---|---|\n", db)
	for _, c := range cases {
		v := verdicts[c[0]]
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s |\n", c[0], c[1], flinkTypes[c[0]], v["debezium-json"], v["upsert"])
		for _, format := range []string{"debezium-json", "upsert"} {
			if v[format] == "ok" {
				continue
			}
			if reason, ok := known[c[0]]; ok {
				t.Logf("%s (%s): %s; known: %s", c[0], format, v[format], reason)
				continue
			}
			t.Errorf("%s %s (%s): Flink reads it differently: %s", c[0], c[1], format, v[format])
		}
	}
	t.Logf("flink-ddl conformance, %s:\n%s", db, table.String())
}

// ddlTopic returns the topic of the first table of a flink-ddl script.
func ddlTopic(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`'topic' = '([^']+)'`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no topic", path)
	}
	return string(m[1])
}

// flinkKnownDifferences are the columns of pgTypeCases that Flink reads
// differently from what the relay wrote, with the reason (docs/types-postgres.md).
// A reason that starts with "unreadable" means Flink fails on the value,
// so the column is read through a table of its own. None is left: years BC
// and past 9999 are written in ISO-8601's signed form, which Flink parses,
// and flink-ddl nests ARRAY once per declared dimension.
var flinkKnownDifferences = map[string]string{}

// ddlTypes returns the Flink type of each column in a flink-ddl script.
func ddlTypes(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^  `([^`]+)` (.+?)(?: NOT NULL)?,?$").FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// relayRows reads a topic and returns the row each id holds at the end,
// each column as raw JSON.
func relayRows(t *testing.T, b *testenv.Broker, topic, format string) map[string]map[string]json.RawMessage {
	t.Helper()
	rows := map[string]map[string]json.RawMessage{}
	for _, r := range readAll(t, b, topic) {
		var key struct{ ID json.Number }
		mustJSON(t, []byte(r.Key), &key)
		if r.Value == nil {
			delete(rows, key.ID.String())
			continue
		}
		var row map[string]json.RawMessage
		if format == "debezium-json" {
			var env struct{ After map[string]json.RawMessage }
			mustJSON(t, r.Value, &env)
			row = env.After
		} else {
			mustJSON(t, r.Value, &row)
		}
		rows[key.ID.String()] = row
	}
	return rows
}

// flinkColumns selects the columns of the table `types` in Flink and
// returns for each column the value Flink read per id, or the error. The
// JSON formats decode every column a table declares, so one value Flink
// cannot read fails the whole row: the columns are read through tables
// declared from flink-ddl's, each with the key and a subset of the columns.
// One table has every column that flinkKnownDifferences does not list as
// unreadable; each other column gets a table of its own. If the big one
// fails, every column is read on its own.
func flinkColumns(t *testing.T, bootstrap, ddl string, cols []string, known map[string]string) map[string]flinkColumn {
	t.Helper()
	var all, alone []string
	for _, c := range cols {
		if strings.HasPrefix(known[c], "unreadable") {
			alone = append(alone, c)
		} else {
			all = append(all, c)
		}
	}
	tables, queries := flinkTables(t, ddl, all, alone)
	res := testenv.FlinkSelectEach(t, bootstrap, queries, tables)
	if res[0].Error != "" {
		t.Logf("the table of every readable column failed (%s); each column on its own", res[0].Error)
		names := cols
		tables, queries = flinkTables(t, ddl, nil, names)
		res = append([]testenv.FlinkResult{{}}, testenv.FlinkSelectEach(t, bootstrap, queries[1:], tables)...)
		alone, all = names, nil
	}
	out := splitColumns(res[0])
	for i, name := range alone {
		r := res[i+1]
		if r.Error != "" {
			out[name] = flinkColumn{err: r.Error}
			continue
		}
		out[name] = splitColumns(r)[name]
	}
	return out
}

// flinkTables writes a DDL file with a table `t_all` of the key and the
// columns all, and a table `t_<column>` for each column of alone, each
// declared as flink-ddl declares `types`. It returns the file and the
// queries: the one of t_all first (an empty string when all is empty), then
// one per column of alone.
func flinkTables(t *testing.T, ddl string, all, alone []string) (string, []string) {
	t.Helper()
	b, err := os.ReadFile(ddl)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)CREATE TABLE `[^`]+` \\((.*?)\\n\\) WITH \\((.*?)\\n\\);").FindSubmatch(b)
	if m == nil {
		t.Fatalf("no CREATE TABLE in the flink-ddl output:\n%s", b)
	}
	lines := map[string]string{}
	var key string
	for _, l := range strings.Split(string(m[1]), "\n") {
		l = strings.TrimSuffix(strings.TrimSpace(l), ",")
		if strings.HasPrefix(l, "PRIMARY KEY") {
			key = l
		} else if cm := regexp.MustCompile("^`([^`]+)` ").FindStringSubmatch(l); cm != nil {
			lines[cm[1]] = l
		}
	}
	with := string(m[2])
	const hint = " /*+ OPTIONS('scan.bounded.mode'='latest-offset') */"
	var out strings.Builder
	var queries []string
	table := func(name string, cols []string) {
		decl := []string{lines["id"]}
		for _, c := range cols {
			decl = append(decl, lines[c])
		}
		decl = append(decl, key)
		fmt.Fprintf(&out, "CREATE TABLE `%s` (\n  %s\n) WITH (%s\n);\n\n", name, strings.Join(decl, ",\n  "), with)
		queries = append(queries, "SELECT * FROM `"+name+"`"+hint)
	}
	if len(all) > 0 {
		table("t_all", all)
	} else {
		queries = append(queries, "")
	}
	for _, c := range alone {
		table("t_"+c, []string{c})
	}
	path := filepath.Join(t.TempDir(), "tables.sql")
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, queries
}

type flinkColumn struct {
	byID map[string]any
	err  string
}

func splitColumns(r testenv.FlinkResult) map[string]flinkColumn {
	out := map[string]flinkColumn{}
	for _, row := range r.Rows {
		id := fmt.Sprint(row["id"])
		for k, v := range row {
			if k == "id" {
				continue
			}
			c := out[k]
			if c.byID == nil {
				c.byID = map[string]any{}
			}
			c.byID[id] = v
			out[k] = c
		}
	}
	return out
}

// verdict compares what Flink read of one column with what the relay
// wrote, for each id: "ok", or what differs.
func verdict(flinkType, col string, relay map[string]map[string]json.RawMessage, got flinkColumn) string {
	if got.err != "" {
		e := got.err
		if len(e) > 160 {
			e = e[:160] + "..."
		}
		return "error: " + strings.ReplaceAll(e, "|", "/")
	}
	var ids []string
	for id := range relay {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		raw := relay[id][col]
		var want any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if len(raw) > 0 {
			if err := dec.Decode(&want); err != nil {
				return fmt.Sprintf("relay value %s: %v", raw, err)
			}
		}
		v, ok := got.byID[id]
		if !ok {
			return "row " + id + " missing"
		}
		if !sameValue(flinkType, want, v) {
			return fmt.Sprintf("row %s: relay %s, Flink %v", id, raw, jsonText(v))
		}
	}
	return "ok"
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// sameValue reports whether Flink's value (as the runner prints it) is the
// relay's JSON value read as typ.
func sameValue(typ string, want, got any) bool {
	if want == nil || got == nil {
		return want == nil && got == nil
	}
	base := typ
	if i := strings.IndexByte(typ, '('); i > 0 && !strings.HasPrefix(typ, "ARRAY") {
		base = typ[:i]
	}
	switch {
	case strings.HasPrefix(typ, "ARRAY<"):
		elem := strings.TrimSuffix(strings.TrimPrefix(typ, "ARRAY<"), ">")
		w, ok1 := want.([]any)
		g, ok2 := got.([]any)
		if !ok1 || !ok2 || len(w) != len(g) {
			return false
		}
		for i := range w {
			if !sameValue(elem, w[i], g[i]) {
				return false
			}
		}
		return true
	case base == "DECIMAL" || base == "TINYINT" || base == "SMALLINT" || base == "INT" || base == "BIGINT":
		return ratOf(want) != nil && ratOf(got) != nil && ratOf(want).Cmp(ratOf(got)) == 0
	case base == "FLOAT" || base == "DOUBLE":
		ws, wok := want.(string)
		gs, gok := got.(string)
		if wok || gok {
			return wok && gok && ws == gs
		}
		wf, err1 := strconv.ParseFloat(fmt.Sprint(want), 64)
		gf, err2 := strconv.ParseFloat(fmt.Sprint(got), 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if base == "FLOAT" {
			return float32(wf) == float32(gf)
		}
		return wf == gf || math.IsNaN(wf) && math.IsNaN(gf)
	case base == "TIME" || base == "TIMESTAMP" || base == "TIMESTAMP_LTZ":
		w, err1 := parseAnyTime(fmt.Sprint(want))
		g, err2 := parseAnyTime(fmt.Sprint(got))
		return err1 == nil && err2 == nil && w.Equal(g)
	}
	return fmt.Sprint(want) == fmt.Sprint(got)
}

func ratOf(v any) *big.Rat {
	r, ok := new(big.Rat).SetString(fmt.Sprint(v))
	if !ok {
		return nil
	}
	return r
}

// parseAnyTime reads the time texts of the relay ("2024-01-31 12:34:56.5",
// with Z for TIMESTAMP_LTZ, or a time of day) and of the runner (ISO-8601).
// A signed or five-digit year (ISO-8601's form for years BC and past 9999)
// is read apart, since Go's layouts take four digits.
func parseAnyTime(s string) (time.Time, error) {
	s = strings.Replace(s, " ", "T", 1)
	year, setYear := 0, false
	if m := isoYearPattern.FindStringSubmatch(s); m != nil {
		y, err := strconv.Atoi(m[1])
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %v", s, err)
		}
		// 2000 is a leap year, so that a 29 February parses.
		year, setYear, s = y, true, "2000"+m[2]
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999Z", "2006-01-02T15:04:05.999999999", "15:04:05.999999999", "2006-01-02T15:04Z", "2006-01-02T15:04", "15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			if setYear {
				t = time.Date(year, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q", s)
}

var isoYearPattern = regexp.MustCompile(`^([+-]?[0-9]{4,})(-[0-9]{2}-[0-9]{2}T.*)$`)

// The MariaDB golden types table, whose JSON sources/mysql/types_test.go
// pins (docs/types-mysql.md).
const (
	myTypesDDL  = goldentypes.MariaDBTable
	myTypesRow  = goldentypes.MariaDBRow
	myTypesEdge = goldentypes.MariaDBEdge
)

// flinkKnownDifferencesMySQL are the columns of myTypesDDL that Flink reads
// differently from what the relay wrote, with the reason.
var flinkKnownDifferencesMySQL = map[string]string{}

// TestFlinkDDLTypesMySQL is TestFlinkDDLTypes for MariaDB: the table of
// the golden test with its two rows, a row of NULLs and a row streamed
// after the snapshot.
func TestFlinkDDLTypesMySQL(t *testing.T) {
	requireFlinkE2E(t)
	b := testenv.StartKafka(t)
	m := testenv.StartMariaDB(t)
	m.Exec(t, "SET GLOBAL sql_mode = 'NO_ENGINE_SUBSTITUTION'")
	m.Exec(t, "CREATE DATABASE shop")
	m.Exec(t, "CREATE USER 'relay'@'%' IDENTIFIED BY 'relay-pw'")
	m.Exec(t, "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'relay'@'%'")
	m.Exec(t, "GRANT SELECT, INSERT, UPDATE, CREATE ON shop.* TO 'relay'@'%'")
	m.Exec(t, myTypesDDL)
	m.Exec(t, fmt.Sprintf(myTypesRow, 1))
	m.Exec(t, fmt.Sprintf(myTypesEdge, 2))
	m.Exec(t, "INSERT INTO shop.types (id) VALUES (3)")

	ddl := map[string]string{}
	for i, f := range []struct{ id, format string }{{"mdbz", "debezium-json"}, {"mups", "upsert"}} {
		cfg := writeConfig(t, fmt.Sprintf(`id: %s
source:
  type: mysql
  dsn: %s
  tables: [shop.types]
  server_id: %d
kafka:
  brokers: [%s]
  topic_prefix: %s
format:
  value: %s
metrics:
  listen: "off"
`, f.id, m.DSN("relay", "shop"), 5501+i, b.Addr, f.id, f.format))
		startRelay(t, cfg, "CDCRELAY_SOURCE_PASSWORD=relay-pw")
		ddl[f.format] = flinkDDL(t, cfg, f.id)
	}
	m.Exec(t, fmt.Sprintf(myTypesRow, 11))
	for _, id := range []string{"mdbz", "mups"} {
		eventually(t, 2*time.Minute, id+" rows", func() bool { return topicEnd(t, b, id+".shop.types") >= 4 })
	}
	var cases [][2]string
	for _, line := range strings.Split(myTypesDDL, "\n")[2:] {
		for _, col := range strings.Split(strings.TrimSpace(line), ", ") {
			col = strings.TrimSuffix(col, ",")
			if name, typ, ok := strings.Cut(col, " "); ok && !strings.HasPrefix(name, ")") {
				cases = append(cases, [2]string{name, typ})
			}
		}
	}
	checkConformance(t, "MariaDB", b, ddl, cases, flinkKnownDifferencesMySQL)
}

// flinkDDL runs `cdcrelay flink-ddl` for a config and returns the file it
// wrote the output to.
func flinkDDL(t *testing.T, cfg, name string) string {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), "flink-ddl", "--config", cfg)
	cmd.Env = append(os.Environ(), "CDCRELAY_SOURCE_PASSWORD=relay-pw")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("flink-ddl %s: %v\n%s", name, err, stderr.String())
	}
	path := filepath.Join(t.TempDir(), name+".sql")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
