package testenv_test

import (
	"context"
	"testing"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// A standby replays what the primary commits, refuses writes, and takes
// them once promoted; the primary's physical slot follows its replay.
func TestPGStandby(t *testing.T) {
	p := testenv.StartPostgres(t)
	p.CreateDB(t, "app")
	p.Exec(t, "app", "CREATE TABLE t (id int PRIMARY KEY)")
	p.Exec(t, "app", "INSERT INTO t SELECT generate_series(1, 10)")

	s := testenv.StartPGStandby(t, p, "standby1")
	t.Logf("%s standby up on port %d", s.Version, s.Port)
	if n := pgCount(t, s, "app", "t"); n != 10 {
		t.Fatalf("standby has %d rows after the base backup, want 10", n)
	}
	p.Exec(t, "app", "INSERT INTO t SELECT generate_series(11, 25)")
	s.CatchUp(t)
	if n := pgCount(t, s, "app", "t"); n != 25 {
		t.Fatalf("standby has %d rows after catching up, want 25", n)
	}
	var recovery bool
	var state string
	if err := s.Conn(t, "app").QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil || !recovery {
		t.Fatalf("standby: pg_is_in_recovery() = %v, %v; want true", recovery, err)
	}
	if err := p.Conn(t, "app").QueryRow(context.Background(),
		"SELECT state FROM pg_stat_replication WHERE application_name = 'standby1'").Scan(&state); err != nil || state != "streaming" {
		t.Fatalf("primary: standby1 replication state %q, %v; want streaming", state, err)
	}
	if _, err := s.Conn(t, "app").Exec(context.Background(), "INSERT INTO t VALUES (100)"); err == nil {
		t.Fatal("the standby accepted a write")
	}

	p.Kill(t)
	s.Promote(t)
	s.Exec(t, "app", "INSERT INTO t VALUES (100)")
	if n := pgCount(t, s, "app", "t"); n != 26 {
		t.Fatalf("promoted standby has %d rows, want 26", n)
	}
}
