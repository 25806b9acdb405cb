package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL writes a transaction's commit record to the WAL before the
// transaction becomes visible to new snapshots, and the gap can last as long
// as the committing backend waits for a CPU. A transaction X whose commit
// record precedes a chunk's low watermark is therefore not always visible to
// the chunk's read, although the read starts after that watermark
// committed. The stream drops X's changes to keys the snapshot has not
// reached, on the promise that the chunk sees them; were the chunk to miss
// X, X's change would be lost. awaitCommitsVisible makes this rare, not
// impossible, so the stream checks every chunk at its low watermark: by then
// it has decoded every transaction that committed before it, and the chunk
// knows which transactions its snapshot did not see (chunkVis). A chunk
// that missed one is dropped before its window opens and read again.
//
// The stream keeps, while a snapshot runs, the xids it decoded that no
// snapshot has yet been shown to see. Once one snapshot sees a committed
// transaction every later one does, so an xid leaves the set when a chunk's
// snapshot sees it, or a snapshot taken to keep the set small does. At the
// first check of a run the set holds the xids decoded since the run
// started: a transaction committed before the run's start position and
// still invisible at its first chunk read, a whole restart later, would not
// be noticed.

// maxUnseenXids is the size of the set past which the stream prunes it
// with a fresh snapshot.
const maxUnseenXids = 1 << 16

// chunkDialect returns the dialect for a chunk read that the stream will
// check at its low watermark.
func (r *runner) chunkDialect(d dialect) dialect {
	d.vis = &chunkVis{}
	if len(r.chunks.vis) >= 4 {
		r.chunks.vis = append(r.chunks.vis[:0], r.chunks.vis[len(r.chunks.vis)-3:]...)
	}
	r.chunks.vis = append(r.chunks.vis, d.vis)
	return d
}

// sawXid records a transaction the stream decoded, while a snapshot runs.
func (r *runner) sawXid(ctx context.Context, xid uint32) error {
	if !r.sn.Active() {
		clear(r.chunks.unseen)
		return nil
	}
	if r.chunks.unseen == nil {
		r.chunks.unseen = map[uint32]struct{}{}
	}
	r.chunks.unseen[xid] = struct{}{}
	if len(r.chunks.unseen) < maxUnseenXids {
		return nil
	}
	v, err := snapshotVis(ctx, r.sql)
	if err != nil {
		return r.sqlError(ctx, err)
	}
	for x := range r.chunks.unseen {
		if v.sees(x) {
			delete(r.chunks.unseen, x)
		}
	}
	return nil
}

// snapshotVis returns the xmax and in-progress list of the snapshot of the
// statement it runs, or, in a REPEATABLE READ transaction, of that
// transaction.
func snapshotVis(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (*chunkVis, error) {
	var xmax int64
	var xip []int64
	if err := q.QueryRow(ctx, `SELECT (pg_catalog.pg_snapshot_xmax(s)::text::numeric % 4294967296)::bigint,
	coalesce((SELECT array_agg((x::text::numeric % 4294967296)::bigint) FROM pg_catalog.pg_snapshot_xip(s) x), '{}')
FROM (SELECT pg_catalog.pg_current_snapshot() AS s) q`).Scan(&xmax, &xip); err != nil {
		return nil, fmt.Errorf("read the transactions a snapshot does not see: %w", err)
	}
	v := &chunkVis{xmax: uint32(xmax), xip: make([]uint32, len(xip))}
	for i, x := range xip {
		v.xip[i] = uint32(x)
	}
	return v, nil
}

// checkChunk runs at the low watermark id that has just opened the window
// of the chunk in flight (no read is running then). When the chunk's read
// missed a transaction that the stream decoded before this watermark, it
// drops the chunk: the window closes before any change entered it, and the
// next chunk read starts again from the same key.
func (r *runner) checkChunk(id string) {
	var v *chunkVis
	for _, c := range r.chunks.vis {
		if c.id == id {
			v = c
		}
	}
	clear(r.chunks.vis)
	r.chunks.vis = r.chunks.vis[:0]
	missed, found := uint32(0), false
	if v != nil {
		for x := range r.chunks.unseen {
			if v.sees(x) {
				delete(r.chunks.unseen, x)
			} else {
				missed, found = x, true
			}
		}
		if !found {
			return
		}
	}
	r.sn.Abandon()
	if v != nil && v.alloc != nil {
		v.alloc.Reset() // the dropped rows are nowhere else
		r.chunks.mem.Put(v.alloc)
	}
	if found {
		r.s.log.Info("postgres: snapshot chunk read again: a transaction committed before its low watermark was not yet visible to its read", "xid", missed)
	} else {
		r.s.log.Warn("postgres: snapshot chunk read again: nothing is known of its read", "mark", id)
	}
	r.s.chunkRereads.Add(1)
	r.s.m.SnapshotChunksReread.Inc()
}
