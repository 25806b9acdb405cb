package mysql

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// The ways a snapshot chunk is placed in the binlog (source.snapshot_watermark).
const (
	// markTable writes a low and a high watermark row into the watermark
	// table around each chunk query.
	markTable = "table"
	// markBinlog writes nothing: each chunk is read in a consistent-snapshot
	// transaction, and MariaDB reports the binlog position that the
	// transaction's view matches exactly (binlog_snapshot_file and
	// binlog_snapshot_position). The chunk then stands at that point of the
	// stream: every transaction before it is in the rows read, none after.
	markBinlog = "binlog"
)

// errMarkMode is a source.snapshot_watermark that this server cannot run.
type errMarkMode struct{ msg string }

func (e *errMarkMode) Error() string { return e.msg }

// isMariaDB reports whether the server is MariaDB.
func isMariaDB(c *client.Conn) (bool, error) {
	v, err := variables(c, "version")
	if err != nil {
		return false, err
	}
	return strings.Contains(strings.ToLower(v["version"]), "mariadb"), nil
}

// snapshotMode decides how snapshot chunks are placed in the binlog, and
// says why. With auto the watermark table is used only when the relay may
// write it: the server is not read_only (a replica's data must not change
// under it) and the user holds INSERT and UPDATE on the table (and CREATE
// when it is missing). Otherwise the binlog position of a consistent read
// is used, which MariaDB alone reports. A setting the server cannot run is
// an *errMarkMode.
func (s *Source) snapshotMode(c *client.Conn, mariadb bool) (mode, why string, err error) {
	switch s.cfg.Source.SnapshotWatermark {
	case markTable:
		return markTable, "source.snapshot_watermark is table", nil
	case markBinlog:
		if !mariadb {
			return "", "", &errMarkMode{"source.snapshot_watermark: binlog needs MariaDB, which reports the binlog position of a consistent read; on MySQL use table and grant INSERT, UPDATE on the watermark table (see docs/mysql.md)"}
		}
		return markBinlog, "source.snapshot_watermark is binlog", nil
	}
	if !mariadb {
		return markTable, "auto: MySQL does not report the binlog position of a consistent read, so the watermark table is used", nil
	}
	v, err := variables(c, "read_only")
	if err != nil {
		return "", "", err
	}
	if strings.EqualFold(v["read_only"], "ON") || v["read_only"] == "1" {
		return markBinlog, "auto: the server is read_only, so nothing is written to it", nil
	}
	rows, err := queryRows(c, "SHOW GRANTS FOR CURRENT_USER()")
	if err != nil {
		return "", "", fmt.Errorf("mysql: read the grants: %w", err)
	}
	var lines []string
	for _, r := range rows {
		lines = append(lines, r[0])
	}
	g := parseGrants(lines)
	exists, err := watermarkExists(c, s.db)
	if err != nil {
		return "", "", err
	}
	need := []string{"INSERT", "UPDATE"}
	if !exists {
		need = append(need, "CREATE")
	}
	var missing []string
	for _, p := range need {
		if !g.hasOn(s.db, WatermarkTable, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return markBinlog, fmt.Sprintf("auto: the user lacks %s on %s.%s, so nothing is written to the server", strings.Join(missing, ", "), s.db, WatermarkTable), nil
	}
	return markTable, fmt.Sprintf("auto: the user may write %s.%s", s.db, WatermarkTable), nil
}

// binlogPos is a point of the binlog: a file and an offset in it. The zero
// value is before every other.
type binlogPos struct {
	file string
	pos  uint32
}

func (p binlogPos) String() string { return p.file + ":" + strconv.FormatUint(uint64(p.pos), 10) }

// compare orders two binlog points: files by the number after their last
// dot (binlog.000009 before binlog.000010), then offsets.
func (p binlogPos) compare(q binlogPos) int {
	if p.file != q.file {
		if p.file == "" || q.file == "" {
			return strings.Compare(p.file, q.file)
		}
		return compareFiles(p.file, q.file)
	}
	switch {
	case p.pos < q.pos:
		return -1
	case p.pos > q.pos:
		return 1
	}
	return 0
}

func compareFiles(a, b string) int {
	ia, ib := strings.LastIndexByte(a, '.'), strings.LastIndexByte(b, '.')
	if ia >= 0 && ib >= 0 && a[:ia] == b[:ib] {
		na, erra := strconv.ParseUint(a[ia+1:], 10, 64)
		nb, errb := strconv.ParseUint(b[ib+1:], 10, 64)
		if erra == nil && errb == nil {
			switch {
			case na < nb:
				return -1
			case na > nb:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(a, b)
}

// pendingMark is a watermark placed at a binlog point, waiting for the
// stream to get there.
type pendingMark struct {
	m       snapshot.Mark
	at      binlogPos
	checked bool // the stream has compared its own point with at
	missed  bool // the stream had passed at already
}

// markList holds the binlog-placed watermarks in the order they were
// taken. Only the stream goroutine uses it: chunks are not read ahead in
// this mode, so the dialect adds to it from ReadNext.
type markList struct{ pending []pendingMark }

// binlogMark places m at the binlog point of a consistent read: the low
// mark opens the read's transaction and reads the point, the high mark
// ends the transaction. Both marks of a chunk carry the same point, so the
// chunk's window in the stream is empty.
func (d *dialect) binlogMark(m snapshot.Mark) error {
	if m.Kind == snapshot.High {
		if _, err := d.c.Execute("COMMIT"); err != nil {
			return err
		}
		d.marks.pending = append(d.marks.pending, pendingMark{m: m, at: d.at})
		return nil
	}
	at, err := d.consistentRead()
	if err != nil {
		if _, rerr := d.c.Execute("ROLLBACK"); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return err
	}
	d.at = at
	d.marks.pending = append(d.marks.pending, pendingMark{m: m, at: at})
	return nil
}

// consistentRead starts a consistent-snapshot transaction and returns the
// binlog point its view matches.
func (d *dialect) consistentRead() (binlogPos, error) {
	// The point matches the view only under REPEATABLE READ.
	if _, err := d.c.Execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return binlogPos{}, err
	}
	if _, err := d.c.Execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return binlogPos{}, err
	}
	rows, err := queryRows(d.c, "SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return binlogPos{}, err
	}
	var at binlogPos
	for _, r := range rows {
		switch strings.ToLower(r[0]) {
		case "binlog_snapshot_file":
			at.file = r[1]
		case "binlog_snapshot_position":
			n, err := strconv.ParseUint(r[1], 10, 32)
			if err != nil {
				return binlogPos{}, fmt.Errorf("binlog_snapshot_position %q: %v", r[1], err)
			}
			at.pos = uint32(n)
		}
	}
	if at.file == "" {
		return binlogPos{}, &errMarkMode{"mysql: the server reports no binlog_snapshot_file for a consistent read; source.snapshot_watermark=binlog needs MariaDB with log_bin on (or set source.snapshot_watermark=table)"}
	}
	return at, nil
}

// passMarks hands the Snapshotter, in stream order, the pending marks whose
// point is at or before next, the point where the stream's next event
// starts. It is called between transactions only. A mark whose point the
// stream had passed before it first looked at it (a change after the
// point was handled before the chunk's window existed) is missed: its low
// mark is dropped and its high mark closes nothing, so the chunk is read
// again. Only a transaction counts as passed: events that change no data
// (a rotation, a binlog checkpoint) may lie between a chunk's point and the
// stream's.
func (r *reader) passMarks(ctx context.Context, next binlogPos) error {
	if r.marks == nil || r.inTxn {
		return nil
	}
	for len(r.marks.pending) > 0 {
		p := &r.marks.pending[0]
		if !p.checked {
			p.checked = true
			p.missed = r.txnAt.compare(p.at) >= 0
		}
		if !p.missed && next.compare(p.at) < 0 {
			break
		}
		m, missed := p.m, p.missed
		r.marks.pending = r.marks.pending[1:]
		if missed {
			if m.Kind == snapshot.Low {
				continue
			}
			r.s.log.Debug("mysql: the stream passed a snapshot chunk's binlog point before its window opened; reading the chunk again", "at", p.at.String())
		}
		if err := r.onMark(ctx, m); err != nil {
			return err
		}
	}
	if r.force && !r.snap.InWindow() {
		return r.checkpoint(ctx, r.commit)
	}
	return nil
}

// beforeEvent moves the binlog-placed marks up to the start of ev, before
// ev is handled, and takes the stream's point from a heartbeat: the server
// sends one when it has sent everything before that point.
func (r *reader) beforeEvent(ctx context.Context, ev *replication.BinlogEvent) error {
	h := ev.Header
	if hb, ok := ev.Event.(*replication.HeartbeatEvent); ok {
		if r.inTxn || hb.Filename == "" || h.LogPos == 0 {
			return nil
		}
		at := binlogPos{file: hb.Filename, pos: h.LogPos}
		if err := r.passMarks(ctx, at); err != nil {
			return err
		}
		if r.at.compare(at) < 0 {
			r.at = at
		}
		return nil
	}
	if r.inTxn || h.LogPos == 0 || h.LogPos < h.EventSize || r.st.File == "" {
		return nil
	}
	start := binlogPos{file: r.st.File, pos: h.LogPos - h.EventSize}
	if r.marks != nil && len(r.marks.pending) > 0 {
		if err := r.passMarks(ctx, start); err != nil {
			return err
		}
	}
	switch ev.Event.(type) {
	case *replication.MariadbGTIDEvent, *replication.GTIDEvent:
		r.txnAt = start
	case *replication.QueryEvent:
		// BEGIN, or a statement that is a transaction of its own.
		r.txnAt = start
	}
	return nil
}

// afterEvent records the point just after ev, the end of what the stream
// has handled.
func (r *reader) afterEvent(ev *replication.BinlogEvent) {
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		r.at = binlogPos{file: string(e.NextLogName), pos: uint32(e.Position)}
	case *replication.HeartbeatEvent:
	default:
		if ev.Header.LogPos > 0 && r.st.File != "" {
			r.at = binlogPos{file: r.st.File, pos: ev.Header.LogPos}
		}
	}
}
