package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestMySQLPurgedWhileStopped purges the binlogs past the stored position
// while the relay is stopped. The next run exits non-zero with one line
// that says what happened and how to re-sync; the stored position stays as
// it was and nothing is snapshotted again.
func TestMySQLPurgedWhileStopped(t *testing.T) {
	b := testenv.StartBroker(t)
	m := testenv.StartMariaDB(t)
	m.Exec(t, "CREATE DATABASE shop")
	m.Exec(t, "CREATE USER 'relay'@'%' IDENTIFIED BY 'relay-pw'")
	m.Exec(t, "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'relay'@'%'")
	m.Exec(t, "GRANT SELECT, INSERT, UPDATE, CREATE ON shop.* TO 'relay'@'%'")
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY)")
	m.Exec(t, "INSERT INTO shop.items VALUES (1), (2)")
	cfg := writeConfig(t, fmt.Sprintf(`id: mp
source:
  type: mysql
  dsn: %s
  tables: [shop.items]
kafka:
  brokers: [%s]
  topic_prefix: mp
metrics:
  listen: "off"
`, m.DSN("relay", "shop"), b.Addr))
	env := "CDCRELAY_SOURCE_PASSWORD=relay-pw"

	p := startRelay(t, cfg, env)
	eventually(t, time.Minute, "the snapshot", func() bool {
		st := offsetsState(t, cfg)
		return strings.Contains(st, `"done":["shop.items"]`)
	})
	if code := p.stop(t); code != 0 {
		t.Fatalf("SIGTERM exit code %d", code)
	}
	before := offsetsState(t, cfg)
	records := len(readAll(t, b, "mp.shop.items"))

	first := func() string {
		r := m.Exec(t, "SHOW BINARY LOGS")
		s, _ := r.GetString(0, 0)
		return s
	}
	was := first()
	// MariaDB keeps a binlog until its binlog checkpoint has moved past it,
	// which can take a while on a loaded machine: keep trying for 30s.
	for i := 0; i < 300 && first() == was; i++ {
		m.Exec(t, fmt.Sprintf("INSERT INTO shop.items VALUES (%d)", 100+i))
		m.Exec(t, "FLUSH BINARY LOGS")
		r := m.Exec(t, "SHOW MASTER STATUS")
		cur, _ := r.GetString(0, 0)
		m.Exec(t, "PURGE BINARY LOGS TO '"+cur+"'")
		time.Sleep(100 * time.Millisecond)
	}
	if first() == was {
		t.Fatalf("MariaDB did not purge binlog %s within 30s", was)
	}

	p = startRelay(t, cfg, env)
	state := p.wait(t, time.Minute)
	out := p.out.String()
	if state.ExitCode() == 0 {
		t.Fatalf("relay exited 0 on a purged position:\n%s", out)
	}
	for _, want := range []string{"binlogs purged past the stored position", "re-sync with: cdcrelay offsets reset --config <file> --yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if after := offsetsState(t, cfg); after != before {
		t.Errorf("stored state changed:\nbefore %s\nafter  %s", before, after)
	}
	if n := len(readAll(t, b, "mp.shop.items")); n != records {
		t.Errorf("topic went from %d to %d records", records, n)
	}
	if strings.Contains(out, "snapshot: reading table") {
		t.Errorf("the refused run started a snapshot")
	}
}
