package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PGBinDir holds the PostgreSQL 15 server binaries.
const PGBinDir = "/usr/lib/postgresql/15/bin"

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 90 * time.Second

// Postgres is a throwaway PostgreSQL 15 server.
//
// Authentication: the superuser (SuperUser, "postgres") logs in without a
// password from 127.0.0.1 and over the unix socket in Dir (trust). Every
// other role must give its password over TCP (scram-sha-256), so tests can
// check the relay's password handling. Replication connections follow the
// same rules.
//
// Settings: wal_level=logical, max_replication_slots=20,
// max_wal_senders=20, listening on 127.0.0.1 only. For speed: fsync=off and
// full_page_writes=off, which lose nothing committed when the server is
// killed but would on a machine crash. synchronous_commit stays on, since
// with it off a SIGKILL can lose transactions the client saw commit.
type Postgres struct {
	server           // Port, Stop (fast shutdown), Kill, Start, Restart
	Host      string // 127.0.0.1
	Dir       string // holds data/, the unix socket and postgres.log
	SuperUser string // postgres
	Version   string // the server's version, such as "17.2.0", or "15 (Debian)"

	dataDir string
	binDir  string
	primary *Postgres // the server a standby replicates from; nil on a primary
}

type pgOptions struct {
	major         int // 0: $CDCRELAY_TEST_PG or the Debian package's 15
	conf          []string
	cert, keyFile string
}

// PGOption changes how StartPostgres sets the server up.
type PGOption func(*pgOptions)

// PGConf appends lines to postgresql.conf, after the harness's own settings,
// which they therefore override.
func PGConf(lines ...string) PGOption {
	return func(o *pgOptions) { o.conf = append(o.conf, lines...) }
}

// PGSSL enables SSL with this certificate and key. The files are copied into
// the data directory, owned by the server's user with mode 0600. Clients may
// still connect without SSL.
func PGSSL(certFile, keyFile string) PGOption {
	return func(o *pgOptions) { o.cert, o.keyFile = certFile, keyFile }
}

const pgHBA = `# written by testenv: trust for the superuser, passwords for everyone else
local all         all                     trust
host  all         postgres 127.0.0.1/32   trust
host  replication postgres 127.0.0.1/32   trust
host  all         all      127.0.0.1/32   scram-sha-256
host  replication all      127.0.0.1/32   scram-sha-256
`

// StartPostgres creates a database cluster with initdb and starts it on a
// free port. The server is stopped and its directory removed when the test
// ends.
func StartPostgres(t testing.TB, opts ...PGOption) *Postgres {
	t.Helper()
	return must(NewPostgres(t, opts...))(t)
}

// NewPostgres is StartPostgres for any Env: it returns what went wrong (a
// *MissingError when the server is not installed).
func NewPostgres(e Env, opts ...PGOption) (*Postgres, error) {
	var o pgOptions
	for _, opt := range opts {
		opt(&o)
	}
	bin, version, err := pgBinDir(o.major)
	if err != nil {
		return nil, err
	}
	initdb, err := lookExecutable(filepath.Join(bin, "initdb"))
	if err != nil {
		return nil, err
	}
	if _, err := lookExecutable(filepath.Join(bin, "postgres")); err != nil {
		return nil, err
	}
	dir, err := serverDir(e, "pg", true)
	if err != nil {
		return nil, err
	}
	p := newPostgres(dir, bin, version)

	out, err := runAs(dir, true, 2*time.Minute, initdb,
		"-D", p.dataDir, "-U", p.SuperUser, "--no-sync", "-E", "UTF8", "--locale=C",
		"--auth-local=trust", "--auth-host=scram-sha-256")
	if err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := writeOwned(filepath.Join(p.dataDir, "pg_hba.conf"), []byte(pgHBA), 0o600, true); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	conf := []string{
		"",
		"# testenv settings",
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + dir + "'",
		"wal_level = logical",
		"max_replication_slots = 20",
		"max_wal_senders = 20",
		// A walsender whose client vanished keeps its slot active until
		// this timeout; the default minute makes a killed relay's
		// successor wait that long for the slot.
		"wal_sender_timeout = 10s",
		"fsync = off",
		"full_page_writes = off",
		"shared_buffers = 32MB",
		"password_encryption = 'scram-sha-256'",
		"log_min_messages = warning",
	}
	if o.cert != "" {
		for src, dst := range map[string]string{o.cert: "server.crt", o.keyFile: "server.key"} {
			if err := copyOwned(src, filepath.Join(p.dataDir, dst), 0o600, true); err != nil {
				return nil, fmt.Errorf("postgres ssl: %w", err)
			}
		}
		conf = append(conf, "ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'")
	}
	conf = append(conf, o.conf...)
	if err := appendFile(filepath.Join(p.dataDir, "postgresql.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := p.startFirst(e); err != nil {
		return nil, err
	}
	return p, nil
}

// newPostgres describes a server whose data directory is dir/data, run from
// the binaries in bin; the caller fills the data directory and starts it.
func newPostgres(dir, bin, version string) *Postgres {
	p := &Postgres{
		Host:      "127.0.0.1",
		Dir:       dir,
		SuperUser: "postgres",
		dataDir:   filepath.Join(dir, "data"),
		binDir:    bin,
		Version:   version,
	}
	// SIGINT is what pg_ctl stop -m fast sends: open transactions are
	// rolled back and clients disconnected.
	p.server = server{kind: "postgres", dir: dir, logFile: filepath.Join(dir, "postgres.log"), stopSig: syscall.SIGINT}
	p.spec = func() procSpec {
		return procSpec{
			name:   "postgres",
			argv:   []string{filepath.Join(bin, "postgres"), "-D", p.dataDir, "-p", strconv.Itoa(p.Port)},
			dir:    p.Dir,
			log:    p.logFile,
			nobody: true,
		}
	}
	p.ready = func(*proc) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, p.DSN(p.SuperUser, "postgres"))
		if err != nil {
			return err
		}
		return c.Close(ctx)
	}
	return p
}

// DSN returns postgres://user@127.0.0.1:port/db?sslmode=disable.
func (p *Postgres) DSN(user, db string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", user, p.Host, p.Port, db)
}

// Conn opens a superuser connection to db, closed when the test ends.
func (p *Postgres) Conn(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.DSN(p.SuperUser, db))
	if err != nil {
		t.Fatalf("testenv: postgres: connect to %s: %v", db, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// Exec runs one statement in db as the superuser, on a connection of its
// own, and returns its command tag.
func (p *Postgres) Exec(t testing.TB, db, sql string, args ...any) pgconn.CommandTag {
	t.Helper()
	return must(p.ExecErr(db, sql, args...))(t)
}

// ExecErr is Exec returning its error.
func (p *Postgres) ExecErr(db, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.DSN(p.SuperUser, db))
	if err != nil {
		return pgconn.CommandTag{}, fmt.Errorf("postgres: connect to %s: %w", db, err)
	}
	defer c.Close(context.Background())
	tag, err := c.Exec(ctx, sql, args...)
	if err != nil {
		return tag, fmt.Errorf("postgres: exec in %s: %w\n%s", db, err, sql)
	}
	return tag, nil
}

// CreateDB creates a database owned by the superuser.
func (p *Postgres) CreateDB(t testing.TB, name string) {
	t.Helper()
	if err := p.CreateDatabase(name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// CreateDatabase is CreateDB returning its error.
func (p *Postgres) CreateDatabase(name string) error {
	_, err := p.ExecErr("postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}
