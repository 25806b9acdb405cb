package mysql

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestPositionLost checks the loud failures: binlogs purged past the stored
// position, RESET MASTER, and a different server. The stored state is left
// as it was and no snapshot starts.
func TestPositionLost(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY)")
	src, _ := newSource(t, testConfig(m))
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	r := k.start(t, src)
	m.Exec(t, "INSERT INTO shop.items VALUES (1)")
	k.waitFor(t, 30*time.Second, "insert", func(evs []*change.Event) bool { return len(evs) == 1 })
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	_, stored := k.snapshot()

	runOnce := func(t *testing.T, resume []byte) error {
		t.Helper()
		k2 := &sink{state: resume}
		r := k2.start(t, src)
		err := r.wait(t, 30*time.Second)
		evs, st := k2.snapshot()
		if len(evs) != 0 || !bytes.Equal(st, resume) {
			t.Errorf("a failed start sent %d events and moved the state to %s", len(evs), st)
		}
		return err
	}
	check := func(t *testing.T, err error, want string) {
		t.Helper()
		if err == nil || !isFatal(err) || !errors.Is(err, ErrPositionLost) && !strings.Contains(err.Error(), "cannot send the binlog") {
			t.Fatalf("Run = %v, want a fatal position-lost error", err)
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ResyncHint) {
			t.Fatalf("error %q does not say %q and %q", err, want, ResyncHint)
		}
		t.Logf("fatal: %v", err)
	}

	t.Run("purged", func(t *testing.T) {
		m.Exec(t, "INSERT INTO shop.items VALUES (2)")
		purgeAll(t, m)
		check(t, runOnce(t, stored), "binlogs purged past the stored position")
	})
	t.Run("file position purged", func(t *testing.T) {
		st, _ := decodeState(stored)
		st.GTID = ""
		check(t, runOnce(t, st.encode()), "is gone from the server")
	})
	t.Run("other server", func(t *testing.T) {
		st, _ := decodeState(stored)
		st.ServerID = 99
		check(t, runOnce(t, st.encode()), "server identity changed")
	})
	t.Run("reset master", func(t *testing.T) {
		m.Exec(t, "RESET MASTER")
		m.Exec(t, "INSERT INTO shop.items VALUES (4)")
		check(t, runOnce(t, stored), "is behind the stored position")
	})
}

// purgeAll rotates the binlog and purges every older file. MariaDB keeps a
// binlog until its binlog checkpoint moves on, so this retries.
func purgeAll(t *testing.T, m *testenv.MariaDB) {
	t.Helper()
	first := func() string {
		r := m.Exec(t, "SHOW BINARY LOGS")
		s, _ := r.GetString(0, 0)
		return s
	}
	was := first()
	for i := 0; i < 50; i++ {
		m.Exec(t, "FLUSH BINARY LOGS")
		m.Exec(t, "INSERT INTO shop.items VALUES (1000 + ?) ON DUPLICATE KEY UPDATE id = id", i)
		r := m.Exec(t, "SHOW MASTER STATUS")
		cur, _ := r.GetString(0, 0)
		m.Exec(t, "PURGE BINARY LOGS TO '"+cur+"'")
		if first() != was {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("binlog %s could not be purged", was)
}
