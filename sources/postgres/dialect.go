package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// dialect is the PostgreSQL side of the snapshot machinery. It runs on the
// runner's SQL connection, between reads of the replication stream, or, for
// a chunk read ahead, on a connection of its own with the table's metadata
// taken beforehand, so that it shares nothing with the stream goroutine.
type dialect struct {
	r     *runner
	conn  *pgx.Conn     // nil: r.sql
	table *tableMeta    // nil: look the table up in r.tables
	alloc *change.Alloc // where ReadChunk builds the rows; nil: a new one
	vis   *chunkVis     // filled by WriteMark and ReadChunk; nil: not kept
}

// chunkVis is what the stream checks at a chunk's low watermark (see
// runner.checkChunk): the watermark's id, and the transactions that the
// snapshot the chunk was read with does not see although they may have
// started before it: those in its in-progress list, and every xid from its
// xmax on (xmax is one past the newest xid that had finished, not past the
// newest assigned). Xids are the 32-bit ones pgoutput sends.
type chunkVis struct {
	id    string
	xmax  uint32
	xip   []uint32
	alloc *change.Alloc
}

// sees reports whether the snapshot of v sees the committed transaction
// xid.
func (v *chunkVis) sees(xid uint32) bool {
	if int32(xid-v.xmax) >= 0 {
		return false
	}
	return !slices.Contains(v.xip, xid)
}

// chunkSnapshot, when set by a test, returns the id of an exported
// snapshot for the next chunk read to use instead of a fresh one, or "".
var chunkSnapshot func() string

// Memory returns the memory ReadChunk builds the rows in, for the runner to
// reuse once they are committed (see snapshot.ChunkMemory).
func (d dialect) Memory() any {
	if d.alloc == nil {
		return nil
	}
	return d.alloc
}

func (d dialect) sql() *pgx.Conn {
	if d.conn != nil {
		return d.conn
	}
	return d.r.sql
}

func (d dialect) meta(table string) *tableMeta {
	if d.table != nil {
		if d.table.ident == table {
			return d.table
		}
		return nil
	}
	return d.r.tables[table]
}

func (d dialect) Estimate(ctx context.Context, table string) (int64, error) {
	t := d.meta(table)
	if t == nil {
		return 0, fmt.Errorf("unknown table %s", table)
	}
	var n float64
	if err := d.sql().QueryRow(ctx, "SELECT reltuples FROM pg_catalog.pg_class WHERE oid = $1", t.oid).Scan(&n); err != nil {
		return 0, err
	}
	if n < 0 {
		n = 0 // never analyzed
	}
	return int64(n), nil
}

// WriteMark writes the watermark as a transactional logical message, so it
// reaches the stream in commit order.
func (d dialect) WriteMark(ctx context.Context, m snapshot.Mark) error {
	_, err := d.sql().Exec(ctx, "SELECT pg_logical_emit_message(true, $1, $2)", prefixWatermark, m.String())
	if err == nil && m.Kind == snapshot.Low && d.vis != nil {
		d.vis.id = m.ID
	}
	return err
}

// ReadChunk reads with text-format parameters and results, so the values are
// exactly the text pgoutput sends for the same rows and go through the same
// encoders. The exception is the non-key columns of types with a binary
// reader (resultFormats), which are turned back into that text before they
// are encoded. String key columns are compared and ordered with COLLATE "C",
// which is the byte order the Go comparator uses.
func (d dialect) ReadChunk(ctx context.Context, table string, after snapshot.Key, limit int) ([]snapshot.Row, error) {
	t := d.meta(table)
	if t == nil {
		return nil, fmt.Errorf("unknown table %s", table)
	}
	if err := d.awaitCommitsVisible(ctx); err != nil {
		return nil, err
	}
	cmp := ""
	if after != nil {
		cmp = ">"
	}
	// One snapshot for the rows and the list of transactions it does not
	// see, which the stream checks at the low watermark.
	tx, err := d.sql().BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background())
	if chunkSnapshot != nil {
		if id := chunkSnapshot(); id != "" {
			if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(id, "'", "''")+"'"); err != nil {
				return nil, err
			}
		}
	}
	vis, err := snapshotVis(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("postgres: snapshot of a chunk: %w", err)
	}
	rows, err := d.readRows(ctx, t, cmp, after, limit)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	if d.vis != nil {
		d.vis.xmax, d.vis.xip, d.vis.alloc = vis.xmax, vis.xip, d.alloc
	}
	return rows, nil
}

// readRows runs chunkQuery with key cmp key (no condition when cmp is "")
// and encodes the rows as ReadChunk describes.
func (d dialect) readRows(ctx context.Context, t *tableMeta, cmp string, key snapshot.Key, limit int) ([]snapshot.Row, error) {
	sql, keyIdx := chunkQuery(t, cmp, limit)
	params := make([][]byte, len(key))
	for i, v := range key {
		params[i] = []byte(v)
	}
	return d.scan(ctx, t, sql, params, keyIdx, limit)
}

// scan runs sql and builds an op=r event of each row it returns, in d's
// memory; keyIdx are the columns whose text is the snapshot key of a row
// (none for a read by ctid ranges).
func (d dialect) scan(ctx context.Context, t *tableMeta, sql string, params [][]byte, keyIdx []int, limit int) ([]snapshot.Row, error) {
	formats := resultFormats(t, keyIdx)
	rr := d.sql().PgConn().ExecParams(ctx, sql, params, nil, nil, formats)
	// The Kafka key: source.key_columns, the primary key, or for a keyless
	// table the whole row, as the stream keys it.
	keyNames := t.kafkaKey()
	kafkaIdx := make([]int, 0, len(t.names))
	for _, n := range keyNames {
		kafkaIdx = append(kafkaIdx, slices.Index(t.names, n))
	}
	if len(keyNames) == 0 {
		keyNames = t.names
		for i := range t.names {
			kafkaIdx = append(kafkaIdx, i)
		}
	}
	keysLen := change.ObjectSize(t.keys)
	id := t.id()
	src := change.Source{
		Connector: "postgresql", Name: d.r.s.id, DB: d.r.db, Schema: t.schema, Table: t.name, TsMs: time.Now().UnixMilli(),
	}
	a := d.alloc
	if a == nil {
		a = new(change.Alloc)
	}
	rows := make([]snapshot.Row, 0, limit)
	var text []byte // a binary value's text
	for rr.NextRow() {
		vals := rr.Values()
		rv := a.Values.Slice(len(vals))
		n := keysLen
		for i, v := range vals {
			n += len(v) + 8
			if formats != nil && formats[i] == binaryFormat {
				n += maxBinaryText
			}
		}
		var w change.ObjectWriter
		w.Open(a.Bytes.Grow(n))
		for i, v := range vals {
			m := w.Key(t.keys[i])
			if v == nil {
				w.B = append(w.B, "null"...)
				rv[i] = change.Null
				continue
			}
			if formats != nil && formats[i] == binaryFormat {
				var ok bool
				if text, ok = t.cols[i].typ.binary(text[:0], v); !ok {
					rr.Close()
					return nil, fmt.Errorf("postgres: snapshot of %s: column %s: unexpected binary value of %d bytes", t.ident, t.cols[i].name, len(v))
				}
				v = text
			}
			if err := t.checkDims(i, v); err != nil && d.r.s.rules.Keeps(id, t.cols[i].name) {
				rr.Close()
				return nil, err
			}
			w.B = t.cols[i].typ.enc(w.B, v)
			rv[i] = w.Value(m)
		}
		row := a.Rows.New()
		*row = change.Row{Names: t.names, Values: rv, JSON: w.Close()}
		a.Bytes.Keep(w.B)
		var key snapshot.Key
		if len(keyIdx) > 0 {
			key = a.Strings.Slice(len(keyIdx))
			for i, k := range keyIdx {
				key[i] = a.Text(vals[k])
			}
		}
		ev := a.Events.New()
		ev.Table, ev.Op, ev.Key, ev.After, ev.Source = id, change.OpRead, a.Key(keyNames, kafkaIdx, rv), row, src
		rows = append(rows, snapshot.Row{Key: key, Event: ev})
	}
	if _, err := rr.Close(); err != nil {
		return nil, err
	}
	return rows, nil
}

// binaryFormat is the protocol's format code for binary values, and
// maxBinaryText a bound on the text a binary reader makes of one value
// ("4714-11-24 00:00:00.000001+00 BC" is 32 bytes, the longest).
const (
	binaryFormat  = 1
	maxBinaryText = 40
)

// resultFormats returns the chunk query's result format codes: binary for
// the columns whose type has a binary reader, except the key columns, whose
// text becomes the snapshot's key and the next chunk's parameters. It is nil
// when every column is read as text.
func resultFormats(t *tableMeta, keyIdx []int) []int16 {
	var formats []int16
	for i, c := range t.cols {
		if c.typ.binary == nil || slices.Contains(keyIdx, i) {
			continue
		}
		if formats == nil {
			formats = make([]int16, len(t.cols))
		}
		formats[i] = binaryFormat
	}
	return formats
}

// visibilityGrace is how long a chunk read waits for transactions that are
// still in progress when it starts, in case one of them has already written
// its commit record but is not yet visible.
const visibilityGrace = 10 * time.Millisecond

// awaitCommitsVisible runs after the low watermark committed and before the
// chunk is read. PostgreSQL writes a transaction's commit record to the WAL
// a moment before the transaction becomes visible to new snapshots. A
// transaction whose commit precedes the low watermark in the stream is
// handled as "before the window": its change is dropped for keys the
// snapshot has not reached, on the promise that the chunk read sees it. So
// the chunk should not be read while such a transaction is still invisible:
// wait until no transaction in the current snapshot's in-progress list has
// committed (committed but not yet visible), and give the ones still marked
// in progress a short grace to finish their commit. This only makes a miss
// rare: a backend can stay between its commit record and its commit status
// for longer than any grace when it waits for a CPU, and a transaction
// newer than every finished one is not in the list at all. The stream's
// check at the low watermark (chunkcheck.go) catches the chunks that still
// missed one, and has them read again.
func (d dialect) awaitCommitsVisible(ctx context.Context) error {
	start := time.Now()
	for {
		var committed, running int
		err := d.sql().QueryRow(ctx, `SELECT count(*) FILTER (WHERE s = 'committed'), count(*) FILTER (WHERE s = 'in progress')
FROM (SELECT pg_catalog.pg_xact_status(x) AS s FROM pg_catalog.pg_snapshot_xip(pg_catalog.pg_current_snapshot()) x) q`).Scan(&committed, &running)
		if err != nil {
			return fmt.Errorf("postgres: check transaction visibility before a chunk: %w", err)
		}
		waited := time.Since(start)
		if committed == 0 && (running == 0 || waited >= visibilityGrace) {
			return nil
		}
		if waited > 5*time.Second {
			return fmt.Errorf("postgres: %d committed transactions stayed invisible for %s", committed, waited.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// chunkQuery builds SELECT cols FROM t [WHERE (keys) cmp ($1..)] ORDER BY
// keys LIMIT n over the snapshot key (t.chunk), and returns the indexes of
// its columns in t.cols. cmp is ">" for the chunk after a key, "=" for one
// key, "" for the first chunk.
func chunkQuery(t *tableMeta, cmp string, limit int) (string, []int) {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range t.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pgx.Identifier{c.name}.Sanitize())
	}
	b.WriteString(" FROM ")
	b.WriteString(t.ident)
	keyIdx := make([]int, len(t.chunk))
	keyExpr := make([]string, len(t.chunk))
	for i, k := range t.chunk {
		for j, c := range t.cols {
			if c.name == k {
				keyIdx[i] = j
				keyExpr[i] = pgx.Identifier{k}.Sanitize()
				if c.typ.text {
					keyExpr[i] += ` COLLATE "C"`
				}
			}
		}
	}
	if cmp != "" {
		b.WriteString(" WHERE (")
		b.WriteString(strings.Join(keyExpr, ", "))
		b.WriteString(") " + cmp + " (")
		for i := range keyExpr {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("$" + strconv.Itoa(i+1))
		}
		b.WriteString(")")
	}
	b.WriteString(" ORDER BY ")
	b.WriteString(strings.Join(keyExpr, ", "))
	b.WriteString(" LIMIT ")
	b.WriteString(strconv.Itoa(limit))
	return b.String(), keyIdx
}

// RequestSnapshot asks the running relay to snapshot table again, while it
// keeps streaming. table is schema.table (quoted parts allowed). The request
// travels as a transactional logical message, so the relay acts on it in
// stream order and a crash cannot lose it once it is committed.
func (s *Source) RequestSnapshot(ctx context.Context, table string) error {
	p, err := parsePattern(table)
	if err != nil || p.all {
		return fmt.Errorf("postgres: snapshot request: %q is not schema.table", table)
	}
	if !s.captured(p.schema, p.table) {
		return fmt.Errorf("postgres: snapshot request: %s is not in source.tables", p)
	}
	conn, err := s.connectSQL(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	body, _ := json.Marshal(signal{Slot: s.slot, Table: p.String()})
	if _, err := conn.Exec(ctx, "SELECT pg_logical_emit_message(true, $1, $2::text)", prefixSignal, string(body)); err != nil {
		return fmt.Errorf("postgres: write snapshot request: %w", err)
	}
	return nil
}
