package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/sources"
)

func findings(rep sources.Report, level sources.Level) map[string]string {
	out := map[string]string{}
	for _, f := range rep {
		if f.Level == level {
			out[f.Subject] = f.Detail
		}
	}
	return out
}

// TestCheckGood passes on the test server with the documented grants.
func TestCheckGood(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY)")
	m.Exec(t, "CREATE TABLE shop.logs (seq INT NOT NULL, msg TEXT, UNIQUE KEY (seq))")
	cfg := testConfig(m)
	cfg.Source.Keyless = []string{"shop.logs"}
	src, _ := newSource(t, cfg)
	rep, err := src.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Print(&b)
	t.Logf("report:\n%s", b.String())
	if bl := rep.Blocking(); len(bl) > 0 {
		t.Fatalf("blocking findings on a good server: %v", bl)
	}
	if f := findings(rep, sources.OK)["table shop.logs"]; !strings.Contains(f, "snapshotted by unique index seq (seq)") {
		t.Errorf("keyless table finding %q, want it snapshotted by its unique index", f)
	}
	if _, ok := findings(rep, sources.Warn)["binlog retention"]; !ok {
		t.Errorf("no warning for binlogs that never expire")
	}
	// A user who may write the watermark table keeps table mode.
	if f := findings(rep, sources.OK)["snapshot watermark"]; !strings.HasPrefix(f, "table:") || !strings.Contains(f, "auto: the user may write") {
		t.Errorf("snapshot watermark finding %q, want table mode chosen by auto", f)
	}
}

// TestCheckWrongSettings starts a server with every binlog setting wrong
// and a user without privileges; each problem gets its own blocking line,
// and the check creates nothing.
func TestCheckWrongSettings(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaConf(
		"binlog_format = STATEMENT",
		"binlog_row_image = MINIMAL",
		"binlog_row_metadata = MINIMAL",
		"gtid_strict_mode = 0",
		"binlog_expire_logs_seconds = 3600",
	))
	m.Exec(t, "CREATE DATABASE shop")
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY)")
	m.Exec(t, "CREATE TABLE shop.nokey (v INT)")
	m.Exec(t, "CREATE USER 'cdc'@'%' IDENTIFIED BY '"+testPassword+"'")
	m.Exec(t, "GRANT SELECT ON shop.nokey TO 'cdc'@'%'")
	// With auto, a user without write grants gets binlog mode (see
	// readonly_test.go); table mode names the grants it lacks.
	cfg := testConfig(m)
	cfg.Source.SnapshotWatermark = "table"
	src, _ := newSource(t, cfg)
	rep, err := src.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Print(&b)
	t.Logf("report:\n%s", b.String())
	block := findings(rep, sources.Block)
	for subj, want := range map[string]string{
		"binlog_format":                 "set binlog_format=ROW",
		"binlog_row_image":              "set binlog_row_image=FULL",
		"binlog_row_metadata":           "set binlog_row_metadata=FULL",
		"gtid_strict_mode":              "set gtid_strict_mode=ON",
		"REPLICATION SLAVE":             "GRANT REPLICATION SLAVE ON *.*",
		"BINLOG MONITOR":                "GRANT BINLOG MONITOR ON *.*",
		"table shop.cdcrelay_watermark": "needs CREATE, INSERT, UPDATE, SELECT",
		"table shop.nokey":              "no primary key",
	} {
		if got, ok := block[subj]; !ok || !strings.Contains(got, want) {
			t.Errorf("%s: got %q, want a blocking line containing %q", subj, got, want)
		}
	}
	if w := findings(rep, sources.Warn)["binlog retention"]; !strings.Contains(w, "expire after 1h") {
		t.Errorf("retention warning = %q", w)
	}
	// run refuses too, before creating anything
	m.Exec(t, "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'cdc'@'%'")
	k := &sink{}
	err = k.start(t, src).wait(t, 30*time.Second)
	if !isFatal(err) || !strings.Contains(err.Error(), "binlog_format") {
		t.Errorf("Run on a STATEMENT binlog = %v, want a fatal error naming binlog_format", err)
	}
	r := m.Exec(t, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'cdcrelay_watermark'")
	if n, _ := r.GetInt(0, 0); n != 0 {
		t.Errorf("Check created the watermark table")
	}
}

// TestCheckPrivilegeRefusesTable: a table the user sees but may not SELECT
// is refused by name, whether the other tables' SELECT comes from a
// database grant (not queried) or a table grant; a partial revoke in the
// grants has every table queried.
func TestCheckPrivilegeRefusesTable(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t)
	m.Exec(t, "CREATE DATABASE shop")
	m.Exec(t, "CREATE DATABASE other")
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY)")
	m.Exec(t, "CREATE TABLE other.open (id INT PRIMARY KEY)")
	m.Exec(t, "CREATE TABLE other.shut (id INT PRIMARY KEY)")
	m.Exec(t, "CREATE USER 'cdc'@'%' IDENTIFIED BY '"+testPassword+"'")
	m.Exec(t, "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'cdc'@'%'")
	m.Exec(t, "GRANT SELECT ON shop.* TO 'cdc'@'%'")
	m.Exec(t, "GRANT SELECT ON other.open TO 'cdc'@'%'")
	m.Exec(t, "GRANT INSERT ON other.shut TO 'cdc'@'%'") // visible, not readable
	src, _ := newSource(t, testConfig(m, "shop.*", "other.*"))
	rep, err := src.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Print(&b)
	t.Logf("report:\n%s", b.String())
	block, ok := findings(rep, sources.Block), findings(rep, sources.OK)
	if got := block["table other.shut"]; !strings.Contains(got, "cannot SELECT") || !strings.Contains(got, "GRANT SELECT ON `other`.* TO 'cdc'") {
		t.Errorf("table other.shut: got %q, want a blocking line naming the missing SELECT and the grant", got)
	}
	for _, tbl := range []string{"table shop.items", "table other.open"} {
		if got := ok[tbl]; !strings.Contains(got, "SELECT granted") {
			t.Errorf("%s: got %q (blocking: %q), want it passed", tbl, got, block[tbl])
		}
	}
	if len(rep.Blocking()) != 1 {
		t.Errorf("blocking findings %v, want only other.shut", rep.Blocking())
	}
}

func TestParseGrants(t *testing.T) {
	g := parseGrants([]string{
		"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%` IDENTIFIED BY PASSWORD '*X'",
		"GRANT SELECT, INSERT, UPDATE (a, b), CREATE ON `shop`.* TO `cdc`@`%`",
		"GRANT ALL PRIVILEGES ON `odd.db`.`t` TO `cdc`@`%` WITH GRANT OPTION",
		"GRANT `role1` TO `cdc`@`%`",
	})
	for _, c := range []struct {
		scope, priv string
		want        bool
	}{
		{"*.*", "REPLICATION SLAVE", true},
		{"*.*", "BINLOG MONITOR", true},
		{"*.*", "SELECT", false},
		{"shop.*", "SELECT", true},
		{"shop.*", "UPDATE", false}, // column grant only
		{"shop.*", "CREATE", true},
		{"odd.db.t", "INSERT", true},
	} {
		if got := g.has(c.scope, c.priv); got != c.want {
			t.Errorf("has(%s, %s) = %v, want %v", c.scope, c.priv, got, c.want)
		}
	}
	if !g.hasOn("shop", "x", "INSERT") || g.hasOn("other", "x", "INSERT") {
		t.Errorf("hasOn scope resolution is wrong")
	}
	if !g.selects("shop", "x") || g.selects("other", "x") {
		t.Errorf("selects: want SELECT certain on shop.x only")
	}
	// MySQL's partial revokes: the global grant does not reach every table.
	partial := parseGrants([]string{
		"GRANT SELECT ON *.* TO `cdc`@`%`",
		"REVOKE SELECT ON `secret`.* FROM `cdc`@`%`",
	})
	if partial.selects("secret", "x") || partial.selects("shop", "x") {
		t.Errorf("selects under a partial revoke: want every table queried")
	}
	if grants(nil).selects("shop", "x") {
		t.Errorf("selects without grants: want the table queried")
	}
}
