package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/sources"
)

// A slot made before its publication fails on the first change between the
// two (pgoutput reads the publication as of each change); the error says
// why and how to fix it instead of only "publication does not exist".
func TestSlotOlderThanPublication(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE items (id int PRIMARY KEY, name text)`)
	e.exec(t, `SELECT pg_create_logical_replication_slot('other_tool', 'pgoutput')`)
	e.exec(t, `INSERT INTO items VALUES (1, 'before the publication')`)
	s, _ := logSource(t, e, "other_tool", "late_pub")
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, nil)
	var err error
	select {
	case err = <-r.done:
		r.done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not fail within 30s")
	}
	var fe *sources.FatalError
	if !errors.As(err, &fe) {
		t.Fatalf("Run = %v, want a fatal error", err)
	}
	for _, want := range []string{`publication "late_pub" does not exist`, "older than the publication late_pub", "drop the slot and let cdcrelay create it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// A publication dropped under a running relay fails the stream too, with
// pgoutput's message alone: the slot is not to blame.
func TestPublicationDropped(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE items (id int PRIMARY KEY, name text)`)
	s, _ := logSource(t, e, "relay_slot", "relay_pub")
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r := runSource(t, s, nil)
	e.exec(t, `INSERT INTO items VALUES (1, 'streamed')`)
	r.waitEvents(t, 1, 20*time.Second)
	e.exec(t, `DROP PUBLICATION relay_pub; INSERT INTO items VALUES (2, 'after the drop')`)
	var err error
	select {
	case err = <-r.done:
		r.done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not fail within 30s")
	}
	if err == nil || !strings.Contains(err.Error(), `publication "relay_pub" does not exist`) {
		t.Fatalf("Run = %v, want pgoutput's missing publication", err)
	}
	if strings.Contains(err.Error(), "older than the publication") {
		t.Errorf("error blames the slot: %v", err)
	}
}
