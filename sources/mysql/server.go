package mysql

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// serverInfo is what the source reads about the server at the start of Run
// and in Check.
type serverInfo struct {
	version    string
	flavor     string
	serverID   uint32
	domainID   uint32 // MariaDB
	serverUUID string // MySQL
	gtidOn     bool
	gtidPos    string // MariaDB @@gtid_binlog_pos; MySQL @@gtid_executed
	settings   map[string]string
	file       string // SHOW MASTER STATUS
	pos        uint32
}

// queryRow runs a query and returns its first row as strings ("" for
// NULL); ok is false when there is no row.
func queryRow(c *client.Conn, q string, args ...any) (row []string, ok bool, err error) {
	rs, err := queryRows(c, q, args...)
	if err != nil || len(rs) == 0 {
		return nil, false, err
	}
	return rs[0], true, nil
}

// queryRows runs a query and returns every row as strings ("" for NULL).
// The strings are copies: go-mysql hands out views of a result set that it
// recycles once the result is closed.
func queryRows(c *client.Conn, q string, args ...any) ([][]string, error) {
	r, err := c.Execute(q, args...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Resultset == nil {
		return nil, nil
	}
	out := make([][]string, r.RowNumber())
	for i := range out {
		out[i] = make([]string, r.ColumnNumber())
		for j := range out[i] {
			s, err := r.GetString(i, j)
			if err != nil {
				return nil, err
			}
			out[i][j] = strings.Clone(s) // s aliases a pooled buffer
		}
	}
	return out, nil
}

// variables reads global variables by name; a variable the server does not
// know is absent from the map.
func variables(c *client.Conn, names ...string) (map[string]string, error) {
	q := "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('" + strings.Join(names, "','") + "')"
	rows, err := queryRows(c, q)
	if err != nil {
		return nil, fmt.Errorf("mysql: read server variables: %w", err)
	}
	v := make(map[string]string, len(rows))
	for _, r := range rows {
		v[strings.ToLower(r[0])] = r[1]
	}
	return v, nil
}

func readServerInfo(c *client.Conn) (*serverInfo, error) {
	v, err := variables(c, "version", "server_id", "gtid_domain_id", "gtid_binlog_pos",
		"server_uuid", "gtid_mode", "gtid_executed", "binlog_format", "binlog_row_image", "binlog_row_metadata")
	if err != nil {
		return nil, err
	}
	if v["version"] == "" {
		return nil, fmt.Errorf("mysql: SHOW GLOBAL VARIABLES returned no version (%d rows)", len(v))
	}
	si := &serverInfo{version: v["version"], flavor: flavorMySQL, settings: v}
	if strings.Contains(strings.ToLower(si.version), "mariadb") {
		si.flavor = flavorMariaDB
	}
	id, _ := strconv.ParseUint(v["server_id"], 10, 32)
	si.serverID = uint32(id)
	if si.flavor == flavorMariaDB {
		d, _ := strconv.ParseUint(v["gtid_domain_id"], 10, 32)
		si.domainID = uint32(d)
		si.gtidOn = true // MariaDB always writes GTIDs
		si.gtidPos = v["gtid_binlog_pos"]
	} else {
		si.serverUUID = v["server_uuid"]
		si.gtidOn = v["gtid_mode"] == "ON"
		si.gtidPos = strings.ReplaceAll(v["gtid_executed"], "\n", "")
	}
	row, ok, err := queryRow(c, "SHOW MASTER STATUS")
	if err != nil {
		return nil, fmt.Errorf("mysql: SHOW MASTER STATUS: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("mysql: the binary log is off on %s; set log_bin", si.version)
	}
	si.file = row[0]
	p, _ := strconv.ParseUint(row[1], 10, 32)
	si.pos = uint32(p)
	return si, nil
}

// binlogFile is one line of SHOW BINARY LOGS.
type binlogFile struct {
	name string
	size uint64
}

func binaryLogs(c *client.Conn) ([]binlogFile, error) {
	rows, err := queryRows(c, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("mysql: SHOW BINARY LOGS: %w", err)
	}
	out := make([]binlogFile, len(rows))
	for i, r := range rows {
		n, _ := strconv.ParseUint(r[1], 10, 64)
		out[i] = binlogFile{name: r[0], size: n}
	}
	return out, nil
}

// quoteIdent quotes a MySQL identifier with backticks.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func quoteTable(db, t string) string { return quoteIdent(db) + "." + quoteIdent(t) }

// quoteString quotes a string literal for statements sent as text.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// requireRowFormat returns an error naming the first binlog setting that
// makes the stream undecodable.
func (si *serverInfo) requireRowFormat() error {
	for _, want := range [][2]string{{"binlog_format", "ROW"}, {"binlog_row_image", "FULL"}, {"binlog_row_metadata", "FULL"}} {
		if got := si.settings[want[0]]; !strings.EqualFold(got, want[1]) {
			return fmt.Errorf("mysql: %s is %q, the relay needs %s; run cdcrelay check --config <file> for the fix", want[0], got, want[1])
		}
	}
	return nil
}

// firstLine is the message of err without the stack that go-mysql's
// errors print on their following lines.
func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// connectRetry opens a query connection, retrying with jittered exponential
// backoff (200ms doubling to 10s) while the server is down or full.
func (s *Source) connectRetry(ctx context.Context) (*client.Conn, error) {
	for {
		c, err := s.connect(ctx)
		if err == nil {
			return c, nil
		}
		if err := s.backoffOrFail(ctx, err); err != nil {
			return nil, err
		}
	}
}

func backoff(attempt int) time.Duration {
	d := 200 * time.Millisecond
	for i := 1; i < attempt && d < 10*time.Second; i++ {
		d *= 2
	}
	d = min(d, 10*time.Second)
	return d/2 + rand.N(d/2+1)
}
