package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/sources"
)

func TestTimelineEnd(t *testing.T) {
	// The history file of timeline 3 after two promotions, as
	// TIMELINE_HISTORY 3 returns it.
	hist := []byte("1\t0/3000148\tno recovery target specified\n\n2\t0/5A00060\tno recovery target specified\n")
	for _, c := range []struct {
		tli  int32
		want string
		ok   bool
	}{
		{1, "0/3000148", true},
		{2, "0/5A00060", true},
		{3, "", false},
		{7, "", false},
	} {
		got, ok := timelineEnd(hist, c.tli)
		if ok != c.ok || (ok && got.String() != c.want) {
			t.Errorf("timelineEnd(%d) = %s, %v; want %s, %v", c.tli, got, ok, c.want, c.ok)
		}
	}
}

// finding returns the first finding about subject, or fails.
func finding(t *testing.T, rep sources.Report, subject string) sources.Finding {
	t.Helper()
	for _, f := range rep {
		if f.Subject == subject {
			return f
		}
	}
	t.Fatalf("no finding about %s in %v", subject, rep)
	return sources.Finding{}
}

// source.failover_slot is refused before 17. On 17, Setup creates the slot
// with FAILOVER or turns FAILOVER on for an existing slot, and the
// preflight reports the slot's failover state and whether the primary waits
// for a standby before sending changes.
func TestFailoverSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	ctx := context.Background()
	t.Run("16", func(t *testing.T) {
		e := startPG(t, testenv.PGVersion(16))
		e.exec(t, `CREATE TABLE items (id int PRIMARY KEY); ALTER TABLE items REPLICA IDENTITY FULL`)
		cfg := e.config("public.items")
		cfg.Source.FailoverSlot = true
		rep, err := newSource(t, cfg).Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f := finding(t, rep, "source.failover_slot")
		t.Logf("PostgreSQL %s: %s: %s", e.pg.Version, f.Level, f.Detail)
		if f.Level != sources.Block || !strings.Contains(f.Detail, "came with 17") {
			t.Fatalf("got %s %q, want a blocking line naming 17", f.Level, f.Detail)
		}
	})
	t.Run("17", func(t *testing.T) {
		e := startPG(t, testenv.PGVersion(17))
		e.exec(t, `CREATE TABLE items (id int PRIMARY KEY); ALTER TABLE items REPLICA IDENTITY FULL`)
		cfg := e.config("public.items")
		cfg.Source.FailoverSlot = true
		s := newSource(t, cfg)
		rep, err := s.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f := finding(t, rep, "source.failover_slot"); f.Level != sources.Warn || !strings.Contains(f.Detail, "synchronized_standby_slots is empty") {
			t.Fatalf("no standby slots: got %s %q, want a warning naming synchronized_standby_slots", f.Level, f.Detail)
		}
		if err := s.Setup(ctx, false); err != nil {
			t.Fatal(err)
		}
		var failover bool
		if err := e.admin.QueryRow(ctx, "SELECT failover FROM pg_replication_slots WHERE slot_name = 'cdcrelay_t1'").Scan(&failover); err != nil || !failover {
			t.Fatalf("slot created by Setup: failover=%v, %v; want true", failover, err)
		}
		e.pg.Exec(t, "postgres", "SELECT pg_create_physical_replication_slot('standby1')")
		e.pg.Exec(t, "postgres", "ALTER SYSTEM SET synchronized_standby_slots = 'standby1'")
		e.pg.Exec(t, "postgres", "SELECT pg_reload_conf()")
		rep, err = s.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slot := finding(t, rep, "slot cdcrelay_t1")
		f := finding(t, rep, "source.failover_slot")
		t.Logf("%s: %s\n%s: %s", slot.Subject, slot.Detail, f.Subject, f.Detail)
		if !strings.Contains(slot.Detail, "failover=true, synced=false") {
			t.Errorf("slot line %q does not report failover=true, synced=false", slot.Detail)
		}
		if f.Level != sources.OK || !strings.Contains(f.Detail, "standby1") {
			t.Errorf("with standby slots: got %s %q, want OK naming standby1", f.Level, f.Detail)
		}

		// A slot made without FAILOVER gets it from Setup.
		e.pg.Exec(t, testDB, "SELECT pg_drop_replication_slot('cdcrelay_t1')")
		e.pg.Exec(t, testDB, "SELECT pg_create_logical_replication_slot('cdcrelay_t1', 'pgoutput')")
		rep, _ = s.Check(ctx)
		if f := finding(t, rep, "source.failover_slot"); f.Level != sources.Warn || !strings.Contains(f.Detail, "run sets FAILOVER") {
			t.Errorf("slot without FAILOVER: got %s %q, want a warning that run sets it", f.Level, f.Detail)
		}
		if err := s.Setup(ctx, false); err != nil {
			t.Fatal(err)
		}
		if err := e.admin.QueryRow(ctx, "SELECT failover FROM pg_replication_slots WHERE slot_name = 'cdcrelay_t1'").Scan(&failover); err != nil || !failover {
			t.Fatalf("existing slot after Setup: failover=%v, %v; want true", failover, err)
		}
	})
}
