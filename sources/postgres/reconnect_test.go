package postgres

import (
	"context"
	"testing"
	"time"
)

// TestReconnect restarts PostgreSQL mid-stream and then holds the role at
// its connection limit: the source recovers both times, with no loss and no
// duplicate, and leaves no connection behind.
func TestReconnect(t *testing.T) {
	e := startPG(t)
	e.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	s := newSource(t, e.config("public.t"))
	if err := s.Setup(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	r := runLoop(t, s, nil)
	insert := func(from, to int) {
		for i := from; i < to; i++ {
			e.pg.Exec(t, testDB, "INSERT INTO t VALUES ($1)", i)
		}
	}
	insert(0, 50)
	r.waitEvents(t, 50, 20*time.Second)
	e.admin.Close(context.Background())
	e.pg.Restart(t)
	e.admin = e.pg.Conn(t, testDB)
	insert(50, 100)
	r.waitEvents(t, 100, 30*time.Second)

	// Connection limit: kill the relay's sessions while the role may not log in.
	e.admin.Exec(context.Background(), "ALTER ROLE "+testRole+" CONNECTION LIMIT 0")
	e.admin.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", testRole)
	insert(100, 150)
	time.Sleep(1500 * time.Millisecond)
	e.admin.Exec(context.Background(), "ALTER ROLE "+testRole+" CONNECTION LIMIT -1")
	evs := r.waitEvents(t, 150, 30*time.Second)
	seen := map[string]int{}
	for _, ev := range evs {
		seen[string(ev.Key)]++
	}
	for i := 0; i < 150; i++ {
		if n := seen[`{"id":`+itoa(i)+`}`]; n != 1 {
			t.Errorf("id %d seen %d times", i, n)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	t.Logf("restarts of Run: %d", r.restarts)
	r.mu.Unlock()
	var left int
	waitFor(t, 5*time.Second, "no connection of the relay role", func() bool {
		e.admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", testRole).Scan(&left)
		return left == 0
	})
}
