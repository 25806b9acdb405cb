package e2e

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// The bad-input suite: each case gives `cdcrelay run` something wrong and
// expects it to exit non-zero with one known error line (golden files under
// testdata/badinput/, refreshed with -update), having created nothing: no
// slot, publication or watermark table on the database, no topic in Kafka.

var updateGolden = flag.Bool("update", false, "rewrite the golden files of the bad-input suite")

// badCase is one bad input. setup prepares the database and returns the
// source part of the config (type, dsn, tables and the rest of source:)
// and extra environment for the relay.
type badCase struct {
	name  string
	kind  string // postgres or mysql
	opts  any    // []testenv.PGOption or []testenv.MariaOption
	setup func(t *testing.T, w *badWorld) (source string, env []string)
	// rawConfig replaces the whole config file when set (malformed input).
	rawConfig string
}

type badWorld struct {
	pg *testenv.Postgres
	my *testenv.MariaDB
	b  *testenv.Broker
	// metricsListen is metrics.listen of the config; "off" unless setup
	// sets it.
	metricsListen string
}

const badPass = "relay-secret"

// pgRelayRole creates the role and database a well-configured relay has.
func pgRelayRole(t *testing.T, pg *testenv.Postgres, replication bool) {
	attr := "LOGIN REPLICATION"
	if !replication {
		attr = "LOGIN"
	}
	pg.Exec(t, "postgres", "CREATE ROLE relay "+attr+" PASSWORD '"+badPass+"'")
	pg.Exec(t, "postgres", "CREATE DATABASE shop OWNER relay")
	pg.Exec(t, "shop", "ALTER SCHEMA public OWNER TO relay")
	pg.Exec(t, "shop", "SET ROLE relay; CREATE TABLE public.orders (id bigint PRIMARY KEY, note text); ALTER TABLE public.orders REPLICA IDENTITY FULL")
}

func myRelayUser(t *testing.T, m *testenv.MariaDB, grants string) {
	m.Exec(t, "CREATE DATABASE shop")
	m.Exec(t, "CREATE USER 'relay'@'%' IDENTIFIED BY '"+badPass+"'")
	if grants != "" {
		m.Exec(t, "GRANT "+grants+" ON *.* TO 'relay'@'%'")
	}
	m.Exec(t, "GRANT SELECT, INSERT, UPDATE, CREATE ON shop.* TO 'relay'@'%'")
	m.Exec(t, "CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, note TEXT)")
}

func pgSource(w *badWorld, dsnQuery, tables string) string {
	return fmt.Sprintf("  type: postgres\n  dsn: postgres://relay@%s:%d/shop?%s\n  tables: [%s]\n", w.pg.Host, w.pg.Port, dsnQuery, tables)
}

func mySource(w *badWorld, tables string) string {
	return fmt.Sprintf("  type: mysql\n  dsn: mysql://relay@%s/shop\n  tables: [%s]\n", w.my.Addr(), tables)
}

var pwEnv = []string{"CDCRELAY_SOURCE_PASSWORD=" + badPass}

func badCases() []badCase {
	return []badCase{
		{name: "config-not-yaml", kind: "postgres", rawConfig: "id: shop\nsource: [type: postgres\n"},
		{name: "config-unknown-key", kind: "postgres", setup: func(t *testing.T, w *badWorld) (string, []string) {
			pgRelayRole(t, w.pg, true)
			return pgSource(w, "sslmode=disable", "public.orders") + "  snapshot_chunk: 10\n", pwEnv
		}},
		{name: "config-odd-identifier-unquoted", kind: "postgres", setup: func(t *testing.T, w *badWorld) (string, []string) {
			pgRelayRole(t, w.pg, true)
			return pgSource(w, "sslmode=disable", `public.Odd.Name`), pwEnv
		}},
		{name: "pg-wrong-password", kind: "postgres", setup: func(t *testing.T, w *badWorld) (string, []string) {
			pgRelayRole(t, w.pg, true)
			return pgSource(w, "sslmode=disable", "public.orders"), []string{"CDCRELAY_SOURCE_PASSWORD=wrong"}
		}},
		{name: "pg-no-replication-privilege", kind: "postgres", setup: func(t *testing.T, w *badWorld) (string, []string) {
			pgRelayRole(t, w.pg, false)
			return pgSource(w, "sslmode=disable", "public.orders"), pwEnv
		}},
		{name: "pg-wal-level-replica", kind: "postgres", opts: []testenv.PGOption{testenv.PGConf("wal_level = replica")},
			setup: func(t *testing.T, w *badWorld) (string, []string) {
				pgRelayRole(t, w.pg, true)
				return pgSource(w, "sslmode=disable", "public.orders"), pwEnv
			}},
		{name: "pg-table-without-key", kind: "postgres", setup: func(t *testing.T, w *badWorld) (string, []string) {
			pgRelayRole(t, w.pg, true)
			w.pg.Exec(t, "shop", "SET ROLE relay; CREATE TABLE public.events (at timestamptz, what text)")
			return pgSource(w, "sslmode=disable", "public.orders, public.events"), pwEnv
		}},
		// A TOASTable column under REPLICA IDENTITY DEFAULT: an unchanged
		// value would reach consumers as NULL.
		{name: "pg-toast-identity-default", kind: "postgres", setup: func(t *testing.T, w *badWorld) (string, []string) {
			pgRelayRole(t, w.pg, true)
			w.pg.Exec(t, "shop", "SET ROLE relay; CREATE TABLE public.notes (id int PRIMARY KEY, body text)")
			return pgSource(w, "sslmode=disable", "public.orders, public.notes"), pwEnv
		}},
		{name: "pg-odd-identifier-missing", kind: "postgres", setup: func(t *testing.T, w *badWorld) (string, []string) {
			pgRelayRole(t, w.pg, true)
			w.pg.Exec(t, "shop", `SET ROLE relay; CREATE TABLE public."Odd.Name ""q""" (id int PRIMARY KEY)`)
			// The config names a different odd table than the one that exists.
			return pgSource(w, "sslmode=disable", `'public."Odd.Name ""Q"""'`), pwEnv
		}},
		// A second relay on one host with the first one's metrics port.
		{name: "metrics-listen-taken", kind: "postgres", setup: func(t *testing.T, w *badWorld) (string, []string) {
			pgRelayRole(t, w.pg, true)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			w.metricsListen = ln.Addr().String()
			return pgSource(w, "sslmode=disable", "public.orders"), pwEnv
		}},
		{name: "pg-tls-required-server-without-tls", kind: "postgres", setup: func(t *testing.T, w *badWorld) (string, []string) {
			pgRelayRole(t, w.pg, true)
			return pgSource(w, "sslmode=require", "public.orders"), pwEnv
		}},
		{name: "mysql-binlog-format-statement", kind: "mysql", opts: []testenv.MariaOption{testenv.MariaConf("binlog_format = STATEMENT")},
			setup: func(t *testing.T, w *badWorld) (string, []string) {
				myRelayUser(t, w.my, "REPLICATION SLAVE, BINLOG MONITOR")
				return mySource(w, "shop.orders"), pwEnv
			}},
		{name: "mysql-no-replication-privilege", kind: "mysql", setup: func(t *testing.T, w *badWorld) (string, []string) {
			myRelayUser(t, w.my, "")
			return mySource(w, "shop.orders"), pwEnv
		}},
		{name: "mysql-wrong-password", kind: "mysql", setup: func(t *testing.T, w *badWorld) (string, []string) {
			myRelayUser(t, w.my, "REPLICATION SLAVE, BINLOG MONITOR")
			return mySource(w, "shop.orders"), []string{"CDCRELAY_SOURCE_PASSWORD=wrong"}
		}},
		{name: "mysql-table-without-key", kind: "mysql", setup: func(t *testing.T, w *badWorld) (string, []string) {
			myRelayUser(t, w.my, "REPLICATION SLAVE, BINLOG MONITOR")
			w.my.Exec(t, "CREATE TABLE shop.events (at DATETIME, what TEXT)")
			return mySource(w, "shop.orders, shop.events"), pwEnv
		}},
		{name: "mysql-tls-server-without-tls", kind: "mysql", setup: func(t *testing.T, w *badWorld) (string, []string) {
			myRelayUser(t, w.my, "REPLICATION SLAVE, BINLOG MONITOR")
			return mySource(w, "shop.orders") + "  tls:\n    enabled: true\n", pwEnv
		}},
	}
}

func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	for _, bc := range badCases() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			w := &badWorld{b: testenv.StartBroker(t), metricsListen: "off"}
			switch bc.kind {
			case "postgres":
				opts, _ := bc.opts.([]testenv.PGOption)
				w.pg = testenv.StartPostgres(t, opts...)
			case "mysql":
				opts, _ := bc.opts.([]testenv.MariaOption)
				w.my = testenv.StartMariaDB(t, opts...)
			}
			topicsBefore := listTopics(t, w.b)
			cfg := bc.rawConfig
			var env []string
			if cfg == "" {
				var source string
				source, env = bc.setup(t, w)
				cfg = fmt.Sprintf("id: shop\nsource:\n%skafka:\n  brokers: [%s]\nmetrics:\n  listen: %q\n", source, w.b.Addr, w.metricsListen)
			}
			path := writeConfig(t, cfg)

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, testenv.Binary(t), "run", "--config", path)
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("cdcrelay run still running after 3 minutes on bad input; output:\n%s", out)
			}
			if strings.Contains(string(out), "is not built into this binary") {
				t.Fatalf("the binary has no %s source", bc.kind)
			}
			if err == nil {
				t.Fatalf("cdcrelay run exited 0 on bad input; output:\n%s", out)
			}
			got := errorLine(string(out), w, path)
			golden := filepath.Join("testdata", "badinput", bc.name+".golden")
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create it): %v\ngot: %s", err, got)
			}
			if strings.TrimSpace(string(want)) != got {
				t.Errorf("error line:\n got: %s\nwant: %s\nfull output:\n%s", got, strings.TrimSpace(string(want)), out)
			}
			if after := listTopics(t, w.b); strings.Join(after, ",") != strings.Join(topicsBefore, ",") {
				t.Errorf("topics changed: before %v, after %v", topicsBefore, after)
			}
			if left := createdObjects(t, w); len(left) > 0 {
				t.Errorf("bad input left objects on the database: %v", left)
			}
		})
	}
}

// errorLine is the relay's error as one line: the line that starts with
// "cdcrelay run:", with the problem lines that follow it joined by " | ",
// and with ports and temp paths replaced by placeholders.
func errorLine(out string, w *badWorld, cfgPath string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var parts []string
	for i, l := range lines {
		if strings.HasPrefix(l, "cdcrelay run:") {
			parts = append(parts, l)
			for _, more := range lines[i+1:] {
				if strings.HasPrefix(more, "time=") {
					break
				}
				parts = append(parts, strings.TrimSpace(more))
			}
			break
		}
	}
	if len(parts) == 0 {
		parts = []string{"(no 'cdcrelay run:' line) " + lines[len(lines)-1]}
	}
	s := strings.Join(parts, " | ")
	s = strings.ReplaceAll(s, cfgPath, "CONFIG")
	if w.pg != nil {
		s = strings.ReplaceAll(s, fmt.Sprint(w.pg.Port), "PORT")
	}
	if w.my != nil {
		s = strings.ReplaceAll(s, fmt.Sprint(w.my.Port), "PORT")
	}
	s = strings.ReplaceAll(s, fmt.Sprint(w.b.Port), "BROKERPORT")
	if _, port, err := net.SplitHostPort(w.metricsListen); err == nil {
		s = strings.ReplaceAll(s, port, "METRICSPORT")
	}
	s = regexp.MustCompile(`127\.0\.0\.1:\d+->127\.0\.0\.1:\d+`).ReplaceAllString(s, "CONN")
	return s
}

func listTopics(t *testing.T, b *testenv.Broker) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	td, err := kadm.NewClient(b.Client(t)).ListTopics(ctx)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	names := td.Names()
	sort.Strings(names)
	return names
}

// createdObjects lists what a relay would have created: PostgreSQL slots,
// publications and tables named cdcrelay*, the MySQL watermark table.
func createdObjects(t *testing.T, w *badWorld) []string {
	t.Helper()
	var out []string
	if w.pg != nil {
		for _, db := range []string{"postgres", "shop"} {
			if db == "shop" && !pgHasDB(t, w.pg, "shop") {
				continue
			}
			c := w.pg.Conn(t, db)
			rows, err := c.Query(context.Background(), `SELECT 'slot ' || slot_name FROM pg_replication_slots
				UNION ALL SELECT 'publication ' || pubname FROM pg_publication
				UNION ALL SELECT 'table ' || relname FROM pg_class WHERE relname LIKE 'cdcrelay%'`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s string
				_ = rows.Scan(&s)
				out = append(out, db+": "+s)
			}
			rows.Close()
		}
	}
	if w.my != nil {
		r := w.my.Exec(t, "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name LIKE 'cdcrelay%'")
		for i := range r.Values {
			s, _ := r.GetString(i, 0)
			n, _ := r.GetString(i, 1)
			out = append(out, "table "+s+"."+n)
		}
	}
	return out
}

func pgHasDB(t *testing.T, pg *testenv.Postgres, name string) bool {
	c := pg.Conn(t, "postgres")
	var n int
	_ = c.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n)
	return n > 0
}
