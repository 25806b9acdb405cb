package postgres

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
)

// A table without a primary key or a unique index on NOT NULL columns (a
// source.keyless table under REPLICA IDENTITY FULL) has no key for the
// chunk window rules: pgoutput sends no ctid with a change, so a change
// cannot be placed inside or outside a range of rows. Such a table is read
// whole, in ctid ranges, under one snapshot exported by a temporary slot,
// and its rows are sent at the point of the stream where that snapshot
// stands:
//
//  1. While the table is queued, its streamed changes are dropped: the
//     snapshot, taken later, holds their effect.
//  2. When it is the next table and no chunk is in flight, a temporary slot
//     is created with EXPORT_SNAPSHOT; its consistent point C splits the
//     stream: a transaction that commits before C is in the snapshot, one at
//     or after C is not. A second connection imports the snapshot in a
//     REPEATABLE READ transaction, and the slot goes away.
//  3. At the first transaction of the stream whose commit LSN is at or after
//     C (a heartbeat message written after the slot guarantees one), before
//     its changes, the table is read in ranges of blocks (a TID range scan)
//     and every row is sent as op=r; the snapshot queue marks it done. From
//     then on its changes are sent.
//
// The rows and the progress that marks the table done reach Kafka in the
// Kafka transaction of that source transaction: there is no checkpoint in
// between, so a crash before its commit leaves the table queued, and the
// next run takes a new snapshot at a new point; nothing is sent twice and
// nothing is lost. The price: the whole table goes into one Kafka
// transaction, which must fit in kafka.transaction_timeout, and the temporary
// slot needs a free replication slot and waits for the transactions running
// when it is created.

// ctidRead is the read of a table by ctid ranges, between steps 2 and 3.
type ctidRead struct {
	table *tableMeta
	point uint64    // the snapshot's consistent point C
	conn  *pgx.Conn // in the REPEATABLE READ transaction holding the snapshot
}

// ctidMode reports whether t is read whole by ctid ranges rather than in
// key chunks.
func (t *tableMeta) ctidMode() bool { return len(t.chunk) == 0 && t.keyless }

// startCtid takes the exported snapshot for t (step 2).
func (r *runner) startCtid(ctx context.Context, t *tableMeta) error {
	s := r.s
	rc, err := s.connectReplication(ctx)
	if err != nil {
		return err
	}
	defer rc.Close(context.Background())
	name := s.slot
	if len(name) > 58 {
		name = name[:58]
	}
	name += "_ctid"
	res, err := pglogrepl.CreateReplicationSlot(ctx, rc, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return classify(fmt.Errorf("postgres: create temporary slot %s to snapshot %s: %w", name, t.ident, err))
	}
	point, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fmt.Errorf("postgres: temporary slot %s: consistent point %q: %w", name, res.ConsistentPoint, err)
	}
	conn, err := s.connectSQL(ctx)
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err == nil {
		_, err = conn.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(res.SnapshotName, "'", "''")+"'")
	}
	if err != nil {
		conn.Close(context.Background())
		return r.sqlError(ctx, fmt.Errorf("import the snapshot of temporary slot %s: %w", name, err))
	}
	r.ctid = &ctidRead{table: t, point: uint64(point), conn: conn}
	s.log.Info("postgres: table without a unique key is read whole by ctid ranges at a snapshot point", "table", t.ident, "at", point.String())
	// Make sure the stream reaches the point even when the database is idle.
	if _, err := r.sql.Exec(ctx, "SELECT pg_logical_emit_message(true, $1, $2)", prefixHeartbeat, s.slot); err != nil {
		return r.sqlError(ctx, err)
	}
	return nil
}

// closeCtid ends the read's transaction and connection.
func (r *runner) closeCtid() {
	if r.ctid == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.ctid.conn.Close(ctx)
	r.ctid = nil
}

// sendCtid reads the table whole and sends its rows (step 3), at the start
// of the source transaction whose commit LSN is lsn.
func (r *runner) sendCtid(ctx context.Context, lsn uint64) error {
	c := r.ctid
	t := c.table
	defer r.closeCtid()
	// The lock of the first statement keeps VACUUM from cutting the table
	// short while it is read, so every row of the snapshot lies below the
	// size read next.
	var pages, tuples float64
	if err := c.conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM (SELECT 1 FROM `+t.ident+` LIMIT 0) x),
		(pg_catalog.pg_relation_size($1::oid) / current_setting('block_size')::int)::float8, greatest(c.reltuples, 0)::float8
		FROM pg_catalog.pg_class c WHERE c.oid = $1`, t.oid).Scan(new(int64), &pages, &tuples); err != nil {
		return r.sqlError(ctx, fmt.Errorf("size of %s: %w", t.ident, err))
	}
	// Blocks per range, so that a range holds about a chunk of rows.
	step := int64(1)
	if pages > 0 && tuples > 0 {
		step = max(1, int64(math.Ceil(float64(r.s.chunkSize)/(tuples/pages))))
	}
	var cols []string
	for _, col := range t.cols {
		cols = append(cols, pgx.Identifier{col.name}.Sanitize())
	}
	query := "SELECT " + strings.Join(cols, ", ") + " FROM " + t.ident + " WHERE ctid >= $1::tid AND ctid < $2::tid"
	d := dialect{r: r, conn: c.conn, table: t}
	var rows int64
	var last *change.Event // held back to be marked the table's last row
	for b := int64(0); b < int64(pages); b += step {
		d.alloc = new(change.Alloc) // dropped once the relay has encoded the rows
		from, to := "("+strconv.FormatInt(b, 10)+",0)", "("+strconv.FormatInt(b+step, 10)+",0)"
		read, err := d.scan(ctx, t, query, [][]byte{[]byte(from), []byte(to)}, nil, r.s.chunkSize)
		if err != nil {
			return r.sqlError(ctx, fmt.Errorf("snapshot of %s by ctid: %w", t.ident, err))
		}
		evs := make([]*change.Event, 0, len(read)+1)
		if last != nil {
			evs = append(evs, last)
			last = nil
		}
		for _, row := range read {
			ev := row.Event
			ev.Source.Snapshot = change.SnapshotTrue
			ev.Source.LSN, ev.Source.TxID = lsn, r.txn.xid
			evs = append(evs, ev)
		}
		if n := len(evs); n > 0 {
			last = evs[n-1]
			evs = evs[:n-1]
		}
		rows += int64(len(read))
		if err := change.SendRuns(evs, func(m change.Message) error { return r.send(ctx, m) }); err != nil {
			return err
		}
		if err := r.keepAlive(); err != nil {
			return err
		}
	}
	if last != nil {
		last.Source.Snapshot = change.SnapshotLast
		if err := r.send(ctx, change.Message{Event: last}); err != nil {
			return err
		}
	}
	if err := r.sn.Complete(t.ident, rows); err != nil {
		return sources.Fatal(fmt.Errorf("postgres: %w", err))
	}
	r.txn.events += int(rows)
	r.txn.notable = true
	return nil
}

// keepAlive sends a standby status update when one is due, for long work
// that does not read the stream.
func (r *runner) keepAlive() error {
	if !time.Now().Before(r.clock.nextStatus) {
		r.clock.nextStatus = time.Now().Add(statusInterval)
		return r.sendStatus()
	}
	return nil
}
