package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/columns"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/sources"
)

const (
	// Message prefixes written with pg_logical_emit_message.
	prefixHeartbeat = "cdcrelay.heartbeat"
	prefixWatermark = "cdcrelay.watermark"
	prefixSignal    = "cdcrelay.signal"

	// statusInterval is the longest time between two standby status
	// updates (and lag polls).
	statusInterval = 10 * time.Second

	defaultChunkSize = 10000

	// ackPollInterval is the longest an ack waits before Run reports it.
	ackPollInterval = 200 * time.Millisecond
)

var _ sources.Source = (*Source)(nil)

// Source is a PostgreSQL logical replication source. Run and Ack follow the
// sources.Stream contract; the other methods may be called from any goroutine
// while Run is not running, or concurrently with it (each opens its own
// connection).
type Source struct {
	id          string
	dsn         string
	password    string
	tls         config.TLS
	slot        string
	publication string
	tables      []pattern
	keyless     []pattern
	snapshot    bool // initial snapshot wanted
	chunkSize   int
	heartbeat   time.Duration
	truncate    string // format.truncate: skip, event or fail
	omitToast   bool   // source.unchanged_toast is omit
	rules       *columns.Rules
	cfg         config.Source
	log         *slog.Logger
	m           *metrics.Metrics

	acked atomic.Uint64 // highest LSN acked by the relay
	// chunkMems counts the snapshot chunk memories the current Run made;
	// the others were reused (see runner.chunkAlloc).
	chunkMems atomic.Int64
	// chunkRereads counts the snapshot chunks dropped at their low
	// watermark and read again (see chunkcheck.go).
	chunkRereads atomic.Int64

	// slotCreated is set once Setup has created the slot, for the log line
	// that says where streaming starts.
	slotCreated atomic.Bool

	mu     sync.Mutex
	closed bool
}

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// New validates cfg and returns a Source. It does no I/O.
func New(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*Source, error) {
	if log == nil {
		log = slog.Default()
	}
	if m == nil {
		m = metrics.Discard()
	}
	sc := cfg.Source
	s := &Source{
		id:          cfg.ID,
		dsn:         sc.DSN,
		password:    sc.Password.Reveal(),
		tls:         sc.TLS,
		slot:        sc.Slot,
		publication: sc.Publication,
		chunkSize:   sc.SnapshotChunkSize,
		heartbeat:   sc.HeartbeatInterval,
		truncate:    cfg.Format.Truncate,
		rules:       columns.New(&sc),
		cfg:         sc,
		log:         log.With("source", "postgres"),
		m:           m,
	}
	var errs []error
	if s.slot == "" {
		s.slot = "cdcrelay_" + cfg.ID
	}
	if s.publication == "" {
		s.publication = "cdcrelay_" + cfg.ID
	}
	if !slotName.MatchString(s.slot) {
		errs = append(errs, fmt.Errorf("source.slot: %q must match [a-z0-9_]{1,63}", s.slot))
	}
	if len(s.publication) > 63 {
		errs = append(errs, fmt.Errorf("source.publication: %q is longer than 63 bytes", s.publication))
	}
	if s.chunkSize == 0 {
		s.chunkSize = defaultChunkSize
	} else if s.chunkSize < 1 {
		errs = append(errs, errors.New("source.snapshot_chunk_size: must be > 0"))
	}
	switch sc.Snapshot {
	case "", "initial":
		s.snapshot = true
	case "never":
	default:
		errs = append(errs, fmt.Errorf("source.snapshot: %q is not initial or never", sc.Snapshot))
	}
	if s.heartbeat < 0 {
		errs = append(errs, errors.New("source.heartbeat_interval: must not be negative"))
	}
	switch sc.UnchangedToast {
	case "", config.UnchangedToastRefuse:
	case config.UnchangedToastOmit:
		s.omitToast = true
	default:
		errs = append(errs, fmt.Errorf("source.unchanged_toast: %q is not refuse or omit", sc.UnchangedToast))
	}
	if _, err := s.connConfig(false); err != nil {
		errs = append(errs, fmt.Errorf("source.dsn: %w", err))
	}
	if len(sc.Tables) == 0 {
		errs = append(errs, errors.New("source.tables: at least one table is required"))
	}
	for _, t := range sc.Tables {
		p, err := parsePattern(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("source.tables: %w", err))
			continue
		}
		s.tables = append(s.tables, p)
	}
	for _, t := range sc.Keyless {
		p, err := parsePattern(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("source.keyless: %w", err))
			continue
		}
		s.keyless = append(s.keyless, p)
	}
	if (sc.TLS.CertFile == "") != (sc.TLS.KeyFile == "") {
		errs = append(errs, errors.New("source.tls: cert_file and key_file go together"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases the Source. Connections are owned by the calls that open
// them, so there is nothing left open once Run has returned.
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// pattern is one entry of source.tables or source.keyless.
type pattern struct {
	schema, table string
	all           bool // schema.*
}

func (p pattern) match(schema, table string) bool {
	return p.schema == schema && (p.all || p.table == table)
}

func (p pattern) String() string {
	if p.all {
		return pgx.Identifier{p.schema}.Sanitize() + ".*"
	}
	return pgx.Identifier{p.schema, p.table}.Sanitize()
}

// parsePattern reads schema.table or schema.*; either part may be written as
// a double-quoted identifier ("My.Schema"."Odd ""name""") to hold dots,
// quotes or upper case. Unquoted parts are taken as written.
func parsePattern(s string) (pattern, error) {
	schema, rest, err := identPart(s)
	if err != nil || !strings.HasPrefix(rest, ".") {
		return pattern{}, fmt.Errorf("%q is not schema.table or schema.*", s)
	}
	rest = rest[1:]
	if rest == "*" {
		return pattern{schema: schema, all: true}, nil
	}
	table, tail, err := identPart(rest)
	if err != nil || tail != "" {
		return pattern{}, fmt.Errorf("%q is not schema.table or schema.*", s)
	}
	return pattern{schema: schema, table: table}, nil
}

func identPart(s string) (ident, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			i = len(s)
		}
		if i == 0 {
			return "", "", errors.New("empty identifier")
		}
		return s[:i], s[i:], nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] == '"' {
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			if b.Len() == 0 {
				return "", "", errors.New("empty identifier")
			}
			return b.String(), s[i+1:], nil
		}
		b.WriteByte(s[i])
	}
	return "", "", errors.New("unterminated quoted identifier")
}

func (s *Source) captured(schema, table string) bool {
	for _, p := range s.tables {
		if p.match(schema, table) {
			return true
		}
	}
	return false
}

// keyColumns returns the Kafka key columns source.key_columns chooses for
// schema.table, nil when none.
func (s *Source) keyColumns(schema, table string) []string {
	return s.cfg.KeyColumnsFor(schema, table)
}

func (s *Source) isKeyless(schema, table string) bool {
	for _, p := range s.keyless {
		if p.match(schema, table) {
			return true
		}
	}
	return false
}

// sessionParams fix the text output of every value the relay reads, on the
// replication and the SQL connections alike.
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, YMD",
	"IntervalStyle":      "iso_8601",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
}

// connConfig builds the connection settings from the DSN, the password, the
// TLS files and the fixed session parameters.
func (s *Source) connConfig(replication bool) (*pgconn.Config, error) {
	dsn := s.dsn
	if s.tls.CAFile != "" || s.tls.CertFile != "" {
		u, err := url.Parse(dsn)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return nil, errors.New("must be a postgres:// URL")
		}
		q := u.Query()
		if s.tls.CAFile != "" {
			q.Set("sslrootcert", s.tls.CAFile)
		}
		if s.tls.CertFile != "" {
			q.Set("sslcert", s.tls.CertFile)
			q.Set("sslkey", s.tls.KeyFile)
		}
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if s.password != "" {
		cfg.Password = s.password
	}
	if s.tls.ServerName != "" {
		for _, t := range append([]*pgconn.FallbackConfig{{TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...) {
			if t.TLSConfig != nil {
				t.TLSConfig.ServerName = s.tls.ServerName
			}
		}
	}
	cfg.ConnectTimeout = 10 * time.Second
	cfg.BuildFrontend = bufferedFrontend
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["application_name"] = "cdcrelay_" + s.id
	if replication {
		cfg.RuntimeParams["replication"] = "database"
	}
	return cfg, nil
}

// readBuffer is the read buffer of each connection. pgx reads 8 KiB at a
// time; a snapshot chunk of 10,000 rows of 700 bytes then takes some 850
// read calls, and the replication stream as many per 7 MB of WAL.
const readBuffer = 256 << 10

// bufferedFrontend is pgx's frontend reading through a larger buffer, so
// that one read call takes whatever the socket holds, up to readBuffer. A
// read error, a deadline included, passes through as it came.
func bufferedFrontend(r io.Reader, w io.Writer) *pgproto3.Frontend {
	return pgproto3.NewFrontend(bufio.NewReaderSize(r, readBuffer), w)
}

// connectSQL opens a normal SQL connection.
func (s *Source) connectSQL(ctx context.Context) (*pgx.Conn, error) {
	pc, err := s.connConfig(false)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cc, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cc.Config = *pc
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect %s: %w", pc.Host, err)
	}
	return conn, nil
}

// connectSQLRetry is connectSQL retried with backoff while the server is
// down, restarting or out of connections, so that a preflight at start
// waits like a running relay does instead of failing.
func (s *Source) connectSQLRetry(ctx context.Context) (*pgx.Conn, error) {
	var conn *pgx.Conn
	err := retry(ctx, s, func() error {
		var err error
		conn, err = s.connectSQL(ctx)
		return err
	})
	return conn, err
}

// connectReplication opens a logical replication connection.
func (s *Source) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	pc, err := s.connConfig(true)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect %s for replication: %w", pc.Host, err)
	}
	return conn, nil
}

// Ack records that every message up to cp is committed in Kafka. The next
// standby status update, sent by Run, reports cp's LSN as written, flushed
// and applied. Ack never blocks.
func (s *Source) Ack(cp *change.Checkpoint) {
	if cp == nil {
		return
	}
	s.raiseAcked(cp.LSN)
}

func (s *Source) raiseAcked(lsn uint64) {
	for {
		cur := s.acked.Load()
		if lsn <= cur || s.acked.CompareAndSwap(cur, lsn) {
			return
		}
	}
}
