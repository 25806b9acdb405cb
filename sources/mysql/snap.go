package mysql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// initSnapshot restores the snapshot progress of the state and its parts
// and, on a fresh start with source.snapshot=initial, queues every captured
// table that has a primary key.
func (r *reader) initSnapshot(ctx context.Context, q *client.Conn, fresh bool, parts map[string][]byte) error {
	var st snapshot.State
	if len(r.st.Snapshot) > 0 {
		if err := json.Unmarshal(r.st.Snapshot, &st); err != nil {
			return sources.Fatal(fmt.Errorf("mysql: stored snapshot progress: %v", err))
		}
	}
	st, err := snapshot.Restore(st, parts)
	if err != nil {
		return sources.Fatal(fmt.Errorf("mysql: %w", err))
	}
	initial := fresh && r.s.cfg.Source.Snapshot != "never"
	mode, why, err := r.s.snapshotMode(q, r.flavor == flavorMariaDB)
	if err != nil {
		var bad *errMarkMode
		if errors.As(err, &bad) {
			return sources.Fatal(err)
		}
		return r.s.classify(err)
	}
	exists, err := watermarkExists(q, r.s.db)
	if err != nil {
		return r.s.classify(err)
	}
	if mode == markTable && !exists {
		if initial || len(st.Queue) > 0 {
			return sources.Fatal(fmt.Errorf("mysql: table %s.%s is missing; it holds the snapshot watermarks. Create it with: cdcrelay setup --config <file>", r.s.db, WatermarkTable))
		}
		r.s.log.Warn("mysql: no watermark table; on-demand snapshots are off", "table", r.s.db+"."+WatermarkTable)
		return nil
	}
	r.dialect = &dialect{s: r.s, c: q}
	if mode == markBinlog {
		r.marks = &markList{}
		r.dialect.marks = r.marks
		if !exists {
			r.s.log.Info("mysql: no watermark table; on-demand snapshot requests are off", "table", r.s.db+"."+WatermarkTable)
		}
	}
	r.s.log.Info("mysql: snapshot watermarks", "mode", mode, "why", why)
	sn, err := snapshot.New(snapshot.Config{
		ChunkSize:  r.s.cfg.Source.SnapshotChunkSize,
		MarkPrefix: r.s.cfg.ID,
		Compare:    r.dialect.compare,
		Log:        r.s.log,
		Metrics:    r.s.m,
	}, st)
	if err != nil {
		return sources.Fatal(fmt.Errorf("mysql: restore snapshot progress: %w", err))
	}
	r.snap = sn
	if !initial {
		return nil
	}
	tables, err := r.s.listTables(ctx, q)
	if err != nil {
		return r.s.classify(err)
	}
	// Queueing a table reads its key; for many tables, one read per
	// database instead of one per table.
	if r.dialect.keys, err = readKeys(q, tables); err != nil {
		return r.s.classify(err)
	}
	defer func() { r.dialect.keys = nil }()
	for _, t := range tables {
		if err := sn.Enqueue(t.db + "." + t.name); err != nil {
			var refused *snapshotRefused
			if errors.As(err, &refused) {
				return sources.Fatal(refused.err)
			}
			return sources.Fatal(fmt.Errorf("mysql: %w", err))
		}
	}
	return nil
}

// enqueue queues a snapshot of table (db.name), e.g. on request.
func (r *reader) enqueue(table string) error {
	if r.snap == nil {
		r.s.log.Warn("mysql: cannot snapshot without the watermark table", "table", table)
		return nil
	}
	if err := r.snap.Enqueue(table); err != nil {
		var refused *snapshotRefused
		if errors.As(err, &refused) {
			err = refused.err
		}
		r.s.log.Error("mysql: cannot snapshot table", "table", table, "err", err)
	}
	return nil
}

func watermarkExists(c *client.Conn, db string) (bool, error) {
	_, ok, err := queryRow(c, "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+quoteString(db)+
		" AND TABLE_NAME = "+quoteString(WatermarkTable))
	if err != nil {
		return false, fmt.Errorf("mysql: look for the watermark table: %w", err)
	}
	return ok, nil
}

// watermark handles a row change of the watermark table: a mark of this
// source's snapshot, or a snapshot request.
func (r *reader) watermark(ctx context.Context, e *replication.RowsEvent) error {
	if e.Type() == replication.EnumRowsEventTypeDelete {
		return nil
	}
	names := e.Table.ColumnNameString()
	col := func(row []any, name string) string {
		for i, n := range names {
			if n == name && i < len(row) {
				switch v := row[i].(type) {
				case string:
					return v
				case []byte:
					return string(v)
				}
			}
		}
		return ""
	}
	step := 1
	start := 0
	if e.Type() == replication.EnumRowsEventTypeUpdate {
		step, start = 2, 1 // after-images
	}
	for i := start; i < len(e.Rows); i += step {
		row := e.Rows[i]
		if col(row, "source_id") != r.s.cfg.ID {
			continue
		}
		value := col(row, "value")
		switch col(row, "kind") {
		case "mark":
			m, ok := snapshot.ParseMark(value)
			if !ok || r.snap == nil || r.marks != nil {
				continue
			}
			if err := r.onMark(ctx, m); err != nil {
				return err
			}
		case "snapshot":
			db, name := splitTable(value)
			if !r.s.captured(db, name) {
				r.s.log.Warn("mysql: snapshot requested for a table that is not captured", "table", value)
				continue
			}
			r.s.log.Info("mysql: snapshot requested", "table", value)
			if err := r.enqueue(value); err != nil {
				return err
			}
		}
	}
	return nil
}

// onMark hands a watermark to the Snapshotter and, when it closes the
// chunk in flight, sends the chunk's rows; the checkpoint that carries the
// new progress follows (r.force).
func (r *reader) onMark(ctx context.Context, m snapshot.Mark) error {
	events, closed, err := r.snap.OnMark(m)
	if err != nil {
		return err
	}
	if !closed {
		return nil
	}
	r.prefetch(ctx)
	for _, ev := range events {
		ev.Source.File, ev.Source.Pos, ev.Source.ServerID = r.st.File, uint64(r.st.Pos), r.st.ServerID
	}
	r.events += len(events)
	if err := change.SendRuns(events, func(m change.Message) error { return r.send(ctx, m) }); err != nil {
		return err
	}
	r.chunkMem.Sent(r.snap.ClosedMemory())
	r.force = true
	return nil
}

// splitTable splits "db.name" at the first dot.
func splitTable(t string) (db, name string) {
	i := strings.IndexByte(t, '.')
	if i < 0 {
		return "", t
	}
	return t[:i], t[i+1:]
}

// column is one column of a table as information_schema shows it, with
// the encoder for its text-protocol value.
type column struct {
	name, dataType, columnType string
	nullable                   bool
	enc                        textEncoder
}

// tableColumns reads the columns and the primary key of db.name.
func tableColumns(c *client.Conn, db, name string) (cols []column, key []int, err error) {
	rows, err := queryRows(c, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COALESCE(CHARACTER_SET_NAME, ''), COLUMN_KEY
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = `+quoteString(db)+` AND TABLE_NAME = `+quoteString(name)+`
		ORDER BY ORDINAL_POSITION`)
	if err != nil {
		return nil, nil, fmt.Errorf("mysql: read the columns of %s.%s: %w", db, name, err)
	}
	idx := map[string]int{}
	for i, r := range rows {
		cols = append(cols, columnOf(r))
		idx[r[0]] = i
	}
	// STATISTICS, unlike KEY_COLUMN_USAGE, shows the key to a user with
	// no more than SELECT on the table.
	krows, err := queryRows(c, `SELECT COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = `+quoteString(db)+` AND TABLE_NAME = `+quoteString(name)+` AND INDEX_NAME = 'PRIMARY'
		ORDER BY SEQ_IN_INDEX`)
	if err != nil {
		return nil, nil, fmt.Errorf("mysql: read the primary key of %s.%s: %w", db, name, err)
	}
	for _, r := range krows {
		if i, ok := idx[r[0]]; ok {
			key = append(key, i)
		}
	}
	return cols, key, nil
}

// dialect is the MySQL side of the shared snapshot: watermark rows in
// cdcrelay_watermark and key-ordered chunk queries. It runs on the stream's
// query connection, from the stream goroutine, or, for a chunk read ahead,
// on a connection of its own with the key kinds of its table copied, so
// that it shares nothing with the stream goroutine.
type dialect struct {
	s     *Source
	c     *client.Conn
	kinds map[string][]keyKind
	// chunkNames holds the snapshot key columns of each table compared,
	// for the stream's window rules (reader.chunkKey).
	chunkNames map[string][]string
	alloc      *change.Alloc // where ReadChunk builds the rows; nil: a new one
	// marks, in binlog mode (markBinlog), receives the watermarks placed
	// at the binlog point of each chunk's consistent read, at; nil in
	// table mode.
	marks *markList
	at    binlogPos
	// keys, while the initial snapshot is queued, holds every captured
	// table's columns and primary key, read at once (readKeys).
	keys map[string]*tableKey
}

// snapshotRefused is a table that cannot be snapshotted; err is the line
// to show.
type snapshotRefused struct{ err error }

func (r *snapshotRefused) Error() string { return r.err.Error() }

// Memory returns the memory ReadChunk builds the rows in, for the reader to
// reuse once they are committed (see snapshot.ChunkMemory).
func (d *dialect) Memory() any {
	if d.alloc == nil {
		return nil
	}
	return d.alloc
}

// prefetch starts reading the next snapshot chunk ahead, on a connection of
// its own, while the rows of the chunk just closed are sent. Without that
// connection (the server refused it) chunks are read one after the other,
// as they would be anyway.
func (r *reader) prefetch(ctx context.Context) {
	// In binlog mode the chunk's binlog point must be taken while the
	// stream stands still, which a read ahead would not.
	if !r.snap.Active() || r.snap.InFlight() || r.preFailed || r.marks != nil {
		return
	}
	table := r.snap.Next()
	kinds := r.dialect.kinds[table]
	if kinds == nil {
		return // not compared yet: ReadNext reads it
	}
	if r.pre == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := r.s.connect(cctx)
		cancel()
		if err == nil {
			// The chunk query writes TIMESTAMP values as UTC, like the
			// stream's query connection.
			if _, err = c.Execute("SET time_zone = '+00:00'"); err != nil {
				r.s.release(c)
			}
		}
		if err != nil {
			r.preFailed = true
			r.s.log.Warn("mysql: no connection to read snapshot chunks ahead; reading them one after the other", "err", err)
			return
		}
		r.pre = c
	}
	a := r.chunkMem.Get(r.s.ackedSeq.Load())
	r.snap.Prefetch(ctx, &dialect{s: r.s, c: r.pre, kinds: map[string][]keyKind{table: kinds}, alloc: a})
	if !r.snap.InFlight() {
		r.chunkMem.Put(a)
	}
}

func (d *dialect) compare(table string) (snapshot.Compare, error) {
	db, name := splitTable(table)
	var (
		cols  []column
		key   []int
		index string
		err   error
	)
	if k := d.keys[table]; k != nil && len(k.key) > 0 {
		// A primary key is what snapshotKey would choose.
		cols, key = k.cols, k.key
	} else if cols, key, index, _, err = d.s.snapshotKey(d.c, db, name); err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, &snapshotRefused{snapshotRefusal(table)}
	}
	if index != "" {
		d.s.log.Info("mysql: table without a primary key is snapshotted by a unique index", "table", table, "index", index, "columns", joinCols(cols, key))
	}
	kinds := make([]keyKind, len(key))
	for i, k := range key {
		kd, ok := kindOf(cols[k])
		if !ok {
			return nil, fmt.Errorf("key column %s of type %s cannot be snapshotted in key order; use source.snapshot=never for it or key it by an integer, string or date column", cols[k].name, cols[k].columnType)
		}
		kinds[i] = kd
	}
	if d.kinds == nil {
		d.kinds = map[string][]keyKind{}
		d.chunkNames = map[string][]string{}
	}
	d.kinds[table] = kinds
	names := make([]string, len(key))
	for i, k := range key {
		names[i] = cols[k].name
	}
	d.chunkNames[table] = names
	return func(a, b snapshot.Key) int {
		for i := range kinds {
			if i >= len(a) || i >= len(b) {
				return len(a) - len(b)
			}
			if c := compareValue(kinds[i], a[i], b[i]); c != 0 {
				return c
			}
		}
		return 0
	}, nil
}

func (d *dialect) Estimate(ctx context.Context, table string) (int64, error) {
	db, name := splitTable(table)
	row, _, err := queryRow(d.c, "SELECT COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+
		quoteString(db)+" AND TABLE_NAME = "+quoteString(name))
	if err != nil {
		return 0, err
	}
	n, _ := strconv.ParseInt(first(row), 10, 64)
	return n, nil
}

func (d *dialect) WriteMark(ctx context.Context, m snapshot.Mark) error {
	if d.marks != nil {
		return d.binlogMark(m)
	}
	_, err := d.c.Execute("INSERT INTO " + quoteTable(d.s.db, WatermarkTable) +
		" (source_id, kind, value, seq) VALUES (" + quoteString(d.s.cfg.ID) + ", 'mark', " + quoteString(m.String()) +
		", 1) ON DUPLICATE KEY UPDATE value = VALUES(value), seq = seq + 1")
	return err
}

func (d *dialect) ReadChunk(ctx context.Context, table string, after snapshot.Key, limit int) ([]snapshot.Row, error) {
	cmp := ""
	if after != nil {
		cmp = ">"
	}
	return d.readRows(table, cmp, after, limit)
}

// readRows reads up to limit rows of table in key order whose key compares
// with key by cmp (">" after a key, "=" one key, "" no condition), each
// encoded as ReadChunk describes.
func (d *dialect) readRows(table, cmp string, after snapshot.Key, limit int) ([]snapshot.Row, error) {
	db, name := splitTable(table)
	cols, key, index, implicit, err := d.s.snapshotKey(d.c, db, name)
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, nil // dropped meanwhile: the table finishes empty
	}
	kinds := d.kinds[table]
	if len(key) != len(kinds) {
		return nil, fmt.Errorf("the primary key of %s changed during its snapshot; re-snapshot it with: cdcrelay snapshot --config <file> --table %s", table, table)
	}
	query, err := selectRows(db, name, cols, key, kinds, cmp, after, limit)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	keyNames, kafka, err := d.kafkaKey(table, cols, key, index, implicit)
	if err != nil {
		return nil, err
	}
	// The binlog position and server id are set when the rows are sent.
	src := change.Source{Connector: "mysql", Name: d.s.cfg.ID, DB: db, Table: name, TsMs: time.Now().UnixMilli()}
	id := change.TableID{Namespace: db, Name: name}
	keys := change.ObjectKeys(names)
	keysLen := change.ObjectSize(keys)
	// The rows are streamed: go-mysql hands over each row in a buffer it
	// reuses, and the values are encoded from it into the slabs.
	a := d.alloc
	if a == nil {
		a = new(change.Alloc)
	}
	out := make([]snapshot.Row, 0, limit)
	var res gomysql.Result
	defer res.Close()
	err = d.c.ExecuteSelectStreaming(query, &res, func(vals []gomysql.FieldValue) error {
		if len(vals) != len(cols) {
			return fmt.Errorf("%d values for %d columns", len(vals), len(cols))
		}
		n := keysLen
		for i := range vals {
			n += 16 + len(vals[i].AsString())
		}
		values := a.Values.Slice(len(cols))
		var w change.ObjectWriter
		w.Open(a.Bytes.Grow(n))
		for i := range cols {
			m := w.Key(keys[i])
			if vals[i].Type == gomysql.FieldValueTypeNull {
				w.B = append(w.B, "null"...)
			} else {
				w.B = cols[i].enc(w.B, &vals[i])
			}
			values[i] = w.Value(m)
		}
		row := a.Rows.New()
		*row = change.Row{Names: names, Values: values, JSON: w.Close()}
		a.Bytes.Keep(w.B)
		sk := a.Strings.Slice(len(key))
		for i, k := range key {
			sk[i] = a.Text(values[k])
		}
		ev := a.Events.New()
		ev.Table, ev.Op, ev.Key, ev.After, ev.Source = id, change.OpRead, a.Key(keyNames, kafka, values), row, src
		out = append(out, snapshot.Row{Key: sk, Event: ev})
		return nil
	}, nil)
	if err != nil {
		if errorCode(err) == 1146 { // table dropped meanwhile
			return nil, nil
		}
		return nil, err
	}
	return out, nil
}

// selectRows returns the query of readRows: the columns of db.name, in key
// order, after or at the key as cmp says.
func selectRows(db, name string, cols []column, key []int, kinds []keyKind, cmp string, after snapshot.Key, limit int) (string, error) {
	var sb strings.Builder
	sb.WriteString("SELECT ")
	for i, c := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(quoteIdent(c.name))
	}
	sb.WriteString(" FROM " + quoteTable(db, name))
	order := make([]string, len(key))
	for i, k := range key {
		order[i] = orderExpr(kinds[i], cols[k].name)
	}
	if cmp != "" {
		lits := make([]string, len(key))
		for i := range key {
			var err error
			if lits[i], err = literal(kinds[i], after[i]); err != nil {
				return "", err
			}
		}
		sb.WriteString(" WHERE (" + strings.Join(order, ", ") + ") " + cmp + " (" + strings.Join(lits, ", ") + ")")
	}
	sb.WriteString(" ORDER BY " + strings.Join(order, ", ") + " LIMIT " + strconv.Itoa(limit))
	return sb.String(), nil
}

// kafkaKey returns the Kafka key of the snapshot's rows of table, as the
// stream keys the table: source.key_columns, the primary key, or the
// implicit one of a table without (see snapshotKey), else the whole row.
func (d *dialect) kafkaKey(table string, cols []column, key []int, index string, implicit []int) ([]string, []int, error) {
	db, name := splitTable(table)
	keyNames := d.s.cfg.Source.KeyColumnsFor(db, name)
	kafka := make([]int, len(keyNames))
	for i, n := range keyNames {
		if kafka[i] = slices.IndexFunc(cols, func(c column) bool { return c.name == n }); kafka[i] < 0 {
			return nil, nil, fatalf("mysql: source.key_columns: table %s has no column %q", table, n)
		}
	}
	if keyNames != nil {
		return keyNames, kafka, nil
	}
	switch {
	case index == "": // the primary key
		kafka = key
	case implicit != nil:
		kafka = implicit
	default: // the whole row
		kafka = make([]int, len(cols))
		for i := range cols {
			kafka[i] = i
		}
	}
	keyNames = make([]string, len(kafka))
	for i, k := range kafka {
		keyNames[i] = cols[k].name
	}
	return keyNames, kafka, nil
}
