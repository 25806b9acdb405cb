package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/sources"
)

// TestUnchangedToastStream: a table altered to REPLICA IDENTITY DEFAULT
// while the relay runs. Under source.unchanged_toast: refuse, an update
// that leaves a TOASTed value unchanged stops Run fatally, naming table,
// column and fix, before its transaction's checkpoint: nothing of it is
// committed and the position stays before it, so a restart stops at the
// same update. Under omit the column is left out of after. Under FULL it
// is filled from the old row.
func TestUnchangedToastStream(t *testing.T) {
	e := startPG(t)
	// 20 kB of md5 text does not compress below the TOAST threshold.
	e.exec(t, `CREATE TABLE docs (id int PRIMARY KEY, n int NOT NULL, body text);
ALTER TABLE docs REPLICA IDENTITY FULL;
INSERT INTO docs SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 640) g`)
	cfg := e.config("public.docs")
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, nil)
	r.waitEvents(t, 1, time.Minute) // the snapshot
	e.exec(t, `UPDATE docs SET n = 1 WHERE id = 1`)
	evs := r.waitEvents(t, 2, time.Minute)
	if got := after(t, evs[1])["body"]; len(str(got)) != 20480 {
		t.Fatalf("under FULL, after.body has %d characters, want 20480", len(str(got)))
	}

	e.exec(t, `ALTER TABLE docs REPLICA IDENTITY DEFAULT`)
	e.exec(t, `BEGIN; INSERT INTO docs VALUES (2, 0, 'short'); UPDATE docs SET n = 2 WHERE id = 1; COMMIT`)
	err := waitDone(t, r)
	var fe *sources.FatalError
	if !errors.As(err, &fe) {
		t.Fatalf("Run: %v, want a fatal error", err)
	}
	t.Logf("Run: %v", err)
	for _, want := range []string{`"public"."docs"`, "column body", `ALTER TABLE "public"."docs" REPLICA IDENTITY FULL`, "source.unchanged_toast"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line")
	}
	if n := len(r.events()); n != 2 {
		t.Errorf("%d events committed, want 2: nothing of the refused transaction", n)
	}
	stored := r.lastState()

	// A restart from the stored position stops at the same update.
	r2 := runSource(t, newSource(t, cfg), stored)
	if err := waitDone(t, r2); !errors.As(err, &fe) || !strings.Contains(err.Error(), "column body") {
		t.Fatalf("restart: %v, want the same fatal error", err)
	}
	if n := len(r2.events()); n != 0 {
		t.Errorf("restart committed %d events, want 0", n)
	}

	// omit passes it, leaving body out of after.
	omit := e.config("public.docs")
	omit.Source.UnchangedToast = config.UnchangedToastOmit
	r3 := runSource(t, newSource(t, omit), stored)
	evs = r3.waitEvents(t, 2, time.Minute)
	if evs[0].Op != change.OpCreate || after(t, evs[0])["id"] != float64(2) {
		t.Errorf("first event after restart: %v %v, want the insert of id 2", evs[0].Op, after(t, evs[0]))
	}
	up := after(t, evs[1])
	if _, has := up["body"]; has || up["n"] != float64(2) {
		t.Errorf("under omit, after = %v, want n 2 and no body", up)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// waitDone waits for Run to return and gives its error.
func waitDone(t *testing.T, r *relaySim) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(time.Minute):
		t.Fatal("Run did not stop")
		return nil
	}
}
