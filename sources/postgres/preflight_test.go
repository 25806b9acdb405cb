package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/sources"
)

// TestPreflight: each problem gives its own line, a refused start leaves no
// slot and no publication behind.
func TestPreflight(t *testing.T) {
	e := startPG(t, testenv.PGConf("wal_level = replica"))
	e.exec(t, `CREATE TABLE nokey (a int); CREATE TABLE withkey (id int PRIMARY KEY, v text);
CREATE TABLE loose (a int); CREATE TABLE badkey (p point, id int, PRIMARY KEY (id));
CREATE TABLE fixed (id int PRIMARY KEY, n bigint, at timestamptz);
CREATE TABLE plain (id int PRIMARY KEY, v text); ALTER TABLE plain ALTER COLUMN v SET STORAGE PLAIN;
CREATE TABLE ruled (id int PRIMARY KEY, n int, note text);
CREATE TABLE full_img (id int PRIMARY KEY, v text); ALTER TABLE full_img REPLICA IDENTITY FULL`)
	e.pg.Exec(t, "postgres", "ALTER ROLE "+testRole+" NOREPLICATION")
	cfg := e.config("public.nokey", "public.withkey", "public.loose", "public.missing",
		"public.fixed", "public.plain", "public.ruled", "public.full_img")
	cfg.Source.Keyless = []string{"public.loose"}
	cfg.Source.ColumnExclude = []string{"public.ruled.note"}
	s := newSource(t, cfg)
	rep, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	rep.Print(&sb)
	t.Logf("report:\n%s", sb.String())
	want := []struct {
		level   sources.Level
		subject string
		detail  string
	}{
		{sources.Block, "wal_level", "wal_level = logical"},
		{sources.Block, "replication privilege", `ALTER ROLE "relay" REPLICATION`},
		{sources.Warn, "max_slot_wal_keep_size", "fill the disk"},
		{sources.OK, "slot cdcrelay_t1", "run creates it"},
		{sources.Block, `table "public"."missing"`, "not found"},
		{sources.Block, `table "public"."nokey"`, "no primary key"},
		{sources.Block, `table "public"."loose"`, "REPLICA IDENTITY FULL"},
		{sources.Block, `table "public"."withkey"`, `v can be TOASTed`},
		{sources.Block, `table "public"."withkey"`, `ALTER TABLE "public"."withkey" REPLICA IDENTITY FULL (or set source.unchanged_toast: omit`},
		{sources.Warn, `table "public"."fixed"`, "carry only the key columns in before"},
		{sources.Warn, `table "public"."plain"`, "carry only the key columns in before"},
		{sources.Warn, `table "public"."ruled"`, "carry only the key columns in before"},
		{sources.OK, `table "public"."full_img"`, "REPLICA IDENTITY FULL"},
		{sources.OK, "publication cdcrelay_t1", "missing; run creates it"},
	}
	for _, w := range want {
		found := false
		for _, f := range rep {
			if f.Level == w.level && f.Subject == w.subject && strings.Contains(f.Detail, w.detail) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s finding for %s containing %q", w.level, w.subject, w.detail)
		}
	}
	for _, f := range rep {
		for _, ok := range []string{"fixed", "plain", "ruled", "full_img"} {
			if f.Level == sources.Block && f.Subject == `table "public"."`+ok+`"` {
				t.Errorf("%s refused: %s", ok, f.Detail)
			}
		}
	}
	if len(rep.Blocking()) < 6 {
		t.Errorf("blocking findings: %d", len(rep.Blocking()))
	}
	// source.unchanged_toast: omit turns the refusal into a warning.
	cfgOmit := e.config("public.withkey")
	cfgOmit.Source.UnchangedToast = config.UnchangedToastOmit
	rep, err = newSource(t, cfgOmit).Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	omitted := false
	for _, f := range rep {
		if f.Subject == `table "public"."withkey"` {
			t.Logf("with omit: %s %s", f.Level, f.Detail)
			omitted = f.Level == sources.Warn && strings.Contains(f.Detail, "Flink reads as NULL")
		}
	}
	if !omitted {
		t.Errorf("with source.unchanged_toast: omit, no warning for withkey")
	}
	// A refused start: Setup fails on the slot (wal_level) and must not
	// leave the publication it created.
	cfg2 := e.config("public.withkey")
	e.pg.Exec(t, "postgres", "ALTER ROLE "+testRole+" REPLICATION")
	s2 := newSource(t, cfg2)
	if err := s2.Setup(context.Background(), false); err == nil {
		t.Fatal("Setup succeeded with wal_level=replica")
	} else {
		t.Logf("Setup: %v", err)
	}
	var pubs, slots int
	e.admin.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM pg_publication), (SELECT count(*) FROM pg_replication_slots)").Scan(&pubs, &slots)
	if pubs != 0 || slots != 0 {
		t.Fatalf("after a refused start: %d publications, %d slots, want none", pubs, slots)
	}
	// Run refuses too, fatally.
	r := runSource(t, s2, nil)
	select {
	case err := <-r.done:
		var fe *sources.FatalError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "wal_level") {
			t.Fatalf("Run: %v, want a fatal wal_level error", err)
		}
		r.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not refuse")
	}
}

// TestSlotDroppedWhileStopped: the stored position cannot be resumed, Run
// fails fatally and names the re-sync command; the state is left alone.
func TestSlotDroppedWhileStopped(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	s := newSource(t, e.config("public.t"))
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, nil)
	e.exec(t, `INSERT INTO t VALUES (1)`)
	r.waitEvents(t, 1, 20*time.Second)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	st := r.lastState()
	waitFor(t, 10*time.Second, "the slot to be dropped", func() bool {
		_, err := e.admin.Exec(context.Background(), "SELECT pg_drop_replication_slot('cdcrelay_t1')")
		return err == nil // fails while the walsender of the stopped run still holds it
	})
	r2 := runSource(t, newSource(t, e.config("public.t")), st)
	select {
	case err := <-r2.done:
		r2.done <- err
		var fe *sources.FatalError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "is missing but a position") || !strings.Contains(err.Error(), "cdcrelay offsets reset") {
			t.Fatalf("Run: %v", err)
		}
		t.Logf("fatal: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not fail")
	}
	if string(r2.lastState()) != string(st) || r2.ckpts != 0 {
		t.Fatal("state changed")
	}
}
