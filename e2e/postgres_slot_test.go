package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

func pgRelayConfig(t *testing.T, pg *testenv.Postgres, b *testenv.Broker, id, tables string) string {
	return writeConfig(t, fmt.Sprintf(`id: %s
source:
  type: postgres
  dsn: %s
  tables: [%s]
  heartbeat_interval: 1s
kafka:
  brokers: [%s]
metrics:
  listen: "off"
`, id, pg.DSN("relay", "shop"), tables, b.Addr))
}

func pgShop(t *testing.T) *testenv.Postgres {
	pg := testenv.StartPostgres(t)
	pg.CreateDB(t, "shop")
	pg.Exec(t, "shop", "CREATE ROLE relay LOGIN REPLICATION PASSWORD 'relay-pw'")
	pg.Exec(t, "shop", "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)")
	pg.Exec(t, "shop", "ALTER TABLE items REPLICA IDENTITY FULL")
	pg.Exec(t, "shop", "ALTER TABLE items OWNER TO relay")
	pg.Exec(t, "shop", "GRANT CREATE ON DATABASE shop TO relay")
	pg.Exec(t, "shop", "INSERT INTO items SELECT g, 0 FROM generate_series(1, 100) g")
	return pg
}

func offsetsJSON(t *testing.T, cfg string) string {
	t.Helper()
	out, err := exec.Command(testenv.Binary(t), "offsets", "show", "--json", "--config", cfg).Output()
	if err != nil {
		t.Fatalf("offsets show: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// The slot is dropped while the relay is down: the next run fails loudly,
// naming what happened and the re-sync command; it creates no new slot and
// leaves the offsets record as it was.
func TestPostgresSlotDroppedWhileStopped(t *testing.T) {
	b := testenv.StartBroker(t)
	pg := pgShop(t)
	cfg := pgRelayConfig(t, pg, b, "slotgone", "public.items")
	env := "CDCRELAY_SOURCE_PASSWORD=relay-pw"

	p := startRelay(t, cfg, env)
	eventually(t, time.Minute, "the snapshot committed", func() bool {
		return strings.Contains(offsetsJSON(t, cfg), `"done"`)
	})
	pg.Exec(t, "shop", "UPDATE items SET v = 1 WHERE id = 1")
	time.Sleep(2 * time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	before := offsetsJSON(t, cfg)

	pg.Exec(t, "shop", "SELECT pg_drop_replication_slot('cdcrelay_slotgone')")
	pg.Exec(t, "shop", "UPDATE items SET v = 2 WHERE id = 2")

	p = startRelay(t, cfg, env)
	st := p.wait(t, time.Minute)
	out := p.out.String()
	if st.Success() {
		t.Fatalf("the relay started over a dropped slot:\n%s", out)
	}
	for _, want := range []string{"replication slot cdcrelay_slotgone is missing", "cdcrelay offsets reset --config <file> --yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if after := offsetsJSON(t, cfg); after != before {
		t.Errorf("offsets record changed:\nbefore %s\nafter  %s", before, after)
	}
	var slots int
	if err := pg.Conn(t, "shop").QueryRow(context.Background(), "SELECT count(*) FROM pg_replication_slots").Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 0 {
		t.Errorf("%d replication slots exist after the refused start; want none", slots)
	}
	t.Logf("refusal: %s", lastLine(out))
}
