package deploycheck

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/flinkddl"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/sources"
	"github.com/cdcrelay/cdcrelay/sources/mysql"
	"github.com/cdcrelay/cdcrelay/sources/postgres"
)

// These tests run the demo's database init scripts against throwaway
// servers (PostgreSQL 15 and MariaDB from internal/testenv; the compose file
// uses PostgreSQL 17 and MySQL 8.4), point the demo relay configs at them,
// and check that the relay's preflight accepts the result and that the
// Flink jobs declare the columns with the types the relay produces.

const demoRelayPassword = "demo-check-password"

type describer interface {
	Check(ctx context.Context) (sources.Report, error)
	Describe(ctx context.Context) ([]change.TableSchema, error)
	Close() error
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// demoConfig loads a demo relay config with the DSN pointed at a test server.
func demoConfig(t *testing.T, rel, dsn string) *config.Config {
	t.Helper()
	t.Setenv("CDCRELAY_SOURCE_DSN", dsn)
	t.Setenv("CDCRELAY_SOURCE_PASSWORD", demoRelayPassword)
	cfg, err := config.Load(path(t, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return cfg
}

// checkDemoSource runs the preflight and compares what Describe reports with
// the columns the Flink SQL declares for each topic the relay writes.
func checkDemoSource(t *testing.T, src describer, cfg *config.Config, allowBlock map[string]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := src.Check(ctx)
	if err != nil {
		t.Fatalf("preflight: %v", err)
	}
	for _, f := range rep.Blocking() {
		if !allowBlock[f.Subject] {
			t.Errorf("preflight blocks: %s: %s", f.Subject, f.Detail)
		}
	}
	tables, err := src.Describe(ctx)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if len(tables) != len(cfg.Source.Tables) {
		t.Fatalf("describe returned %d tables, the config captures %d", len(tables), len(cfg.Source.Tables))
	}
	f, _ := flinkddl.ParseFormat(cfg.Format.Value)
	var buf bytes.Buffer
	if err := flinkddl.Write(&buf, tables, flinkddl.Options{Brokers: cfg.Kafka.Brokers, TopicPrefix: cfg.Kafka.TopicPrefix, Format: f}); err != nil {
		t.Fatalf("flinkddl: %v", err)
	}
	generated := parseScript(t, "flink-ddl output", buf.String())
	byTopic := map[string]*sqlTable{}
	for _, tb := range generated.tables {
		byTopic[tb.options["topic"]] = tb
	}
	matched := 0
	for _, s := range loadScripts(t) {
		for _, tb := range s.tables {
			gen := byTopic[tb.options["topic"]]
			if gen == nil || tb.options["connector"] == "" {
				continue
			}
			matched++
			cols := map[string]change.ColumnSchema{}
			for _, c := range gen.columns {
				cols[c.Name] = c
			}
			for _, c := range tb.columns {
				g, ok := cols[c.Name]
				switch {
				case !ok:
					t.Errorf("%s: table %s declares column %s, which the relay does not write", s.file, tb.name, c.Name)
				case normType(g.FlinkType) != normType(c.FlinkType):
					t.Errorf("%s: table %s column %s is %s; the relay writes it as %s", s.file, tb.name, c.Name, c.FlinkType, g.FlinkType)
				case !c.Nullable && g.Nullable:
					t.Errorf("%s: table %s column %s is NOT NULL, but the source column is nullable", s.file, tb.name, c.Name)
				}
			}
		}
	}
	if matched == 0 {
		t.Errorf("no Flink table reads the topics of %s", cfg.ID)
	}
	t.Logf("flink-ddl for %s:\n%s", cfg.ID, buf.String())
}

func normType(s string) string { return strings.ReplaceAll(strings.ToUpper(s), " ", "") }

func TestDemoPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	psql := testenv.Require(t, "psql")
	pg := testenv.StartPostgres(t)
	pg.CreateDB(t, "shop")
	pg.Exec(t, "shop", string(read(t, "deploy/postgres/01-schema.sql")))

	// The role script, run as the postgres image runs it on first start.
	cmd := exec.Command("bash", path(t, "deploy/postgres/02-relay-role.sh"))
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(psql)+":"+os.Getenv("PATH"),
		"PGHOST="+pg.Host, "PGPORT="+strconv.Itoa(pg.Port),
		"POSTGRES_USER="+pg.SuperUser, "POSTGRES_DB=shop",
		"CDCRELAY_DEMO_PASSWORD="+demoRelayPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/postgres/02-relay-role.sh: %v\n%s", err, out)
	}

	cfg := demoConfig(t, "deploy/configs/postgres.yaml", pg.DSN("cdcrelay", "shop"))
	src, err := postgres.New(cfg, quietLogger(), metrics.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	checkDemoSource(t, src, cfg, nil)
}

func TestDemoMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB")
	}
	client := testenv.Require(t, "mariadb")
	m := testenv.StartMariaDB(t)
	m.Exec(t, "CREATE DATABASE inventory")

	// The image runs the init files with a `mysql` client on the server's
	// socket; here a shim sends the same input to this server over TCP.
	shim := t.TempDir()
	script := "#!/bin/sh\nfor a; do shift; case $a in --protocol=*) ;; *) set -- \"$@\" \"$a\";; esac; done\n" +
		"exec " + client + " --protocol=tcp --host=" + m.Host + " --port=" + strconv.Itoa(m.Port) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(shim, "mysql"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+shim+":"+os.Getenv("PATH"), "MYSQL_ROOT_PASSWORD=", "CDCRELAY_DEMO_PASSWORD="+demoRelayPassword)
	schema := exec.Command(filepath.Join(shim, "mysql"), "--user=root")
	schema.Env = env
	schema.Stdin = bytes.NewReader(read(t, "deploy/mysql/01-schema.sql"))
	if out, err := schema.CombinedOutput(); err != nil {
		t.Fatalf("deploy/mysql/01-schema.sql: %v\n%s", err, out)
	}
	user := exec.Command("bash", path(t, "deploy/mysql/02-relay-user.sh"))
	user.Env = env
	if out, err := user.CombinedOutput(); err != nil {
		t.Fatalf("deploy/mysql/02-relay-user.sh: %v\n%s", err, out)
	}

	cfg := demoConfig(t, "deploy/configs/mysql.yaml", m.DSN("cdcrelay", "inventory"))
	src, err := mysql.New(cfg, quietLogger(), metrics.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	checkDemoSource(t, src, cfg, nil)
}
