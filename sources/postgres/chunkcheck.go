package postgres

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
// The stream keeps the xids it decoded since the low watermark before the
// last one checked. That is enough: if X committed before that earlier
// watermark, the chunk checked there was read earlier still, so it did not
// see X either, and its own check dropped it. At the first check of a run
// the xids decoded since the run started stand in for those: a transaction
// committed before the run's start position and still invisible by its
// first chunk read, a whole restart later, would not be noticed.

// maxSeenXids bounds the xids kept between two checked low watermarks. Past
// it the next chunk is read again rather than checked.
const maxSeenXids = 1 << 16

// chunkDialect returns the dialect for a chunk read that the stream will
// check at its low watermark.
func (r *runner) chunkDialect(d dialect) dialect {
	d.vis = &chunkVis{}
	if len(r.vis) >= 4 {
		r.vis = append(r.vis[:0], r.vis[len(r.vis)-3:]...)
	}
	r.vis = append(r.vis, d.vis)
	return d
}

// sawXid records a transaction the stream decoded, while a snapshot runs.
func (r *runner) sawXid(xid uint32) {
	if !r.sn.Active() {
		if len(r.seen)+len(r.seenPrev) > 0 || r.seenFull {
			clear(r.seen)
			clear(r.seenPrev)
			r.seenFull = false
		}
		return
	}
	if len(r.seen) >= maxSeenXids {
		r.seenFull = true
		return
	}
	if r.seen == nil {
		r.seen = map[uint32]struct{}{}
		r.seenPrev = map[uint32]struct{}{}
	}
	r.seen[xid] = struct{}{}
}

// checkChunk runs at the low watermark id that has just opened the window
// of the chunk in flight (no read is running then). When the chunk's read
// missed a transaction that the stream decoded before this watermark, it
// drops the chunk: the window closes before any change entered it, and the
// next chunk read starts again from the same key.
func (r *runner) checkChunk(id string) {
	var v *chunkVis
	for _, c := range r.vis {
		if c.id == id {
			v = c
		}
	}
	clear(r.vis)
	r.vis = r.vis[:0]
	missed, full := uint32(0), r.seenFull
	found := false
	if v != nil && !full {
	check:
		for _, m := range []map[uint32]struct{}{r.seen, r.seenPrev} {
			for x := range m {
				if !v.sees(x) {
					missed, found = x, true
					break check
				}
			}
		}
	}
	r.seen, r.seenPrev = r.seenPrev, r.seen
	clear(r.seen)
	r.seenFull = false
	if v != nil && !found && !full {
		return
	}
	r.sn.Abandon()
	if v != nil && v.alloc != nil {
		v.alloc.Reset() // the dropped rows are nowhere else
		r.chunkMem.Put(v.alloc)
	}
	switch {
	case found:
		r.s.log.Info("postgres: snapshot chunk read again: a transaction committed before its low watermark was not yet visible to its read", "xid", missed)
	case full:
		r.s.log.Info("postgres: snapshot chunk read again: too many transactions since the last one to check it against", "xids", maxSeenXids)
	default:
		r.s.log.Warn("postgres: snapshot chunk read again: nothing is known of its read", "mark", id)
	}
	r.s.chunkRereads.Add(1)
}
