package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/goldentypes"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// verifyCmd runs `cdcrelay verify --config cfg args...` with env and returns
// its output and exit code.
func verifyCmd(t *testing.T, cfg, env string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(t), append([]string{"verify", "--config", cfg}, args...)...)
	cmd.Env = append(cmd.Environ(), env)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return string(out), code
}

// The golden types table of the PostgreSQL source, snapshotted and
// streamed by the relay, verifies clean with every column compared.
func TestVerifyPostgresTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	b := testenv.StartBroker(t)
	pg := testenv.StartPostgres(t)
	pg.CreateDB(t, "shop")
	pg.Exec(t, "shop", "CREATE ROLE relay LOGIN REPLICATION PASSWORD 'relay-pw'")
	pg.Exec(t, "shop", "GRANT CREATE ON DATABASE shop TO relay")
	pg.Exec(t, "shop", goldentypes.PostgresTable())
	pg.Exec(t, "shop", "ALTER TABLE types REPLICA IDENTITY FULL")
	pg.Exec(t, "shop", "ALTER TABLE types OWNER TO relay")
	pg.Exec(t, "shop", "INSERT INTO types VALUES (1, "+goldentypes.PostgresValues()+")")
	cfg := pgRelayConfig(t, pg, b, "vtypes", "public.types")
	env := "CDCRELAY_SOURCE_PASSWORD=relay-pw"
	p := startRelay(t, cfg, env)
	eventually(t, time.Minute, "the snapshot committed", func() bool {
		return strings.Contains(offsetsJSON(t, cfg), `"done"`)
	})
	pg.Exec(t, "shop", "INSERT INTO types VALUES (2, "+goldentypes.PostgresValues()+")")
	pg.Exec(t, "shop", "INSERT INTO types VALUES (3, "+goldentypes.PostgresValues()+")")
	pg.Exec(t, "shop", `UPDATE types SET c_text = 'streamed', c_jsonb = '{"z": [1, 2],   "a": {"y": 1, "b": 2}}' WHERE id = 2`)
	pg.Exec(t, "shop", "DELETE FROM types WHERE id = 3")

	// verify may read the topic before the relay has committed these
	// changes: it then re-checks the keys that differ once the stored
	// position passes the database's, and the key count it prints is
	// that of its first read.
	out, code := verifyCmd(t, cfg, env, "--table", "public.types", "--settle", "1m")
	t.Logf("verify:\n%s", out)
	if code != 0 || !strings.Contains(out, "1 table(s) match") || !strings.Contains(out, "2 rows in the database") || !strings.Contains(out, "missing 0, extra 0, differing 0") {
		t.Fatalf("verify of the types table exited %d", code)
	}
	if strings.Contains(out, "not compared") {
		t.Errorf("columns left out of the comparison:\n%s", out)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("relay exit %d", code)
	}
	pg.Exec(t, "shop", "UPDATE types SET c_interval = '1 day' WHERE id = 1")
	out, code = verifyCmd(t, cfg, env, "--table", "public.types", "--settle", "1s")
	t.Logf("verify after a change behind the relay's back:\n%s", out)
	if code != 1 || !strings.Contains(out, "differing 1") || !strings.Contains(out, `differing:        {"id":1}: c_interval`+"\n") {
		t.Errorf("verify exited %d and did not name column c_interval", code)
	}
}

// The golden types table of the MySQL source on MariaDB, snapshotted and
// streamed by the relay, verifies clean with every column compared; a
// table with a spatial column is refused with a line that says why.
func TestVerifyMariaDBTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	b := testenv.StartBroker(t)
	m := testenv.StartMariaDB(t)
	m.Exec(t, "SET GLOBAL sql_mode = 'NO_ENGINE_SUBSTITUTION'")
	m.Exec(t, "CREATE DATABASE shop")
	m.Exec(t, "CREATE USER 'relay'@'%' IDENTIFIED BY 'relay-pw'")
	m.Exec(t, "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'relay'@'%'")
	m.Exec(t, "GRANT SELECT, INSERT, UPDATE, CREATE ON shop.* TO 'relay'@'%'")
	m.Exec(t, goldentypes.MariaDBTable)
	m.Exec(t, fmt.Sprintf(goldentypes.MariaDBRow, 1))
	m.Exec(t, fmt.Sprintf(goldentypes.MariaDBEdge, 2))
	m.Exec(t, "CREATE TABLE shop.geo (id INT PRIMARY KEY, g POINT)")
	m.Exec(t, "INSERT INTO shop.geo VALUES (1, POINT(1, 2))")
	cfg := writeConfig(t, fmt.Sprintf(`id: vtypes
source:
  type: mysql
  dsn: %s
  tables: [shop.types, shop.geo]
kafka:
  brokers: [%s]
  topic_prefix: vtypes
metrics:
  listen: "off"
`, m.DSN("relay", "shop"), b.Addr))
	env := "CDCRELAY_SOURCE_PASSWORD=relay-pw"
	p := startRelay(t, cfg, env)
	eventually(t, time.Minute, "the snapshot committed", func() bool {
		return strings.Contains(offsetsJSON(t, cfg), `"done"`) && !strings.Contains(offsetsJSON(t, cfg), `"queue"`)
	})
	m.Exec(t, fmt.Sprintf(goldentypes.MariaDBRow, 11))
	m.Exec(t, fmt.Sprintf(goldentypes.MariaDBEdge, 12))
	m.Exec(t, fmt.Sprintf(goldentypes.MariaDBRow, 13))
	m.Exec(t, "UPDATE shop.types SET vc = 'changed', nul = 1, js = '{\"b\":  2, \"a\": 1}' WHERE id = 11")
	m.Exec(t, "DELETE FROM shop.types WHERE id = 13")

	out, code := verifyCmd(t, cfg, env, "--table", "shop.types", "--settle", "1m")
	t.Logf("verify:\n%s", out)
	if code != 0 || !strings.Contains(out, "1 table(s) match") || !strings.Contains(out, "4 rows in the database") || !strings.Contains(out, "missing 0, extra 0, differing 0") {
		t.Fatalf("verify of the types table exited %d", code)
	}
	if strings.Contains(out, "not compared") {
		t.Errorf("columns left out of the comparison:\n%s", out)
	}

	out, code = verifyCmd(t, cfg, env, "--table", "shop.geo", "--settle", "1s")
	t.Logf("verify of a spatial table:\n%s", out)
	if code != 1 || !strings.Contains(out, "shop.geo: NOT VERIFIED: column g has the spatial type point, which verify does not compare") || !strings.Contains(out, "1 table(s) not verified") {
		t.Errorf("verify exited %d and did not refuse the spatial column", code)
	}

	if code := p.stop(t); code != 0 {
		t.Fatalf("relay exit %d", code)
	}
	m.Exec(t, "UPDATE shop.types SET ip6 = '2001:db8::2' WHERE id = 1")
	out, code = verifyCmd(t, cfg, env, "--table", "shop.types", "--settle", "1s")
	t.Logf("verify after a change behind the relay's back:\n%s", out)
	if code != 1 || !strings.Contains(out, "differing 1") || !strings.Contains(out, `differing:        {"id":1}: ip6`+"\n") {
		t.Errorf("verify exited %d and did not name column ip6", code)
	}
}
