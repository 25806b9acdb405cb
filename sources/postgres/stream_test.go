package postgres

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
)

// TestAcksNeverAheadOfKafka acks only some checkpoints, late, and samples
// the slot all along: confirmed_flush_lsn never passes the last ack.
func TestAcksNeverAheadOfKafka(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE t (id int PRIMARY KEY, v int)`)
	s := newSource(t, e.config("public.t"))
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked uint64
	var held []*change.Checkpoint
	r := &relaySim{}
	_ = r
	sim := runSource(t, s, nil)
	sim.mu.Lock()
	sim.noAck = true
	sim.onCkpt = func(cp *change.Checkpoint) {
		mu.Lock()
		held = append(held, cp)
		mu.Unlock()
	}
	sim.mu.Unlock()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ack every third checkpoint, 300ms late
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			mu.Lock()
			if len(held) >= 3 {
				cp := held[len(held)/3]
				held = held[len(held)/3+1:]
				if cp.LSN > acked {
					acked = cp.LSN
				}
				s.Ack(cp)
			}
			mu.Unlock()
		}
	}()
	violations := 0
	for i := 0; i < 60; i++ {
		e.exec(t, `INSERT INTO t VALUES ($1, 0)`, i)
		conf := e.slotConfirmed(t, s.slot)
		mu.Lock()
		if conf > acked && acked != 0 {
			violations++
			t.Errorf("confirmed_flush_lsn %X > last ack %X", conf, acked)
		}
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	last := acked
	mu.Unlock()
	waitFor(t, 5*time.Second, "slot to reach the last ack", func() bool { return e.slotConfirmed(t, s.slot) == last })
	if last == 0 {
		t.Fatal("nothing acked")
	}
}

// TestHeartbeatAdvancesIdleSlot: the captured table is idle while another
// table is busy; heartbeats keep the slot moving.
func TestHeartbeatAdvancesIdleSlot(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE quiet (id int PRIMARY KEY); CREATE TABLE busy (id serial PRIMARY KEY, pad text)`)
	cfg := e.config("public.quiet")
	cfg.Source.HeartbeatInterval = 200 * time.Millisecond
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	start := e.slotConfirmed(t, s.slot)
	r := runSource(t, s, nil)
	for i := 0; i < 20; i++ {
		e.exec(t, `INSERT INTO busy (pad) SELECT repeat('x', 500) FROM generate_series(1, 500)`)
		time.Sleep(50 * time.Millisecond)
	}
	var cur uint64
	var curS string
	e.admin.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&curS)
	var hi, lo uint64
	fmtSscanf(curS, &hi, &lo)
	cur = hi<<32 | lo
	waitFor(t, 5*time.Second, "slot to pass the busy table's writes", func() bool { return e.slotConfirmed(t, s.slot) >= cur })
	if got := len(r.events()); got != 0 {
		t.Fatalf("%d events from an idle table", got)
	}
	t.Logf("slot moved from %X to %X with no captured change", start, e.slotConfirmed(t, s.slot))
}

// TestOddIdentifiersSchemaChangeTruncate covers quoted names, ADD and DROP
// COLUMN mid-stream, TOAST with and without FULL identity (without it,
// under source.unchanged_toast: omit; TestUnchangedToastStream covers the
// default), and TRUNCATE.
func TestOddIdentifiersSchemaChangeTruncate(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE SCHEMA "Odd.Schema";
CREATE TABLE "Odd.Schema"."Table ""q"" é" ("Id" int PRIMARY KEY, "select" text, "a.b" int);
ALTER TABLE "Odd.Schema"."Table ""q"" é" REPLICA IDENTITY FULL;
INSERT INTO "Odd.Schema"."Table ""q"" é" VALUES (1, 'one', 1);
CREATE TABLE toasty (id int PRIMARY KEY, big text, n int);
INSERT INTO toasty VALUES (1, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g), 0)`)
	cfg := e.config(`"Odd.Schema"."Table ""q"" é"`, "public.toasty")
	cfg.Source.UnchangedToast = config.UnchangedToastOmit
	s := newSource(t, cfg)
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, nil)
	evs := r.waitEvents(t, 2, 20*time.Second)
	odd := `"Odd.Schema"."Table ""q"" é"`
	e.exec(t, `ALTER TABLE `+odd+` ADD COLUMN "New Col" text DEFAULT 'd';
INSERT INTO `+odd+` VALUES (2, 'two', 2, 'x');
ALTER TABLE `+odd+` DROP COLUMN "a.b";
UPDATE `+odd+` SET "select" = 'uno' WHERE "Id" = 1;
UPDATE toasty SET n = 1;
TRUNCATE toasty;
INSERT INTO toasty VALUES (9, 'small', 9)`)
	evs = r.waitEvents(t, 5, 20*time.Second)
	var snapOdd *change.Event
	for _, ev := range evs[:2] {
		if ev.Table.Name == `Table "q" é` {
			snapOdd = ev
		}
	}
	if snapOdd == nil || snapOdd.Table.Namespace != "Odd.Schema" || string(snapOdd.Key) != `{"Id":1}` {
		t.Fatalf("snapshot of the odd table: %+v", snapOdd)
	}
	ins, upd, toast, after9 := evs[2], evs[3], evs[4], evs[5:]
	if got := after(t, ins); got["New Col"] != "x" || got["a.b"] != float64(2) {
		t.Fatalf("insert after ADD COLUMN: %v", got)
	}
	if got := after(t, upd); got["select"] != "uno" || got["New Col"] != "d" || len(got) != 3 {
		t.Fatalf("update after DROP COLUMN: %v", got)
	}
	if b := rowMap(t, upd.Before); b["select"] != "one" {
		t.Fatalf("FULL identity before: %v", b)
	}
	// Identity DEFAULT: the unchanged TOASTed column is absent, not a placeholder.
	if got := after(t, toast); got["n"] != float64(1) {
		t.Fatalf("toast update: %v", got)
	} else if _, ok := got["big"]; ok {
		t.Fatalf("unchanged TOASTed column sent: %v", got)
	}
	// TRUNCATE sends nothing; the next insert follows.
	evs = r.waitEvents(t, 6, 10*time.Second)
	if len(after9) == 0 {
		after9 = evs[5:]
	}
	if after9[0].Op != change.OpCreate || string(after9[0].Key) != `{"id":9}` {
		t.Fatalf("after truncate: %+v", after9[0])
	}
}

// TestTLSVerifyFull connects with sslmode=verify-full and the test CA, and
// fails clearly with a wrong CA.
func TestTLSVerifyFull(t *testing.T) {
	files := testenvTLS(t)
	e := startPG(t, testenvSSL(files.CertFile, files.KeyFile))
	e.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	cfg := e.config("public.t")
	cfg.Source.DSN = strings.Replace(cfg.Source.DSN, "sslmode=disable", "sslmode=verify-full", 1)
	cfg.Source.TLS.CAFile = files.CAFile
	s := newSource(t, cfg)
	if _, err := s.Check(context.Background()); err != nil {
		t.Fatalf("verify-full with the right CA: %v", err)
	}
	var ssl bool
	if err := e.admin.QueryRow(context.Background(), "SELECT bool_or(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE usename = 'relay'").Scan(&ssl); err == nil && ssl {
		t.Log("relay connection was TLS")
	}
	other := testenvTLS(t)
	cfg.Source.TLS.CAFile = other.CAFile
	_, err := newSource(t, cfg).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("wrong CA: %v", err)
	}
	t.Logf("wrong CA: %v", err)
}

func decodeState_(t *testing.T, b []byte) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var _ = pgx.Identifier{}
