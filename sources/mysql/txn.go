package mysql

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
)

func uuidString(b []byte) string {
	if len(b) != 16 {
		return hex.EncodeToString(b)
	}
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// query handles a QUERY event: BEGIN opens a transaction, COMMIT ends a
// non-transactional one, anything else is a statement logged as text (DDL),
// which ends its own transaction.
func (r *reader) query(ctx context.Context, h *replication.EventHeader, e *replication.QueryEvent) error {
	q := string(e.Query)
	switch {
	case q == "BEGIN":
		r.inTxn = true
		r.began = true
		r.thread = e.SlaveProxyID
		return nil
	case q == "COMMIT" || q == "ROLLBACK":
		return r.commitTxn(ctx, h)
	case r.began:
		// SAVEPOINT, ROLLBACK TO SAVEPOINT and the like, inside the
		// transaction: not a boundary.
		return nil
	}
	if err := r.ddl(ctx, h, string(e.Schema), q); err != nil {
		return err
	}
	return r.commitTxn(ctx, h)
}

// commitTxn ends the transaction: the position moves past it, and a
// checkpoint follows when the transaction sent events or closed a snapshot
// chunk (never inside a snapshot window).
func (r *reader) commitTxn(ctx context.Context, h *replication.EventHeader) error {
	if r.gtid != "" {
		if r.flavor == flavorMariaDB {
			r.mpos.add(r.mgtid)
			r.st.GTID = r.mpos.String()
		} else if r.mset != nil {
			if err := r.mset.Update(r.gtid); err != nil {
				return fmt.Errorf("mysql: add GTID %s: %w", r.gtid, err)
			}
			r.st.GTID = r.mset.String()
		}
	}
	if h.LogPos > 0 {
		r.st.Pos = h.LogPos
	}
	r.inTxn = false
	r.began = false
	r.gtid = ""
	r.dirty = true
	commit := time.Unix(int64(r.txnTime), 0)
	if r.txnTime == 0 {
		commit = time.Unix(int64(h.Timestamp), 0)
	}
	if r.events > 0 {
		r.commit = commit
	}
	if r.snap != nil && r.snap.InWindow() {
		return nil
	}
	if r.events > 0 || r.force {
		return r.checkpoint(ctx, r.commit)
	}
	return nil
}

// tableMap records the codec of a captured table for the row events that
// follow. Codecs are shared between TABLE_MAP events with the same body, so
// a table version is analysed once.
func (r *reader) tableMap(raw []byte, tm *replication.TableMapEvent) error {
	db, tbl := string(tm.Schema), string(tm.Table)
	if !r.s.captured(db, tbl) {
		delete(r.byID, tm.TableID)
		return nil
	}
	// header (19) + table id (6) + flags (2)
	key := ""
	if len(raw) > 27 {
		key = string(raw[27:])
	}
	c := r.byBody[key]
	if c == nil {
		var lookupErr error
		textTypes := func() map[string]string {
			if r.flavor != flavorMariaDB {
				return nil
			}
			m, err := textTypedColumns(r.q, db, tbl)
			lookupErr = err
			return m
		}
		var err error
		c, err = newTableCodec(tm, r.s.isKeyless(db, tbl), textTypes)
		if lookupErr != nil {
			return r.s.classify(lookupErr)
		}
		if err != nil {
			return fatalf("%v", err)
		}
		if err := r.s.chooseKafkaKey(c); err != nil {
			return err
		}
		if c.shape, err = shapeOf(tm, c.keyNames); err != nil {
			return fatalf("%v", err)
		}
		if len(r.byBody) > 4096 {
			clear(r.byBody)
		}
		r.byBody[key] = c
	}
	r.byID[tm.TableID] = c
	r.observeShape(c)
	return nil
}

// rows turns a row event into change events.
func (r *reader) rows(ctx context.Context, h *replication.EventHeader, e *replication.RowsEvent) error {
	if e.Table != nil && string(e.Table.Schema) == r.s.db && string(e.Table.Table) == WatermarkTable {
		return r.watermark(ctx, e)
	}
	c := r.byID[e.TableID]
	if c == nil {
		return nil
	}
	src := change.Source{
		Connector: "mysql",
		Name:      r.s.cfg.ID,
		DB:        c.id.Namespace,
		Table:     c.id.Name,
		TsMs:      int64(h.Timestamp) * 1000,
		File:      r.st.File,
		Pos:       uint64(h.LogPos - h.EventSize),
		GTID:      r.gtid,
		ServerID:  h.ServerID,
		Thread:    r.thread,
	}
	if r.s.cfg.Source.IncludeQuery {
		src.Query = r.rowsQuery
	}
	if h.LogPos < h.EventSize {
		src.Pos = 0
	}
	pos := []byte(r.gtid)
	skipped := func(i int) []int {
		if i < len(e.SkippedColumns) {
			return e.SkippedColumns[i]
		}
		return nil
	}
	switch e.Type() {
	case replication.EnumRowsEventTypeInsert:
		for i, vals := range e.Rows {
			row, err := c.row(&r.alloc, vals, skipped(i))
			if err != nil {
				return fatalf("%v", err)
			}
			if err := r.emit(ctx, c, change.OpCreate, nil, row, src, pos); err != nil {
				return err
			}
		}
	case replication.EnumRowsEventTypeDelete:
		for i, vals := range e.Rows {
			row, err := c.row(&r.alloc, vals, skipped(i))
			if err != nil {
				return fatalf("%v", err)
			}
			if err := r.emit(ctx, c, change.OpDelete, row, nil, src, pos); err != nil {
				return err
			}
		}
	case replication.EnumRowsEventTypeUpdate:
		for i := 0; i+1 < len(e.Rows); i += 2 {
			before, err := c.row(&r.alloc, e.Rows[i], skipped(i))
			if err != nil {
				return fatalf("%v", err)
			}
			after, err := c.row(&r.alloc, e.Rows[i+1], skipped(i+1))
			if err != nil {
				return fatalf("%v", err)
			}
			if err := r.update(ctx, c, before, after, src, pos); err != nil {
				return err
			}
		}
	}
	return nil
}

// update sends an update, or a delete and a create when the primary key
// changed, so that each key's topic history stays correct under compaction.
func (r *reader) update(ctx context.Context, c *tableCodec, before, after *change.Row, src change.Source, pos []byte) error {
	if (!c.keyless || c.chosen) && !c.sameKey(before, after) {
		if err := r.emit(ctx, c, change.OpDelete, before, nil, src, pos); err != nil {
			return err
		}
		return r.emit(ctx, c, change.OpCreate, nil, after, src, pos)
	}
	return r.emit(ctx, c, change.OpUpdate, before, after, src, pos)
}

func (r *reader) emit(ctx context.Context, c *tableCodec, op change.Op, before, after *change.Row, src change.Source, pos []byte) error {
	row := after
	if row == nil {
		row = before
	}
	if ok, err := r.admit(c, row); !ok {
		return err
	}
	r.events++
	r.txnRows++
	if r.skip > 0 {
		r.skip-- // sent before the stream was lost
		return nil
	}
	ev := r.alloc.Events.New()
	*ev = change.Event{Table: c.id, Op: op, Key: c.keyOf(&r.alloc, row), Before: before, After: after, Source: src, Position: pos}
	return r.send(ctx, change.Message{Event: ev})
}

// fatalf builds a fatal error: the stream holds data that this build
// cannot decode, and retrying would read it again.
func fatalf(format string, args ...any) error {
	return sources.Fatal(fmt.Errorf(format, args...))
}
