package mysql

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// cdcConnections counts the sessions of user cdc on the server.
func cdcConnections(t *testing.T, m *testenv.MariaDB) int64 {
	r := m.Exec(t, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'cdc'")
	n, _ := r.GetInt(0, 0)
	return n
}

func insertRange(t *testing.T, m *testenv.MariaDB, from, to int) {
	for i := from; i <= to; i++ {
		m.Exec(t, fmt.Sprintf("INSERT INTO shop.items VALUES (%d)", i))
	}
}

// checkExactlyOnce fails unless ids 1..n were each sent once (as c or r).
func checkExactlyOnce(t *testing.T, evs []*change.Event, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, e := range evs {
		if e.Table.Name == "items" {
			seen[string(e.Key)]++
		}
	}
	for i := 1; i <= n; i++ {
		k := fmt.Sprintf(`{"id":%d}`, i)
		if seen[k] != 1 {
			t.Errorf("id %d sent %d times", i, seen[k])
		}
	}
	if len(seen) != n {
		t.Errorf("%d keys sent, want %d", len(seen), n)
	}
}

// TestServerRestart restarts MariaDB cleanly and kills it with SIGKILL
// mid-stream. Run reports a lost stream, reconnects with backoff and
// resumes from the committed position with no loss and no repeat.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY)")
	src, met := newSource(t, testConfig(m))
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	sv := k.supervise(t, src)
	insertRange(t, m, 1, 20)
	k.waitFor(t, 30*time.Second, "first rows", func(evs []*change.Event) bool { return len(evs) >= 20 })

	m.Restart(t)
	insertRange(t, m, 21, 40)
	k.waitFor(t, 60*time.Second, "rows after restart", func(evs []*change.Event) bool { return len(evs) >= 40 })

	m.Kill(t)
	time.Sleep(500 * time.Millisecond)
	m.Start(t)
	insertRange(t, m, 41, 60)
	evs := k.waitFor(t, 60*time.Second, "rows after kill", func(evs []*change.Event) bool { return len(evs) >= 60 })
	time.Sleep(1500 * time.Millisecond)
	evs, _ = k.snapshot()
	checkExactlyOnce(t, evs, 60)
	if n := testGauge(met.Reconnects.WithLabelValues("mysql_server_restart")) + testGauge(met.Reconnects.WithLabelValues("mysql_network")); n < 2 {
		t.Errorf("reconnects counted: %v", n)
	}
	if n := cdcConnections(t, m); n != 2 {
		t.Errorf("user cdc holds %d connections while streaming, want 2 (query + binlog dump)", n)
	}
	if err := sv.stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := cdcConnections(t, m); n != 0 {
		t.Errorf("user cdc holds %d connections after Run returned", n)
	}
	t.Logf("Run restarted %d times", sv.restartCount())
}

// TestConnectionLimits starts the source while the server refuses it with
// 1203 (max_user_connections) and then 1040 (too many connections); it
// retries until a slot frees up and streams everything.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY)")
	m.Exec(t, "GRANT USAGE ON *.* TO 'cdc'@'%' WITH MAX_USER_CONNECTIONS 2")
	src, met := newSource(t, testConfig(m))
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	hold := func(user, pass string, n int) []*client.Conn {
		var cs []*client.Conn
		for i := 0; i < n; i++ {
			c, err := client.Connect(m.Addr(), user, pass, "")
			if err != nil {
				t.Fatalf("hold connection %d: %v", i, err)
			}
			cs = append(cs, c)
		}
		return cs
	}
	release := func(cs []*client.Conn) {
		for _, c := range cs {
			c.Close()
		}
	}

	for i := 0; i < 50 && cdcConnections(t, m) > 0; i++ {
		time.Sleep(50 * time.Millisecond) // Setup's session is still closing
	}
	held := hold("cdc", testPassword, 2)
	var k sink
	sv := k.supervise(t, src)
	insertRange(t, m, 1, 10)
	time.Sleep(2 * time.Second)
	if evs, _ := k.snapshot(); len(evs) != 0 {
		t.Fatalf("events while the user had no free connection")
	}
	release(held)
	k.waitFor(t, 30*time.Second, "rows after 1203", func(evs []*change.Event) bool { return len(evs) >= 10 })
	if n := testGauge(met.Reconnects.WithLabelValues("mysql_max_user_connections")); n < 1 {
		t.Errorf("no reconnect counted for max_user_connections")
	}
	if err := sv.stop(); err != nil {
		t.Fatal(err)
	}

	// MariaDB's smallest max_connections is 10; fill every slot, including
	// the one kept for administrators, with root sessions.
	m.Exec(t, "SET GLOBAL max_connections = 10")
	held = nil
	for i := 0; i < 20; i++ {
		c, err := client.Connect(m.Addr(), "root", "", "")
		if err != nil {
			break
		}
		held = append(held, c)
	}
	if _, err := client.Connect(m.Addr(), "cdc", testPassword, ""); errorCode(err) != 1040 {
		t.Fatalf("with every slot taken, cdc connects with %v, want error 1040", err)
	}
	sv = k.supervise(t, src)
	time.Sleep(2 * time.Second)
	release(held)
	time.Sleep(200 * time.Millisecond)
	insertRange(t, m, 11, 20)
	evs := k.waitFor(t, 30*time.Second, "rows after 1040", func(evs []*change.Event) bool { return len(evs) >= 20 })
	if n := testGauge(met.Reconnects.WithLabelValues("mysql_too_many_connections")); n < 1 {
		t.Errorf("no reconnect counted for too many connections")
	}
	checkExactlyOnce(t, evs, 20)
	if err := sv.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestStreamCutMidTransaction kills the binlog dump thread while a large
// transaction is half sent. The source reconnects in place, reads the
// transaction again and sends only the rows it had not sent.
func TestStreamCutMidTransaction(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY, pad VARCHAR(200))")
	src, met := newSource(t, testConfig(m))
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	sv := k.supervise(t, src)
	k.waitFor(t, 30*time.Second, "start", func([]*change.Event) bool {
		_, st := k.snapshot()
		return strings.Contains(string(st), `"done":["shop.items"]`)
	})
	k.paused.Store(true)
	const n = 40000
	m.Exec(t, fmt.Sprintf("INSERT INTO shop.items SELECT seq, REPEAT('x', 200) FROM shop.seq_1_to_%d", n))
	time.Sleep(500 * time.Millisecond)
	r := m.Exec(t, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'cdc' AND COMMAND LIKE 'Binlog Dump%'")
	id, err := r.GetInt(0, 0)
	if err != nil {
		t.Fatalf("no binlog dump thread: %v", err)
	}
	m.Exec(t, fmt.Sprintf("KILL %d", id))
	time.Sleep(200 * time.Millisecond)
	k.paused.Store(false)
	evs := k.waitFor(t, 60*time.Second, "the whole transaction", func(evs []*change.Event) bool { return len(evs) >= n })
	time.Sleep(1500 * time.Millisecond)
	evs, _ = k.snapshot()
	checkExactlyOnce(t, evs, n)
	if sv.restartCount() != 0 {
		t.Errorf("Run was restarted %d times; want an in-place reconnect", sv.restartCount())
	}
	if c := testGauge(met.Reconnects.WithLabelValues("mysql_network")) + testGauge(met.Reconnects.WithLabelValues("mysql_server_restart")); c < 1 {
		t.Errorf("no reconnect counted")
	}
}
