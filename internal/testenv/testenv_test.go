package testenv_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

func pgCount(t *testing.T, p *testenv.Postgres, db, table string) int {
	t.Helper()
	var n int
	if err := p.Conn(t, db).QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	start := time.Now()
	p := testenv.StartPostgres(t, testenv.PGConf("max_connections = 40"))
	t.Logf("postgres up on port %d in %v", p.Port, time.Since(start))

	p.CreateDB(t, "app")
	p.Exec(t, "app", "CREATE TABLE t (id int PRIMARY KEY, v text)")
	p.Exec(t, "app", "INSERT INTO t VALUES ($1, $2), ($3, $4)", 1, "a", 2, "b")

	c := p.Conn(t, "app")
	var walLevel, maxConns string
	if err := c.QueryRow(context.Background(), "SELECT current_setting('wal_level'), current_setting('max_connections')").Scan(&walLevel, &maxConns); err != nil {
		t.Fatal(err)
	}
	if walLevel != "logical" || maxConns != "40" {
		t.Fatalf("wal_level=%s max_connections=%s, want logical and 40 (PGConf)", walLevel, maxConns)
	}

	// Other roles need their password over TCP.
	p.Exec(t, "app", "CREATE ROLE relay LOGIN REPLICATION PASSWORD 'secret-pw'")
	ctx := context.Background()
	if c, err := pgx.Connect(ctx, p.DSN("relay", "app")); err == nil {
		c.Close(ctx)
		t.Fatal("role relay connected without a password")
	}
	if c, err := pgx.Connect(ctx, strings.Replace(p.DSN("relay", "app"), "relay@", "relay:wrong@", 1)); err == nil {
		c.Close(ctx)
		t.Fatal("role relay connected with a wrong password")
	}
	rc, err := pgx.Connect(ctx, strings.Replace(p.DSN("relay", "app"), "relay@", "relay:secret-pw@", 1))
	if err != nil {
		t.Fatalf("role relay with its password: %v", err)
	}
	rc.Close(ctx)

	start = time.Now()
	p.Restart(t)
	t.Logf("postgres restarted in %v", time.Since(start))
	if n := pgCount(t, p, "app", "t"); n != 2 {
		t.Fatalf("after restart: %d rows, want 2", n)
	}

	p.Exec(t, "app", "INSERT INTO t VALUES (3, 'c')")
	start = time.Now()
	p.Kill(t)
	p.Start(t)
	t.Logf("postgres killed and recovered in %v", time.Since(start))
	if n := pgCount(t, p, "app", "t"); n != 3 {
		t.Fatalf("after kill: %d rows, want 3", n)
	}
}

func TestPostgresSSL(t *testing.T) {
	t.Parallel()
	certs := testenv.NewTLSFiles(t)
	p := testenv.StartPostgres(t, testenv.PGSSL(certs.CertFile, certs.KeyFile))
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=verify-full&sslrootcert=%s", p.Port, certs.CAFile)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect with verify-full: %v", err)
	}
	defer c.Close(ctx)
	var ssl bool
	if err := c.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("connection not encrypted: ssl=%v err=%v", ssl, err)
	}
}

func TestMariaDBSSL(t *testing.T) {
	t.Parallel()
	certs := testenv.NewTLSFiles(t)
	m := testenv.StartMariaDB(t, testenv.MariaSSL(certs.CAFile, certs.CertFile, certs.KeyFile))
	if have, _ := m.Exec(t, "SELECT @@have_ssl").GetString(0, 0); have != "YES" {
		t.Fatalf("have_ssl = %q, want YES", have)
	}
	c, err := client.Connect(m.Addr(), "root", "", "", func(c *client.Conn) error {
		cfg := certs.ClientConfig(false)
		cfg.ServerName = m.Host // go-mysql does not fill it in
		c.SetTLSConfig(cfg)
		return nil
	})
	if err != nil {
		t.Fatalf("connect over TLS, verifying the server: %v", err)
	}
	defer c.Close()
	r, err := c.Execute("SHOW STATUS LIKE 'Ssl_version'")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := r.GetString(0, 1); !strings.HasPrefix(v, "TLS") {
		t.Fatalf("Ssl_version %q: the connection is not encrypted", v)
	}
}

func mariaCount(t *testing.T, m *testenv.MariaDB, table string) int64 {
	t.Helper()
	r := m.Exec(t, "SELECT count(*) FROM "+table)
	n, err := r.GetInt(0, 0)
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestMariaDB(t *testing.T) {
	t.Parallel()
	start := time.Now()
	m := testenv.StartMariaDB(t, testenv.MariaConf("max_connections = 42"))
	t.Logf("mariadb up on port %d in %v", m.Port, time.Since(start))

	r := m.Exec(t, "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@gtid_strict_mode, @@server_id, @@max_connections")
	var got []string
	for i := range 7 {
		s, err := r.GetString(0, i)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if want := "1 ROW FULL FULL 1 1 42"; strings.Join(got, " ") != want {
		t.Fatalf("settings %q, want %q", strings.Join(got, " "), want)
	}

	m.Exec(t, "CREATE DATABASE app")
	m.Exec(t, "CREATE TABLE app.t (id int PRIMARY KEY, v text)")
	m.Exec(t, "INSERT INTO app.t VALUES (?, ?), (?, ?)", 1, "a", 2, "b")

	start = time.Now()
	m.Restart(t)
	t.Logf("mariadb restarted in %v", time.Since(start))
	if n := mariaCount(t, m, "app.t"); n != 2 {
		t.Fatalf("after restart: %d rows, want 2", n)
	}

	m.Exec(t, "INSERT INTO app.t VALUES (3, 'c')")
	gtid, _ := m.Exec(t, "SELECT @@gtid_binlog_pos").GetString(0, 0)
	start = time.Now()
	m.Kill(t)
	m.Start(t)
	t.Logf("mariadb killed and recovered in %v", time.Since(start))
	if n := mariaCount(t, m, "app.t"); n != 3 {
		t.Fatalf("after kill: %d rows, want 3", n)
	}
	if after, _ := m.Exec(t, "SELECT @@gtid_binlog_pos").GetString(0, 0); after != gtid || !strings.HasPrefix(gtid, "0-1-") {
		t.Fatalf("gtid_binlog_pos %q before the kill, %q after; want equal, 0-1-N", gtid, after)
	}
}

func TestBroker(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{testenv.KindDev, testenv.KindApache} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			var b *testenv.Broker
			if kind == testenv.KindDev {
				b = testenv.StartDevBroker(t, testenv.BrokerArgs("--auto-create-topics"))
			} else {
				b = testenv.StartKafka(t)
			}
			t.Logf("%s broker %s up at %s in %v", b.Kind, b.Version, b.Addr, time.Since(start))
			if b.Addr != fmt.Sprintf("127.0.0.1:%d", b.Port) || b.Kind != kind {
				t.Fatalf("Addr %s, Port %d, Kind %s", b.Addr, b.Port, b.Kind)
			}

			cl := b.Client(t, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("t"))
			if err := cl.ProduceSync(context.Background(), kgo.StringRecord("one")).FirstErr(); err != nil {
				t.Fatalf("produce: %v\n%s", err, b.LogTail())
			}
			read := func() string {
				return testenv.Kcat(t, "-b", b.Addr, "-C", "-t", "t", "-e", "-q", "-f", "%s\n")
			}

			start = time.Now()
			b.Stop(t)
			b.Start(t) // same port, data dir and flags
			t.Logf("%s broker restarted in %v", b.Kind, time.Since(start))
			if out := read(); out != "one\n" {
				t.Fatalf("kcat after restart: %q, want %q", out, "one\n")
			}

			start = time.Now()
			b.Kill(t)
			b.Start(t)
			t.Logf("%s broker killed and started in %v", b.Kind, time.Since(start))
			if out := read(); out != "one\n" {
				t.Fatalf("kcat after kill: %q, want %q", out, "one\n")
			}
		})
	}
}

// TestKafkaCluster starts three Apache Kafka nodes, writes with acks=all to
// a topic of replication factor 3, kills the partition's leader and writes
// again: the two nodes left are a quorum and an ISR of min.insync.replicas.
func TestKafkaCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := testenv.StartKafkaCluster(t, 3)
	t.Logf("3-node Apache Kafka %s cluster up in %v", c.Brokers[0].Version, time.Since(start))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(c.Client(t))
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "r3"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	cl := c.Client(t, kgo.DefaultProduceTopic("r3"), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err := cl.ProduceSync(ctx, kgo.StringRecord("before")).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	leader := c.Leader(t, "r3", 0)
	leader.Kill(t)
	if err := cl.ProduceSync(ctx, kgo.StringRecord("after")).FirstErr(); err != nil {
		t.Fatalf("produce with node %s killed: %v", leader.Addr, err)
	}
	if now := c.Leader(t, "r3", 0); now == leader {
		t.Fatalf("the killed node still leads")
	}
	leader.Start(t)
	out := testenv.Kcat(t, "-b", c.Addrs(), "-C", "-t", "r3", "-e", "-q", "-f", "%s\n")
	if out != "before\nafter\n" {
		t.Fatalf("kcat: %q", out)
	}
}

// TestParallel starts two of each server at once; none may collide.
func TestParallel(t *testing.T) {
	t.Parallel()
	for i := range 2 {
		t.Run(fmt.Sprintf("postgres-%d", i), func(t *testing.T) {
			t.Parallel()
			p := testenv.StartPostgres(t)
			p.Exec(t, "postgres", "CREATE TABLE x (id int)")
			p.Restart(t)
			if n := pgCount(t, p, "postgres", "x"); n != 0 {
				t.Fatalf("%d rows", n)
			}
		})
		t.Run(fmt.Sprintf("mariadb-%d", i), func(t *testing.T) {
			t.Parallel()
			m := testenv.StartMariaDB(t)
			m.Exec(t, "CREATE TABLE mysql.testenv_x (id int)")
			m.Restart(t)
			if n := mariaCount(t, m, "mysql.testenv_x"); n != 0 {
				t.Fatalf("%d rows", n)
			}
		})
		t.Run(fmt.Sprintf("broker-%d", i), func(t *testing.T) {
			t.Parallel()
			b := testenv.StartBroker(t)
			cl := b.Client(t, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("p"))
			if err := cl.ProduceSync(context.Background(), kgo.StringRecord("x")).FirstErr(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCleanup checks that a server and its directory are gone once the test
// that started them has ended.
func TestCleanup(t *testing.T) {
	t.Parallel()
	var dir string
	var port int
	t.Run("start", func(t *testing.T) {
		p := testenv.StartPostgres(t)
		dir, port = p.Dir, p.Port
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory %s still there: %v", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", port)); err == nil {
		c.Close(ctx)
		t.Errorf("postgres on port %d still answers", port)
	}
}

func TestFreePortUnique(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p := testenv.FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
