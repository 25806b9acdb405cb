package mysql

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
)

// ResyncHint ends every error about a position that cannot be resumed.
const ResyncHint = "re-sync with: cdcrelay offsets reset --config <file> --yes, then start the relay again (it takes a new snapshot)"

// ErrPositionLost is wrapped by every error that says the stored position
// cannot be resumed on this server.
var ErrPositionLost = errors.New("stored position cannot be resumed")

// lostError is a position that cannot be resumed; errors.Is matches it
// with ErrPositionLost.
type lostError struct{ msg string }

func (e *lostError) Error() string        { return e.msg }
func (e *lostError) Is(target error) bool { return target == ErrPositionLost }

func lost(format string, args ...any) error {
	return &lostError{msg: fmt.Sprintf(format, args...) + "; " + ResyncHint}
}

// verifyResume checks that the server still holds every transaction after
// st: the same server, binlogs not purged past it, history not reset.
func verifyResume(c *client.Conn, si *serverInfo, st *state) error {
	if st.Flavor != si.flavor {
		return lost("mysql: the stored position is from a %s server, this is %s", st.Flavor, si.version)
	}
	if si.flavor == flavorMariaDB {
		if st.ServerID != si.serverID || st.DomainID != si.domainID {
			return lost("mysql: server identity changed: stored server_id %d, gtid_domain_id %d; the server has %d, %d",
				st.ServerID, st.DomainID, si.serverID, si.domainID)
		}
	} else if st.ServerUUID != "" && st.ServerUUID != si.serverUUID {
		return lost("mysql: server identity changed: stored server_uuid %s, the server has %s", st.ServerUUID, si.serverUUID)
	}
	logs, err := binaryLogs(c)
	if err != nil {
		return err
	}
	if len(logs) == 0 {
		return lost("mysql: the server lists no binary logs")
	}
	if st.GTID == "" {
		return verifyFilePos(logs, st)
	}
	if si.flavor == flavorMariaDB {
		return verifyMariaGTID(c, logs, si, st)
	}
	return verifyMySQLGTID(c, si, st)
}

func verifyFilePos(logs []binlogFile, st *state) error {
	for _, l := range logs {
		if l.name == st.File {
			if uint64(st.Pos) > l.size {
				return lost("mysql: stored position %s:%d is beyond the end of that binlog (%d bytes)", st.File, st.Pos, l.size)
			}
			return nil
		}
	}
	return lost("mysql: binlog %s holding the stored position %s:%d is gone from the server (oldest binlog: %s)",
		st.File, st.File, st.Pos, logs[0].name)
}

var gtidListRE = regexp.MustCompile(`\d+-\d+-\d+`)

// verifyMariaGTID compares the stored position with the Gtid_list at the
// head of the oldest binlog (what was purged) and with @@gtid_binlog_pos
// (what exists).
func verifyMariaGTID(c *client.Conn, logs []binlogFile, si *serverInfo, st *state) error {
	stored, err := parseMariaPos(st.GTID)
	if err != nil {
		return fmt.Errorf("mysql: stored GTID position %q: %v", st.GTID, err)
	}
	rows, err := queryRows(c, "SHOW BINLOG EVENTS IN "+quoteString(logs[0].name)+" LIMIT 4")
	if err != nil {
		return fmt.Errorf("mysql: read the head of binlog %s: %w", logs[0].name, err)
	}
	for _, r := range rows {
		if len(r) < 6 || r[2] != "Gtid_list" {
			continue
		}
		for _, g := range gtidListRE.FindAllString(r[5], -1) {
			p, _ := gomysql.ParseMariadbGTID(g)
			if got, ok := stored[p.DomainID]; !ok || got.SequenceNumber < p.SequenceNumber {
				return lost("mysql: binlogs purged past the stored position %s: the oldest binlog %s starts after %s, so the transactions in between are gone",
					st.GTID, logs[0].name, g)
			}
		}
	}
	current, err := parseMariaPos(si.gtidPos)
	if err != nil {
		return fmt.Errorf("mysql: server gtid_binlog_pos %q: %v", si.gtidPos, err)
	}
	for d, g := range stored {
		cur, ok := current[d]
		if !ok || cur.SequenceNumber < g.SequenceNumber {
			return lost("mysql: the server's binlog history (gtid_binlog_pos %q) is behind the stored position %s (RESET MASTER, or another server)",
				si.gtidPos, st.GTID)
		}
	}
	return nil
}

func verifyMySQLGTID(c *client.Conn, si *serverInfo, st *state) error {
	stored, err := gomysql.ParseMysqlGTIDSet(st.GTID)
	if err != nil {
		return fmt.Errorf("mysql: stored GTID set %q: %v", st.GTID, err)
	}
	row, _, err := queryRow(c, "SELECT @@GLOBAL.gtid_purged")
	if err != nil {
		return fmt.Errorf("mysql: read gtid_purged: %w", err)
	}
	purged, err := gomysql.ParseMysqlGTIDSet(strings.ReplaceAll(first(row), "\n", ""))
	if err != nil {
		return fmt.Errorf("mysql: server gtid_purged: %v", err)
	}
	if !stored.Contain(purged) {
		return lost("mysql: binlogs purged past the stored position: gtid_purged %s is not contained in the stored set %s", purged, st.GTID)
	}
	executed, err := gomysql.ParseMysqlGTIDSet(si.gtidPos)
	if err != nil {
		return fmt.Errorf("mysql: server gtid_executed: %v", err)
	}
	if !executed.Contain(stored) {
		return lost("mysql: the stored GTID set %s holds transactions the server never executed (gtid_executed %s)", st.GTID, si.gtidPos)
	}
	return nil
}

func first(r []string) string {
	if len(r) == 0 {
		return ""
	}
	return r[0]
}

// errorCode returns the server error code inside err, or 0.
func errorCode(err error) uint16 {
	var me *gomysql.MyError
	if errors.As(err, &me) {
		return me.Code
	}
	// pingcap/errors wraps without Unwrap in some paths; fall back to text.
	s := err.Error()
	if i := strings.Index(s, "ERROR "); i >= 0 {
		rest := s[i+6:]
		if j := strings.IndexByte(rest, ' '); j > 0 {
			if n, err := strconv.ParseUint(rest[:j], 10, 16); err == nil {
				return uint16(n)
			}
		}
	}
	return 0
}

// canResumeInPlace tells whether a lost stream can be picked up again by
// this Run. Not when a snapshot window is open (its high watermark might
// be gone with a crashed server) or a transaction was cut without a GTID to
// recognise it by; the relay then restarts Run from the committed state.
func (r *reader) canResumeInPlace() bool {
	if r.snap != nil && r.snap.InWindow() {
		return false
	}
	return !r.inTxn || r.gtid != ""
}

// prepareReplay resets the transaction state for a reconnect at r.st.
func (r *reader) prepareReplay() {
	if r.inTxn {
		r.replayGTID, r.skip = r.gtid, r.txnRows
	}
	r.inTxn, r.began, r.gtid = false, false, ""
	if r.snap != nil && r.snap.InFlight() {
		r.snap.Abandon() // its watermarks, if they come, are ignored; the chunk is read again
	}
	if r.marks != nil {
		r.marks.pending = nil
	}
	// The new dump names its file first.
	r.at, r.txnAt = binlogPos{}, binlogPos{}
}

// beforeReconnect readies the reader to stream again from r.st after the
// binlog stream broke: everything before r.st was handled, and a
// transaction cut in the middle is read again with its events already sent
// skipped.
func (r *reader) beforeReconnect() {
	r.prepareReplay()
	// The read ahead's connection may have died with the stream; the
	// next read ahead opens a new one.
	r.s.release(r.pre)
	r.pre, r.preFailed = nil, false
	r.s.log.Info("mysql: reconnecting the binlog stream", "from", r.st.label(), "replay", r.replayGTID, "skip", r.skip)
}

// resumeOn makes q, a new connection, the reader's, and checks that the
// stream can go on from r.st on that server.
func (r *reader) resumeOn(q *client.Conn) error {
	r.s.release(r.q)
	r.q = q
	if r.dialect != nil {
		r.dialect.c = q
	}
	si, err := readServerInfo(q)
	if err == nil {
		err = verifyResume(q, si, r.st)
	}
	if err == nil {
		_, err = q.Execute("SET time_zone = '+00:00'")
	}
	if err != nil {
		if errors.Is(err, ErrPositionLost) {
			return sources.Fatal(err)
		}
		return r.s.classify(err)
	}
	return nil
}

// newReader sets up the reader of one Run from the position st.
func newReader(s *Source, out chan<- change.Message, st *state, flavor string, q *client.Conn) (*reader, error) {
	r := &reader{
		s: s, out: out, st: st, flavor: flavor, q: q,
		byID: map[uint64]*tableCodec{}, byBody: map[string]*tableCodec{},
		lastSent: time.Now(),
	}
	if flavor == flavorMariaDB {
		var err error
		if r.mpos, err = parseMariaPos(st.GTID); err != nil {
			return nil, fmt.Errorf("mysql: stored GTID position %q: %v", st.GTID, err)
		}
	} else if st.GTID != "" {
		gs, err := gomysql.ParseMysqlGTIDSet(st.GTID)
		if err != nil {
			return nil, fmt.Errorf("mysql: stored GTID set %q: %v", st.GTID, err)
		}
		r.mset = gs.(*gomysql.MysqlGTIDSet)
	}
	if err := r.schemas.Restore(st.Schemas); err != nil {
		return nil, fmt.Errorf("mysql: stored schema digests: %v", err)
	}
	return r, nil
}
