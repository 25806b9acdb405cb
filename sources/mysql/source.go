package mysql

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/metrics"
)

// WatermarkTable is the table, in the DSN's database, that holds the
// snapshot watermarks and the on-demand snapshot requests. Setup creates it;
// its row changes are read from the binlog and never sent to Kafka.
const WatermarkTable = "cdcrelay_watermark"

// Source is one MySQL or MariaDB server captured through its binlog.
//
// Concurrency: Run calls happen one at a time; Ack, RequestSnapshot,
// Describe and Check may run concurrently with Run.
type Source struct {
	cfg      *config.Config
	log      *slog.Logger
	m        *metrics.Metrics
	host     string
	port     uint16
	user     string
	password string
	db       string // holds the watermark table
	tls      *tls.Config
	serverID uint32
	include  []config.TableRef
	keyless  []config.TableRef

	// cpSeq numbers the checkpoints sent (Checkpoint.Seq), by one Run at a
	// time; ackedSeq is the highest one acked.
	cpSeq    uint64
	ackedSeq atomic.Uint64

	mu       sync.Mutex
	acked    *state // last acknowledged position, for lag and logs
	attempts int    // consecutive failed connects, for backoff
	closed   bool
	conns    map[*client.Conn]struct{}
}

// New checks the configuration and returns a Source; it does no I/O apart
// from reading the TLS files.
func New(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.Discard()
	}
	s := &Source{cfg: cfg, log: log.With("source", "mysql"), m: m, conns: map[*client.Conn]struct{}{}}
	var errs []error
	if err := s.parseDSN(cfg.Source.DSN); err != nil {
		errs = append(errs, err)
	}
	s.password = cfg.Source.Password.Reveal()
	s.include = cfg.Source.TableRefs()
	s.keyless = cfg.Source.KeylessRefs()
	if len(s.include) == 0 {
		errs = append(errs, errors.New("source.tables: no table to capture"))
	}
	s.serverID = cfg.Source.ServerID
	if s.serverID == 0 {
		s.serverID = DeriveServerID(cfg.ID)
	}
	t, err := tlsConfig(&cfg.Source.TLS, s.host)
	if err != nil {
		errs = append(errs, err)
	}
	s.tls = t
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// DeriveServerID maps a source id to a replica server id in
// [2^30, 2^31): stable for the id, and far from the small ids that servers
// are usually given (1 is the usual primary).
func DeriveServerID(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte("cdcrelay:" + id))
	return 1<<30 | h.Sum32()&(1<<30-1)
}

func (s *Source) parseDSN(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("source.dsn: not a URL: %v", err)
	}
	if u.Scheme != "mysql" && u.Scheme != "mariadb" {
		return fmt.Errorf("source.dsn: scheme %q; want mysql://user@host:port/database", u.Scheme)
	}
	if _, has := u.User.Password(); has {
		return errors.New("source.dsn: must not hold a password; use CDCRELAY_SOURCE_PASSWORD or source.password_file")
	}
	s.user = u.User.Username()
	if s.user == "" {
		return errors.New("source.dsn: user missing; want mysql://user@host:port/database")
	}
	s.host = u.Hostname()
	if s.host == "" {
		return errors.New("source.dsn: host missing")
	}
	s.port = 3306
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("source.dsn: port %q is not a TCP port", p)
		}
		s.port = uint16(n)
	}
	s.db, err = url.PathUnescape(trimSlash(u.EscapedPath()))
	if err != nil || s.db == "" {
		return errors.New("source.dsn: database missing; it names where the cdcrelay_watermark table lives, e.g. mysql://cdc@host:3306/shop")
	}
	return nil
}

func trimSlash(p string) string {
	for len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	return p
}

func tlsConfig(t *config.TLS, host string) (*tls.Config, error) {
	if !t.Enabled && t.CAFile == "" && t.CertFile == "" {
		return nil, nil
	}
	c := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("source.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("source.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("source.tls.cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func (s *Source) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(int(s.port))) }

// queryTimeout bounds every read and write of a query connection.
const queryTimeout = 60 * time.Second

// connect opens a query connection. Every connection is tracked so that
// Close can end them, and each read has a deadline (lazyConn).
func (s *Source) connect(ctx context.Context) (*client.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	opts := []client.Option{func(c *client.Conn) error {
		c.ReadTimeout = queryTimeout
		c.WriteTimeout = queryTimeout
		if s.tls != nil {
			c.SetTLSConfig(s.tls.Clone())
		}
		return nil
	}}
	c, err := client.ConnectWithDialer(ctx, "tcp", s.addr(), s.user, s.password, "", lazyDialer(d), opts...)
	if err != nil {
		return nil, s.connectError(err)
	}
	if _, err := c.Execute("SET NAMES utf8mb4"); err != nil {
		c.Close()
		return nil, fmt.Errorf("mysql: set names utf8mb4: %w", err)
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c, nil
}

// release closes a connection opened by connect.
func (s *Source) release(c *client.Conn) {
	if c == nil {
		return
	}
	s.mu.Lock()
	_, mine := s.conns[c]
	delete(s.conns, c)
	s.mu.Unlock()
	if mine { // else Close already closed it
		c.Close()
	}
}

// connectError turns a failed connect into one line that says what to fix.
func (s *Source) connectError(err error) error {
	var unk x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unk):
		return fmt.Errorf("mysql: TLS to %s: the server certificate is not signed by a CA in source.tls.ca_file (%v)", s.addr(), unk)
	case errors.As(err, &host):
		return fmt.Errorf("mysql: TLS to %s: the server certificate does not match the name %q; set source.tls.server_name (%v)", s.addr(), host.Host, host)
	}
	if s.tls != nil && containsAny(err.Error(), "does not support TLS") {
		return fmt.Errorf("mysql: TLS to %s: the server has TLS disabled; enable ssl on the server or turn off source.tls", s.addr())
	}
	return fmt.Errorf("mysql: connect to %s as %s: %w", s.addr(), s.user, err)
}

// Close ends every connection the source holds. Run must have returned.
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[*client.Conn]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	return nil
}
