package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// The compose story of docker-compose.yml without Docker: Kafka, PostgreSQL
// with deploy/postgres, MariaDB with deploy/mysql (compose runs MySQL 8.4;
// the schema is plain enough for both), one relay per database configured
// by deploy/configs, the sink topics of deploy/kafka/create-topics.sh and
// every job of deploy/flink/sql in the Flink runner.

// relayPassword is the password of the relays' database accounts here.
const relayPassword = "relay-demo-only"

type flinkStack struct {
	b       *testenv.Broker
	addr    string // Kafka's bootstrap address
	pg      *testenv.Postgres
	my      *testenv.MariaDB
	pgCfg   string
	myCfg   string
	pgRelay *relayProc
	myRelay *relayProc
	flink   *testenv.Flink
}

// deployPath returns the path of a file under deploy/.
func deployPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "deploy", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readDeploy(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(deployPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// heredoc returns the text between `<<'SQL'` (or `<<SQL`) and the line SQL
// of a shell script.
func heredoc(t *testing.T, script string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<<'?SQL'?\n(.*?)\nSQL\n`).FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("no SQL here-document in\n%s", script)
	}
	return m[1]
}

// sqlStatements splits a plain SQL script on semicolons at line ends,
// leaving out -- comment lines.
func sqlStatements(script string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		cur.WriteString(line + "\n")
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// replaceAll replaces each old with its new in s and fails the test when an
// old is missing, so that a changed deploy file is noticed here.
func replaceAll(t *testing.T, what, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s: %q not found; update the test with the deploy file", what, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

// startFlinkStack starts the stack with the jobs of deploy/flink/sql, or
// with jobs, the paths of other .sql files, when given.
func startFlinkStack(t *testing.T, jobs ...string) *flinkStack {
	t.Helper()
	s := &flinkStack{}
	// Apache Kafka whatever CDCRELAY_TEST_KAFKA says: Flink's Kafka client
	// sends requests the dev broker does not answer in full.
	k := testenv.StartKafka(t)
	s.b, s.addr = k, k.Addr
	// pg_stat_statements counts what the relay's role read (snapshotReads);
	// compose preloads it too.
	s.pg = testenv.StartPostgres(t, testenv.PGConf(
		"shared_preload_libraries = 'pg_stat_statements'", "pg_stat_statements.track = all"))
	// userstat counts the rows each user read (snapshotReads).
	s.my = testenv.StartMariaDB(t, testenv.MariaConf("userstat = 1"))

	// PostgreSQL: the image's init scripts, as the superuser.
	s.pg.CreateDB(t, "shop")
	s.pg.Exec(t, "shop", readDeploy(t, "postgres/01-schema.sql"))
	s.pg.Exec(t, "shop", replaceAll(t, "02-relay-role.sh", heredoc(t, readDeploy(t, "postgres/02-relay-role.sh")),
		":'relay_pw'", "'"+relayPassword+"'"))

	// MariaDB: the database the image makes from MYSQL_DATABASE, then the
	// init scripts.
	// init scripts, on one connection (01-schema.sql says USE inventory).
	// utf8mb4 is MySQL 8.4's default character set; MariaDB's is latin1.
	s.my.Exec(t, "CREATE DATABASE inventory CHARACTER SET utf8mb4")
	mc := myConn(t, s.my, "")
	for _, stmt := range append(sqlStatements(readDeploy(t, "mysql/01-schema.sql")),
		sqlStatements(replaceAll(t, "02-relay-user.sh", heredoc(t, readDeploy(t, "mysql/02-relay-user.sh")),
			"${pw}", relayPassword))...) {
		if _, err := mc.Execute(stmt); err != nil {
			t.Fatalf("mariadb: %v\n%s", err, stmt)
		}
	}
	mc.Close()

	// The sink topics, as deploy/kafka/create-topics.sh makes them.
	m := regexp.MustCompile(`for topic in ([^;]+);`).FindStringSubmatch(readDeploy(t, "kafka/create-topics.sh"))
	if m == nil {
		t.Fatal("deploy/kafka/create-topics.sh: no `for topic in ...;` line")
	}
	adm := kadm.NewClient(s.b.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	compact := "compact"
	res, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"cleanup.policy": &compact}, strings.Fields(m[1])...)
	if err != nil {
		t.Fatalf("create sink topics: %v", err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil {
			t.Fatalf("create sink topic %s: %v", r.Topic, r.Err)
		}
	}

	s.pgCfg = writeConfig(t, replaceAll(t, "configs/postgres.yaml", readDeploy(t, "configs/postgres.yaml"),
		"postgres://cdcrelay@postgres:5432/shop?sslmode=disable", s.pg.DSN("cdcrelay", "shop"),
		"brokers: [kafka:9092]", "brokers: ["+s.addr+"]",
		"listen: 0.0.0.0:9187", `listen: "off"`))
	s.myCfg = writeConfig(t, replaceAll(t, "configs/mysql.yaml", readDeploy(t, "configs/mysql.yaml"),
		"mysql://cdcrelay@mysql:3306/inventory", s.my.DSN("cdcrelay", "inventory"),
		"brokers: [kafka:9092]", "brokers: ["+s.addr+"]",
		"listen: 0.0.0.0:9187", `listen: "off"`))
	s.startRelays(t)
	// The jobs start once the relays have made their topics, as compose
	// starts them once the relays are healthy.
	for _, topic := range []string{"shop.public.orders", "inv.inventory.products", "inv.inventory.stock_levels"} {
		eventually(t, 2*time.Minute, topic+" written", func() bool { return topicEnd(t, s.b, topic) > 0 })
	}

	files, err := filepath.Glob(deployPath(t, "flink/sql/*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no jobs under deploy/flink/sql: %v", err)
	}
	if len(jobs) > 0 {
		files = jobs
	}
	s.flink = testenv.StartFlink(t, s.addr, files, testenv.FlinkRestartConf...)
	t.Logf("flink: %d jobs running after %v: %v", len(s.flink.Jobs), s.flink.StartupTime().Round(time.Millisecond), s.flink.Jobs)
	return s
}

func (s *flinkStack) startRelays(t *testing.T) {
	t.Helper()
	s.pgRelay = startRelay(t, s.pgCfg, "CDCRELAY_SOURCE_PASSWORD="+relayPassword)
	s.myRelay = startRelay(t, s.myCfg, "CDCRELAY_SOURCE_PASSWORD="+relayPassword)
}

// topicEnd returns the sum of the topic's end offsets, 0 if it is missing.
func topicEnd(t *testing.T, b *testenv.Broker, topic string) int64 {
	t.Helper()
	adm := kadm.NewClient(b.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n
}

// sinkState reads a sink topic read_committed and folds it by key: the last
// value of each key wins, a null value deletes it. Each value is flattened
// to canonical strings (see canon).
func sinkState(t *testing.T, b *testenv.Broker, topic string, times ...string) map[string]map[string]string {
	t.Helper()
	state := map[string]map[string]string{}
	for _, r := range readAll(t, b, topic) {
		if r.Value == nil {
			delete(state, canonKey(t, []byte(r.Key)))
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(r.Value))
		dec.UseNumber()
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: value %q: %v", topic, r.Value, err)
		}
		row := map[string]string{}
		for k, x := range v {
			row[k] = canon(t, x, slices.Contains(times, k))
		}
		state[canonKey(t, []byte(r.Key))] = row
	}
	return state
}

// canonKey turns a JSON key object into a string that does not depend on
// the spelling of its numbers or the order of its fields.
func canonKey(t *testing.T, key []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(key))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%s=%s;", k, canon(t, v[k], false))
	}
	return b.String()
}

// canon renders a value so that equal values compare equal: a number as
// an exact fraction (big.Rat), a time as microseconds since the epoch in
// UTC, anything else as its text.
func canon(t *testing.T, v any, isTime bool) string {
	t.Helper()
	switch x := v.(type) {
	case nil:
		return "NULL"
	case json.Number:
		return ratString(t, x.String())
	case int64:
		return big.NewRat(x, 1).RatString()
	case int:
		return big.NewRat(int64(x), 1).RatString()
	case time.Time:
		return fmt.Sprint(x.UnixMicro())
	case string:
		if isTime {
			for _, layout := range []string{"2006-01-02 15:04:05.999999999Z", "2006-01-02T15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
				if tm, err := time.Parse(layout, x); err == nil {
					return fmt.Sprint(tm.UnixMicro())
				}
			}
			t.Fatalf("time %q: unknown layout", x)
		}
		return x
	}
	return fmt.Sprint(v)
}

func ratString(t *testing.T, s string) string {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("number %q", s)
	}
	return r.RatString()
}

// wantOrdersNormalized is what shop.flink.orders_normalized should hold:
// 10-orders-normalized.sql's SELECT, asked of PostgreSQL.
func (s *flinkStack) wantOrdersNormalized(t *testing.T) map[string]map[string]string {
	t.Helper()
	ctx := context.Background()
	c := s.pg.Conn(t, "shop")
	rows, err := c.Query(ctx, `SELECT id, customer_id, (amount * 100)::bigint, upper(status), created_at FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{}
	for rows.Next() {
		var id, customer, cents int64
		var status string
		var created time.Time
		if err := rows.Scan(&id, &customer, &cents, &status, &created); err != nil {
			t.Fatal(err)
		}
		want[canonKey(t, fmt.Appendf(nil, `{"order_id":%d}`, id))] = map[string]string{
			"order_id":     canon(t, id, false),
			"customer_id":  canon(t, customer, false),
			"amount_cents": canon(t, cents, false),
			"status":       status,
			"created_at":   canon(t, created, true),
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return want
}

// wantProductStock is what inv.flink.product_stock should hold:
// 20-product-stock.sql's join and aggregate, asked of MariaDB.
func (s *flinkStack) wantProductStock(t *testing.T) map[string]map[string]string {
	t.Helper()
	c := myConn(t, s.my, "inventory")
	defer c.Close()
	r, err := c.Execute(`SELECT p.id, p.sku, p.name, COUNT(s.warehouse), COALESCE(SUM(s.qty), 0),
		COALESCE(SUM(s.qty * p.price), 0)
		FROM inventory.products AS p LEFT JOIN inventory.stock_levels AS s ON s.product_id = p.id
		GROUP BY p.id, p.sku, p.name`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{}
	for i := range r.Resultset.Values {
		str := func(j int) string {
			v, err := r.GetString(i, j)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		want[canonKey(t, []byte(`{"product_id":`+str(0)+`}`))] = map[string]string{
			"product_id":  ratString(t, str(0)),
			"sku":         str(1),
			"name":        str(2),
			"warehouses":  ratString(t, str(3)),
			"total_qty":   ratString(t, str(4)),
			"stock_value": ratString(t, str(5)),
		}
	}
	return want
}

// converged waits until both sinks equal what the databases say they should
// hold, and fails with the differences if they do not within d.
func (s *flinkStack) converged(t *testing.T, what string, d time.Duration) time.Duration {
	t.Helper()
	n, diff, took := s.awaitSinks(t, d)
	if n > 0 {
		t.Fatalf("%s: sinks differ from the databases after %v:\n%s\nflink log:\n%s", what, d, diff, s.flink.LogTail())
	}
	t.Logf("%s: both sinks equal the databases after %v", what, took.Round(time.Millisecond))
	return took
}

// awaitSinks waits up to d for both sinks to equal what the databases say
// they should hold. It returns the number of keys that still differ, a
// description of them and how long it waited.
func (s *flinkStack) awaitSinks(t *testing.T, d time.Duration) (int, string, time.Duration) {
	t.Helper()
	start := time.Now()
	wantOrders, wantStock := s.wantOrdersNormalized(t), s.wantProductStock(t)
	for {
		gotOrders := sinkState(t, s.b, "shop.flink.orders_normalized", "created_at")
		gotStock := sinkState(t, s.b, "inv.flink.product_stock")
		n1, d1 := mapDiff("orders_normalized", gotOrders, wantOrders)
		n2, d2 := mapDiff("product_stock", gotStock, wantStock)
		if n1+n2 == 0 || time.Since(start) > d || s.flink.Exited() {
			return n1 + n2, d1 + d2, time.Since(start)
		}
		time.Sleep(time.Second)
	}
}

// mapDiff counts the keys whose rows differ between got and want and
// describes at most 20 of them.
func mapDiff(name string, got, want map[string]map[string]string) (int, string) {
	var lines []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			lines = append(lines, fmt.Sprintf("%s: missing %s: want %v", name, k, w))
		case fmt.Sprint(g) != fmt.Sprint(w):
			lines = append(lines, fmt.Sprintf("%s: %s: got %v, want %v", name, k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("%s: extra %s: %v", name, k, g))
		}
	}
	if len(lines) == 0 {
		return 0, ""
	}
	sort.Strings(lines)
	n := len(lines)
	if n > 20 {
		lines = append(lines[:20], fmt.Sprintf("... %d more", n-20))
	}
	return n, fmt.Sprintf("%s: %d differences:\n%s\n", name, n, strings.Join(lines, "\n"))
}

// snapshotReads returns the rows the relays' own accounts read from the
// captured tables so far: in PostgreSQL the rows of the cdcrelay role's
// statements over orders or customers (pg_stat_statements), in MariaDB
// the rows the cdcrelay user read (userstat's USER_STATISTICS; it starts
// at 0 again when the server restarts, so mysqlBase carries what was read
// before).
func (s *flinkStack) snapshotReads(t *testing.T) (pg, my int64) {
	t.Helper()
	ctx := context.Background()
	c := s.pg.Conn(t, "shop")
	err := c.QueryRow(ctx, `SELECT coalesce(sum(s.rows), 0)::bigint FROM pg_stat_statements s
		JOIN pg_roles r ON r.oid = s.userid
		WHERE r.rolname = 'cdcrelay' AND (s.query ILIKE '%orders%' OR s.query ILIKE '%customers%')`).Scan(&pg)
	if err != nil {
		t.Fatalf("pg_stat_statements: %v", err)
	}
	r := s.my.Exec(t, "SELECT COALESCE(SUM(ROWS_READ), 0) FROM information_schema.USER_STATISTICS WHERE USER = 'cdcrelay'")
	my, err = r.GetInt(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pg, my
}

// myConn connects to MariaDB as root with the utf8mb4 character set.
func myConn(t *testing.T, my *testenv.MariaDB, db string) *client.Conn {
	t.Helper()
	c, err := client.Connect(my.Addr(), "root", "", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Execute("SET NAMES utf8mb4"); err != nil {
		t.Fatal(err)
	}
	return c
}

// groupOffsets returns the sum of the offsets group committed for topic and
// the sum of the topic's end offsets.
func groupOffsets(t *testing.T, b *testenv.Broker, group, topic string) (committed, end int64) {
	t.Helper()
	adm := kadm.NewClient(b.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			committed += o.At
		}
	})
	return committed, topicEnd(t, b, topic)
}
