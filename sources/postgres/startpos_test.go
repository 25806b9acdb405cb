package postgres

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/metrics"
)

// logSource is newSource with the log kept in a buffer the test reads.
func logSource(t *testing.T, e *pgEnv, slot, publication string) (*Source, *lockedBuffer) {
	t.Helper()
	cfg := e.config("public.items")
	cfg.Source.Snapshot = "never"
	cfg.Source.Slot, cfg.Source.Publication = slot, publication
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("source log:\n%s", buf.String())
		}
	})
	s, err := New(cfg, slog.New(slog.NewTextHandler(buf, nil)), metrics.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return s, buf
}

var streamingLine = regexp.MustCompile(`msg="postgres: streaming" .*from=(\S+) origin=("[^"]*"|\S+)`)

// startLine waits for the log line that says where streaming starts and
// returns its from and origin.
func startLine(t *testing.T, buf *lockedBuffer) (from, origin string) {
	t.Helper()
	waitFor(t, 20*time.Second, "the streaming log line", func() bool {
		return streamingLine.MatchString(buf.String())
	})
	line := streamingLine.FindString(buf.String())
	t.Log(line)
	m := streamingLine.FindStringSubmatch(line)
	return m[1], strings.Trim(m[2], `"`)
}

func (e *pgEnv) lsn(t *testing.T, sql string, args ...any) pglogrepl.LSN {
	t.Helper()
	var s string
	if err := e.admin.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	l, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A slot and a publication made beforehand by another tool, or a copy of
// that slot, are used as they are: nothing is created, and with no stored
// position the stream starts at the slot's confirmed_flush_lsn, so changes
// the other tool had confirmed are not sent. The log line says so, and says "stored offsets" once a
// position is stored, and "new slot" for a slot the relay made.
func TestStartPosition(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE items (id int PRIMARY KEY, name text);
CREATE PUBLICATION handmade FOR TABLE items`)
	e.exec(t, `SELECT pg_create_logical_replication_slot('other_tool', 'pgoutput')`)
	e.exec(t, `INSERT INTO items VALUES (1, 'confirmed by the other tool')`)
	confirmed := e.lsn(t, `SELECT pg_current_wal_lsn()::text`)
	e.exec(t, `SELECT pg_replication_slot_advance('other_tool', $1::text::pg_lsn)`, confirmed.String())
	e.exec(t, `INSERT INTO items VALUES (2, 'after the slot''s position')`)
	confirmed = e.lsn(t, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'other_tool'`)
	// A copy starts where the original is.
	e.exec(t, `SELECT pg_copy_logical_replication_slot('other_tool', 'copied')`)

	var state []byte
	for _, slot := range []string{"copied", "other_tool"} {
		t.Run("existing slot "+slot, func(t *testing.T) {
			s, buf := logSource(t, e, slot, "handmade")
			if err := s.Setup(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			r := runSource(t, s, nil)
			from, origin := startLine(t, buf)
			if from != confirmed.String() || origin != originSlot {
				t.Errorf("start log: from=%s origin=%q, want from=%s origin=%q", from, origin, confirmed, originSlot)
			}
			evs := r.waitEvents(t, 1, 20*time.Second)
			if got := string(evs[0].Key); got != `{"id":2}` {
				t.Errorf("first event has key %s, want {\"id\":2}: the row before confirmed_flush_lsn was sent", got)
			}
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(buf.String(), "created") {
				t.Errorf("Setup created something for a pre-made slot and publication:\n%s", buf.String())
			}
			var n int
			e.admin.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM pg_replication_slots) + (SELECT count(*) FROM pg_publication)`).Scan(&n)
			if n != 3 {
				t.Errorf("%d slots and publications, want the 3 made beforehand", n)
			}
			state = r.lastState()
		})
	}
	t.Run("stored offsets", func(t *testing.T) {
		st, err := decodeState(state)
		if err != nil {
			t.Fatal(err)
		}
		s, buf := logSource(t, e, "other_tool", "handmade")
		if err := s.Setup(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		r := runSource(t, s, state)
		from, origin := startLine(t, buf)
		if from != st.lsn.String() || origin != originStored {
			t.Errorf("start log: from=%s origin=%q, want from=%s origin=%q", from, origin, st.lsn, originStored)
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("new slot", func(t *testing.T) {
		s, buf := logSource(t, e, "fresh_slot", "handmade")
		if err := s.Setup(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		r := runSource(t, s, nil)
		from, origin := startLine(t, buf)
		want := e.lsn(t, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'fresh_slot'`)
		if from != want.String() || origin != originNewSlot {
			t.Errorf("start log: from=%s origin=%q, want from=%s origin=%q", from, origin, want, originNewSlot)
		}
		if from == "0/0" {
			t.Error("start log says from=0/0")
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}
