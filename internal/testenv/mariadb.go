package testenv

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// Paths of the MariaDB 10.11 server binaries.
const (
	MariaDBServer  = "/usr/sbin/mariadbd"
	MariaDBInstall = "/usr/bin/mariadb-install-db"
)

// MariaDB is a throwaway MariaDB server with the binlog settings the relay
// requires: log_bin, binlog_format=ROW, binlog_row_image=FULL,
// binlog_row_metadata=FULL, gtid_strict_mode=1, server_id=1 (GTIDs
// 0-1-N), log_slave_updates, skip-name-resolve. For speed it runs with
// innodb_flush_log_at_trx_commit=2 and sync_binlog=0: a SIGKILL of the
// server loses no committed transaction, a machine crash could.
//
// The user root connects from 127.0.0.1 without a password; that account is
// for the harness and for setting up users, not for the code under test.
type MariaDB struct {
	server        // Port, Stop (SIGTERM), Kill, Start, Restart
	Host   string // 127.0.0.1
	Dir    string // holds data/, my.cnf, the socket and mariadbd.log

	cnf string
}

type mariaOptions struct {
	conf              []string
	ca, cert, keyFile string
}

// MariaOption changes how StartMariaDB sets the server up.
type MariaOption func(*mariaOptions)

// MariaConf appends lines to the [mariadbd] section of the server's option
// file, after the harness's own settings, which they therefore override.
func MariaConf(lines ...string) MariaOption {
	return func(o *mariaOptions) { o.conf = append(o.conf, lines...) }
}

// MariaSSL enables TLS with this CA, certificate and key, copied into the
// server's directory. Clients may still connect without TLS unless a user
// is created with REQUIRE SSL.
func MariaSSL(caFile, certFile, keyFile string) MariaOption {
	return func(o *mariaOptions) { o.ca, o.cert, o.keyFile = caFile, certFile, keyFile }
}

// StartMariaDB installs a fresh data directory with mariadb-install-db and
// starts mariadbd on a free port. The server is killed and its directory
// removed when the test ends.
func StartMariaDB(t testing.TB, opts ...MariaOption) *MariaDB {
	t.Helper()
	return must(NewMariaDB(t, opts...))(t)
}

// NewMariaDB is StartMariaDB for any Env: it returns what went wrong (a
// *MissingError when the server is not installed).
func NewMariaDB(e Env, opts ...MariaOption) (*MariaDB, error) {
	var o mariaOptions
	for _, opt := range opts {
		opt(&o)
	}
	install, err := lookExecutable(MariaDBInstall)
	if err != nil {
		return nil, err
	}
	if _, err := lookExecutable(MariaDBServer); err != nil {
		return nil, err
	}
	dir, err := serverDir(e, "mariadb", true)
	if err != nil {
		return nil, err
	}
	m := &MariaDB{Host: "127.0.0.1", Dir: dir, cnf: filepath.Join(dir, "my.cnf")}
	m.server = server{kind: "mariadb", dir: dir, logFile: filepath.Join(dir, "mariadbd.log"), stopSig: syscall.SIGTERM}
	m.spec = func() procSpec {
		return procSpec{
			name:   "mariadbd",
			argv:   []string{MariaDBServer, "--defaults-file=" + m.cnf, "--port=" + strconv.Itoa(m.Port)},
			dir:    m.Dir,
			log:    m.logFile,
			nobody: true,
		}
	}
	m.ready = func(*proc) error {
		c, err := m.connect(2 * time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}

	data := filepath.Join(dir, "data")
	out, err := runAs(dir, true, 2*time.Minute, install,
		"--no-defaults", "--datadir="+data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve",
		// Its own temporary directory: bootstraps running in parallel in a
		// shared /tmp can collide on temporary table names.
		"--tmpdir="+dir)
	if err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}

	conf := []string{
		"[mariadbd]",
		"datadir = " + data,
		"socket = " + filepath.Join(dir, "mariadbd.sock"),
		"pid-file = " + filepath.Join(dir, "mariadbd.pid"),
		"log_error = " + m.logFile,
		"tmpdir = " + dir,
		"bind-address = 127.0.0.1",
		"skip-name-resolve",
		"server_id = 1",
		"log_bin = binlog",
		"binlog_format = ROW",
		"binlog_row_image = FULL",
		"binlog_row_metadata = FULL",
		"gtid_strict_mode = 1",
		"log_slave_updates = 1",
		"innodb_flush_log_at_trx_commit = 2",
		"sync_binlog = 0",
		"innodb_buffer_pool_size = 64M",
	}
	if o.cert != "" {
		for _, f := range []struct{ src, dst, key string }{
			{o.ca, "ca.pem", "ssl_ca"},
			{o.cert, "server-cert.pem", "ssl_cert"},
			{o.keyFile, "server-key.pem", "ssl_key"},
		} {
			if f.src == "" {
				continue
			}
			dst := filepath.Join(dir, f.dst)
			if err := copyOwned(f.src, dst, 0o600, true); err != nil {
				return nil, fmt.Errorf("mariadb ssl: %w", err)
			}
			conf = append(conf, f.key+" = "+dst)
		}
	}
	conf = append(conf, o.conf...)
	if err := writeOwned(m.cnf, []byte(strings.Join(conf, "\n")+"\n"), 0o644, true); err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	if err := m.startFirst(e); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *MariaDB) connect(timeout time.Duration) (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return client.ConnectWithContext(ctx, m.Addr(), "root", "", "", timeout, func(c *client.Conn) error {
		c.ReadTimeout = time.Minute
		c.WriteTimeout = time.Minute
		return nil
	})
}

// Addr returns 127.0.0.1:port.
func (m *MariaDB) Addr() string { return net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) }

// DSN returns mysql://user@127.0.0.1:port/db.
func (m *MariaDB) DSN(user, db string) string {
	return fmt.Sprintf("mysql://%s@%s/%s", user, m.Addr(), db)
}

// Exec runs one statement as root on a connection of its own and returns
// its result. With args the statement is prepared, with ? placeholders.
func (m *MariaDB) Exec(t testing.TB, sql string, args ...any) *mysql.Result {
	t.Helper()
	c, err := m.connect(30 * time.Second)
	if err != nil {
		t.Fatalf("testenv: mariadb: connect: %v", err)
	}
	defer c.Close()
	r, err := c.Execute(sql, args...)
	if err != nil {
		t.Fatalf("testenv: mariadb: exec: %v\n%s", err, sql)
	}
	return r
}
