package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/sources"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// This file turns the decoded pgoutput messages of a Run into events and
// checkpoints: transaction boundaries, relations, row changes, truncates
// and the relay's own logical messages.

// relation is a table as the stream describes it, with its encoders.
type relation struct {
	schema, name string
	ident        string
	captured     bool
	identity     byte
	names        []string // shared by every Row of this relation version
	keys         [][]byte // names as JSON object keys (change.ObjectKeys)
	encs         []encoder
	key          []int    // indexes of the key columns
	keyNames     []string // names of the key columns
	keyless      bool
	// kafka and kafkaNames are the Kafka key (source.key_columns, else the
	// key columns); chunk is the snapshot key (the primary key, or a unique
	// index of a keyless table), nil when the table is not snapshotted.
	kafka      []int
	kafkaNames []string
	chunk      []int
	arrays     bool // the table has array columns (arraydims.go)
}

// handle decodes one pgoutput message.
func (r *runner) handle(ctx context.Context, walStart pglogrepl.LSN, data []byte) error {
	m := &r.msg
	if err := m.parse(data); err != nil {
		return sources.Fatal(fmt.Errorf("postgres: decode message at %s: %w", walStart, err))
	}
	switch m.kind {
	case 'B':
		r.txn = txn{
			open:       true,
			skip:       r.st.lsn != 0 && m.lsn < uint64(r.st.lsn),
			xid:        m.xid,
			commitTime: pgTime(m.time),
			label:      []byte(pglogrepl.LSN(m.lsn).String()),
		}
		if err := r.sawXid(ctx, m.xid); err != nil {
			return err
		}
		if r.ctid != nil && !r.txn.skip && m.lsn >= r.ctid.point {
			return r.sendCtid(ctx, m.lsn)
		}
	case 'C':
		r.txn.open = false
		// A checkpoint acked at or after this commit came after the rows
		// of the chunks sent so far.
		r.chunks.mem.Passed(m.endLSN)
		if r.txn.skip {
			return nil
		}
		return r.commit(ctx, pglogrepl.LSN(m.endLSN), pgTime(m.time))
	case 'R':
		return r.relation(ctx, &m.rel)
	case 'I', 'U', 'D':
		if r.txn.skip {
			return nil
		}
		return r.change(ctx, walStart)
	case 'T':
		if r.txn.skip {
			return nil
		}
		for _, id := range m.relIDs {
			if rel := r.rels[id]; rel != nil && rel.captured {
				if err := r.truncated(ctx, rel, walStart); err != nil {
					return err
				}
			}
		}
	case 'M':
		if !m.transactional || r.txn.skip {
			return nil
		}
		return r.message(ctx)
	}
	return nil
}

// truncated handles a TRUNCATE of a captured table as format.truncate
// says: skip it (a warning and a count), send a truncate event, or stop
// before it. A chunk of the table whose window is open drops its rows in
// every case: they no longer exist.
func (r *runner) truncated(ctx context.Context, rel *relation, walStart pglogrepl.LSN) error {
	r.sn.Truncated(rel.ident)
	switch r.s.truncate {
	case config.TruncateFail:
		return sources.Fatal(fmt.Errorf("postgres: TRUNCATE of %s at %s, and format.truncate is fail; the position stays before it. Set format.truncate to skip or event to pass it, or re-sync the table afterwards", rel.ident, walStart))
	case config.TruncateEvent:
		r.txn.events++
		ev := change.Event{
			Table: change.TableID{Namespace: rel.schema, Name: rel.name},
			Op:    change.OpTruncate,
			Source: change.Source{Connector: "postgresql", Name: r.s.id, DB: r.db, Schema: rel.schema, Table: rel.name,
				TsMs: r.txn.commitTime.UnixMilli(), LSN: uint64(walStart), TxID: r.txn.xid},
			Position: r.txn.label,
		}
		return r.send(ctx, change.Message{Event: r.alloc.Event(ev)})
	}
	r.s.m.TruncatesSkipped.WithLabelValues(r.s.m.Table(change.TableID{Namespace: rel.schema, Name: rel.name}.String())).Inc()
	r.s.log.Warn("postgres: TRUNCATE not sent to Kafka (format.truncate: skip); consumers keep the table's rows", "table", rel.ident, "lsn", walStart.String())
	return nil
}

// commit ends a source transaction, sending its checkpoint when one is due.
func (r *runner) commit(ctx context.Context, end pglogrepl.LSN, at time.Time) error {
	if r.sn.InWindow() {
		return nil // the chunk's high watermark checkpoints everything
	}
	if r.txn.quiet() && time.Since(r.clock.lastCkpt) < r.clock.idleEvery {
		return nil
	}
	r.st.lsn = end
	var parts []change.Part
	r.st.Snapshot, parts = r.sn.Checkpoint()
	r.st.Schemas = r.schemas.JSON()
	cp := &change.Checkpoint{
		Parts:             parts,
		State:             r.st.encode(),
		SchemaFingerprint: r.schemas.Fingerprint(),
		CommitTime:        at,
		Label:             end.String(),
		LSN:               uint64(end),
	}
	if r.txn.quiet() {
		cp.CommitTime = time.Time{}
	}
	r.clock.lastCkpt = time.Now()
	return r.send(ctx, change.Message{Checkpoint: cp})
}

// message handles our own pg_logical_emit_message records.
func (r *runner) message(ctx context.Context) error {
	m := &r.msg
	switch m.prefix {
	case prefixHeartbeat:
		if string(m.content) == r.s.slot {
			r.txn.notable = true
		}
	case prefixWatermark:
		mark, ok := snapshot.ParseMark(string(m.content))
		if !ok {
			return nil
		}
		opened := r.sn.InWindow()
		rows, closed, err := r.sn.OnMark(mark)
		if err != nil {
			return r.sqlError(ctx, err)
		}
		if mark.Kind == snapshot.Low && !opened && r.sn.InWindow() {
			r.checkChunk(mark.ID)
		}
		if !closed {
			return nil
		}
		r.txn.notable = true
		r.prefetch(ctx)
		for _, ev := range rows {
			ev.Source.LSN = m.lsn
			ev.Source.TxID = r.txn.xid
		}
		if err := change.SendRuns(rows, func(m change.Message) error { return r.send(ctx, m) }); err != nil {
			return err
		}
		r.chunks.mem.Sent(r.sn.ClosedMemory())
	case prefixSignal:
		var sig signal
		if err := json.Unmarshal(m.content, &sig); err != nil || sig.Slot != r.s.slot {
			return nil
		}
		t, ok := r.tables[sig.Table]
		if !ok {
			r.s.log.Warn("postgres: snapshot request ignored: not a captured table", "table", sig.Table)
			return nil
		}
		if len(t.chunk) == 0 && !t.ctidMode() {
			r.s.log.Warn("postgres: snapshot request ignored", "table", sig.Table, "err", t.snapshotRefusal())
			return nil
		}
		if err := r.sn.Enqueue(sig.Table); err != nil {
			r.s.log.Warn("postgres: snapshot request ignored", "table", sig.Table, "err", err)
			return nil
		}
		r.s.log.Info("postgres: snapshot requested", "table", sig.Table)
		r.txn.notable = true
	}
	return nil
}

// signal is the content of a cdcrelay.signal message.
type signal struct {
	Slot  string `json:"slot"`
	Table string `json:"snapshot_table"`
}

// relation records a Relation message: a table's columns as of now in the
// stream.
func (r *runner) relation(ctx context.Context, m *relationMsg) error {
	rel := &relation{
		schema:   m.namespace,
		name:     m.name,
		ident:    pgx.Identifier{m.namespace, m.name}.Sanitize(),
		identity: m.identity,
	}
	rel.captured = r.s.captured(m.namespace, m.name)
	r.rels[m.id] = rel
	if !rel.captured {
		return nil
	}
	rel.names = make([]string, len(m.cols))
	rel.encs = make([]encoder, len(m.cols))
	for i, c := range m.cols {
		rel.names[i] = c.name
		ct, err := resolveType(c.oid, c.typmod, r.types)
		if err != nil {
			return r.sqlError(ctx, err)
		}
		rel.encs[i] = ct.enc
	}
	rel.keys = change.ObjectKeys(rel.names)
	t := r.tables[rel.ident]
	if t == nil || !sameColumns(t, m) {
		// A table created or altered since Run started: read it again.
		nt := &tableMeta{oid: m.id, schema: m.namespace, name: m.name, ident: rel.ident, identity: m.identity,
			keyless: r.s.isKeyless(m.namespace, m.name), kafka: r.s.keyColumns(m.namespace, m.name)}
		if err := loadColumns(ctx, r.sql, nt, r.types); err != nil {
			return r.sqlError(ctx, err)
		}
		if err := nt.checkKafkaKey(); err != nil {
			return sources.Fatal(fmt.Errorf("postgres: %w", err))
		}
		if t == nil && r.s.snapshot && len(nt.chunk) == 0 && !nt.ctidMode() && !r.sn.Known(nt.ident) {
			r.s.log.Warn("postgres: new captured table is streamed but not snapshotted", "table", nt.ident, "err", nt.snapshotRefusal())
		}
		if t == nil && r.s.snapshot && (len(nt.chunk) > 0 || nt.ctidMode()) && !r.sn.Known(nt.ident) {
			r.tables[rel.ident] = nt
			if err := r.sn.Enqueue(nt.ident); err != nil {
				return sources.Fatal(fmt.Errorf("postgres: %w", err))
			}
			r.s.log.Info("postgres: new captured table, snapshot queued", "table", nt.ident)
		}
		r.tables[rel.ident] = nt
		t = nt
	}
	for _, k := range t.key {
		for i, n := range rel.names {
			if n == k {
				rel.key = append(rel.key, i)
				rel.keyNames = append(rel.keyNames, n)
			}
		}
	}
	if len(rel.key) == 0 {
		rel.keyless = true
		if !t.keyless {
			r.s.log.Warn("postgres: captured table has no primary key; events are keyed by the whole row", "table", rel.ident)
		}
		for i, n := range rel.names {
			rel.key = append(rel.key, i)
			rel.keyNames = append(rel.keyNames, n)
		}
	}
	r.warnIdentity(rel, t)
	rel.kafka, rel.kafkaNames = rel.key, rel.keyNames
	if t.kafka != nil {
		rel.kafka, rel.kafkaNames = nil, nil
		for _, k := range t.kafka {
			i := slices.Index(rel.names, k)
			if i < 0 {
				return sources.Fatal(fmt.Errorf("postgres: source.key_columns: table %s has no column %q", rel.ident, k))
			}
			rel.kafka = append(rel.kafka, i)
			rel.kafkaNames = append(rel.kafkaNames, k)
		}
	}
	for _, c := range t.cols {
		rel.arrays = rel.arrays || c.dims > 0
	}
	for _, k := range t.chunk {
		if i := slices.Index(rel.names, k); i >= 0 {
			rel.chunk = append(rel.chunk, i)
		}
	}
	if len(rel.chunk) != len(t.chunk) {
		rel.chunk = nil
	}
	if err := r.observeShape(ctx, rel, t, m); err != nil {
		return r.sqlError(ctx, err)
	}
	return nil
}

func sameColumns(t *tableMeta, m *relationMsg) bool {
	if len(t.cols) != len(m.cols) {
		return false
	}
	for i, c := range m.cols {
		if t.cols[i].name != c.name || t.cols[i].oid != c.oid || t.cols[i].typmod != c.typmod {
			return false
		}
	}
	return true
}

// change turns an Insert, Update or Delete into events.
func (r *runner) change(ctx context.Context, walStart pglogrepl.LSN) error {
	m := &r.msg
	rel := r.rels[m.relID]
	if rel == nil {
		return sources.Fatal(fmt.Errorf("postgres: change for unknown relation %d at %s", m.relID, walStart))
	}
	if !rel.captured {
		return nil
	}
	src := change.Source{
		Connector: "postgresql",
		Name:      r.s.id,
		DB:        r.db,
		Schema:    rel.schema,
		Table:     rel.name,
		TsMs:      r.txn.commitTime.UnixMilli(),
		LSN:       uint64(walStart),
		TxID:      r.txn.xid,
	}
	if err := r.checkDims(rel, walStart); err != nil {
		return err
	}
	id := change.TableID{Namespace: rel.schema, Name: rel.name}
	switch m.kind {
	case 'I':
		after := rel.row(&r.alloc, m.new, nil)
		return r.emit(ctx, rel, change.Event{Table: id, Op: change.OpCreate, After: after, Source: src, Position: r.txn.label}, after, m.new)
	case 'U':
		if err := r.checkUnchangedToast(rel, walStart); err != nil {
			return err
		}
		var old []tupleCol
		if m.oldKind == 'O' {
			old = m.old
		}
		after := rel.row(&r.alloc, m.new, old)
		var before *change.Row
		switch m.oldKind {
		case 'O':
			before = rel.row(&r.alloc, m.old, nil)
		case 'K':
			before = rel.keyRow(&r.alloc, m.old)
		default:
			before = rel.keyRow(&r.alloc, m.new)
		}
		if (rel.keyless && len(rel.kafka) == len(rel.names)) || m.oldKind == 'K' || (m.oldKind == 'O' && !rel.sameKey(before, after)) {
			// The key changed: a delete of the old key and an insert of the new.
			if err := r.emit(ctx, rel, change.Event{Table: id, Op: change.OpDelete, Before: before, Source: src, Position: r.txn.label}, before, m.old); err != nil {
				return err
			}
			return r.emit(ctx, rel, change.Event{Table: id, Op: change.OpCreate, After: after, Source: src, Position: r.txn.label}, after, m.new)
		}
		return r.emit(ctx, rel, change.Event{Table: id, Op: change.OpUpdate, Before: before, After: after, Source: src, Position: r.txn.label}, after, m.new)
	case 'D':
		var before *change.Row
		if m.oldKind == 'O' {
			before = rel.row(&r.alloc, m.old, nil)
		} else {
			before = rel.keyRow(&r.alloc, m.old)
		}
		return r.emit(ctx, rel, change.Event{Table: id, Op: change.OpDelete, Before: before, Source: src, Position: r.txn.label}, before, m.old)
	}
	return nil
}

// emit sends ev unless the snapshot in progress will read its effect; keyed
// is the image whose key columns give the event key.
func (r *runner) emit(ctx context.Context, rel *relation, ev change.Event, keyed *change.Row, tup []tupleCol) error {
	if r.sn.Active() && rel.chunk != nil {
		if !r.sn.Admit(rel.ident, keyText(rel, tup)) {
			return nil
		}
	} else if r.sn.Active() && rel.chunk == nil && r.sn.Queued(rel.ident) {
		return nil // read whole by ctid ranges later, with this change in it
	}
	ev.Key = r.alloc.Key(rel.kafkaNames, rel.kafka, keyed.Values)
	r.txn.events++
	return r.send(ctx, change.Message{Event: r.alloc.Event(ev)})
}

// keyText returns the text of rel's snapshot key columns in tup, as the
// snapshot compares them.
func keyText(rel *relation, tup []tupleCol) snapshot.Key {
	k := make(snapshot.Key, len(rel.chunk))
	for i, c := range rel.chunk {
		if c < len(tup) {
			k[i] = string(tup[c].data)
		}
	}
	return k
}
