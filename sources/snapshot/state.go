package snapshot

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

// Progress is one table's snapshot progress, stored in checkpoint state.
type Progress struct {
	// Table is the source's stable name for the table.
	Table string `json:"table"`
	// LastKey is the last key of the last finished chunk; nil before the
	// first chunk.
	LastKey Key `json:"last_key,omitempty"`
	// Rows is the number of rows read by finished chunks.
	Rows int64 `json:"rows"`
	// Chunks is the number of finished chunks.
	Chunks int64 `json:"chunks"`
	// Seq orders the queue: a table queued later has a higher Seq. Zero in
	// states written before tables were kept apart.
	Seq int64 `json:"seq,omitempty"`
}

// started reports whether some of the table's rows were read.
func (p *Progress) started() bool { return p.Chunks > 0 || p.Rows > 0 || p.LastKey != nil }

// State is the snapshot part of a source's checkpoint state.
//
// It has two forms. Inline, the whole of it: every queued table and every
// finished one. Apart (Apart set), once those lists outgrow
// Config.InlineMax: each table's place in the queue or its finished
// snapshot is a part of its own (see Snapshotter.Checkpoint), and State
// keeps only the tables whose snapshot has started, and counts. Restore
// turns the apart form and its parts back into the whole.
type State struct {
	// Queue holds the tables still to snapshot, in order; the first one is
	// the one being read. Apart: only the tables with progress.
	Queue []Progress `json:"queue,omitempty"`
	// Done lists the tables whose snapshot finished; empty when apart.
	Done []string `json:"done,omitempty"`
	// Apart tells that the tables are kept as parts.
	Apart bool `json:"apart,omitempty"`
	// Waiting and Finished count the queued and the finished tables, for
	// readers of the offsets topic; set only when apart.
	Waiting  int `json:"waiting,omitempty"`
	Finished int `json:"finished,omitempty"`
}

// PartPrefix starts the name of every part a Snapshotter writes: a table's
// part is named PartPrefix + table.
const PartPrefix = "table/"

// tablePart is the value of a table's part: its place in the queue, or a
// finished snapshot.
type tablePart struct {
	Queued int64 `json:"queued,omitempty"`
	Done   bool  `json:"done,omitempty"`
}

// DefaultInlineMax is the default of Config.InlineMax.
const DefaultInlineMax = 512

// tables is the Snapshotter's record of queued and finished tables.
type tables struct {
	queue    []*Progress
	queued   map[string]*Progress
	done     map[string]bool
	doneList []string // finished tables in the order they finished
	nextSeq  int64
	apart    bool
	// The tables whose part changed since the last Checkpoint, when apart.
	dirty    []string
	dirtySet map[string]bool
}

// New restores a Snapshotter from st, the snapshot part of the last
// committed checkpoint, made whole by Restore (zero for a fresh start).
func New(cfg Config, st State) (*Snapshotter, error) {
	if cfg.ChunkSize <= 0 {
		return nil, errors.New("snapshot: chunk size must be > 0")
	}
	if cfg.Compare == nil {
		return nil, errors.New("snapshot: Compare is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 10 * time.Second
	}
	if cfg.InlineMax <= 0 {
		cfg.InlineMax = DefaultInlineMax
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("snapshot: mark nonce: %w", err)
	}
	s := &Snapshotter{
		cfg: cfg,
		tables: tables{
			queued:   map[string]*Progress{},
			done:     map[string]bool{},
			apart:    st.Apart,
			nextSeq:  1,
			dirtySet: map[string]bool{},
		},
		cmp:   map[string]Compare{},
		nonce: hex.EncodeToString(b[:]),
		runs:  map[string]*run{},
	}
	for _, p := range st.Queue {
		if s.queued[p.Table] != nil {
			continue
		}
		if err := s.addCompare(p.Table); err != nil {
			return nil, err
		}
		p.LastKey = append(Key(nil), p.LastKey...)
		if p.Seq < s.nextSeq {
			p.Seq = s.nextSeq
		}
		s.nextSeq = p.Seq + 1
		s.push(&p)
	}
	for _, d := range st.Done {
		if !s.done[d] && s.queued[d] == nil {
			s.done[d] = true
			s.doneList = append(s.doneList, d)
		}
	}
	return s, nil
}

// push appends p to the queue.
func (t *tables) push(p *Progress) {
	t.queue = append(t.queue, p)
	t.queued[p.Table] = p
}

// touch records that table's part changed, when tables are kept apart.
func (t *tables) touch(table string) {
	if t.apart && !t.dirtySet[table] {
		t.dirtySet[table] = true
		t.dirty = append(t.dirty, table)
	}
}

// unfinish takes table out of the finished tables.
func (t *tables) unfinish(table string) {
	if !t.done[table] {
		return
	}
	delete(t.done, table)
	for i, d := range t.doneList {
		if d == table {
			t.doneList = append(t.doneList[:i:i], t.doneList[i+1:]...)
			break
		}
	}
}

// finishHead moves the first queued table to the finished ones.
func (t *tables) finishHead() {
	p := t.queue[0]
	t.queue[0] = nil
	t.queue = t.queue[1:]
	delete(t.queued, p.Table)
	t.done[p.Table] = true
	t.doneList = append(t.doneList, p.Table)
	t.touch(p.Table)
}

// Enqueue adds table to the end of the queue, from its first key, unless it
// is already queued. A table listed as done is taken out of that list: this
// is how a re-snapshot is requested.
func (s *Snapshotter) Enqueue(table string) error {
	if s.queued[table] != nil {
		return nil
	}
	if err := s.addCompare(table); err != nil {
		return err
	}
	s.unfinish(table)
	s.push(&Progress{Table: table, Seq: s.nextSeq})
	s.nextSeq++
	s.touch(table)
	return nil
}

// Forget drops table from the queue and the done list (it is no longer
// captured). It must not be called for the table of the chunk in flight.
// It waits for a read ahead to end, and drops it.
func (s *Snapshotter) Forget(table string) {
	if s.pre != nil {
		<-s.pre.done
		s.pre = nil
	}
	if p := s.queued[table]; p != nil && (s.cur == nil || s.cur.table != table) {
		for i, q := range s.queue {
			if q == p {
				s.queue = append(s.queue[:i:i], s.queue[i+1:]...)
				break
			}
		}
		delete(s.queued, table)
		s.touch(table)
	}
	if s.done[table] {
		s.unfinish(table)
		s.touch(table)
	}
}

// Known reports whether table is queued or done.
func (s *Snapshotter) Known(table string) bool { return s.queued[table] != nil || s.done[table] }

// Queued reports whether table is waiting for, or in, its snapshot.
func (s *Snapshotter) Queued(table string) bool { return s.queued[table] != nil }

// Waiting returns the number of tables still to snapshot.
func (s *Snapshotter) Waiting() int { return len(s.queue) }

// State returns a copy of the progress in its current form (see State),
// without the parts.
func (s *Snapshotter) State() State {
	if !s.apart {
		st := State{Done: append([]string(nil), s.doneList...)}
		for _, p := range s.queue {
			st.Queue = append(st.Queue, *p)
		}
		return st
	}
	st := State{Apart: true, Waiting: len(s.queue), Finished: len(s.done)}
	// Only the first queued table is ever read, so the tables with progress
	// are at the front of the queue.
	for _, p := range s.queue {
		if !p.started() {
			break
		}
		st.Queue = append(st.Queue, *p)
	}
	return st
}

// Checkpoint returns the state and the parts for the next checkpoint: the
// parts of the tables that changed since the last call. The source must
// send both in that checkpoint, or start over from its last committed one.
// The first time the inline lists outgrow Config.InlineMax, the tables go
// apart for good: every table gets its part in this checkpoint.
func (s *Snapshotter) Checkpoint() (State, []change.Part) {
	if !s.apart && s.inlineSize() > s.cfg.InlineMax {
		s.apart = true
		for _, p := range s.queue {
			s.touch(p.Table)
		}
		for _, d := range s.doneList {
			s.touch(d)
		}
	}
	if m := s.cfg.Metrics; m != nil {
		m.SnapshotTables.WithLabelValues("waiting").Set(float64(len(s.queue)))
		m.SnapshotTables.WithLabelValues("done").Set(float64(len(s.done)))
	}
	st := s.State()
	if len(s.dirty) == 0 {
		return st, nil
	}
	parts := make([]change.Part, 0, len(s.dirty))
	for _, table := range s.dirty {
		var v []byte
		switch p := s.queued[table]; {
		case p != nil:
			v = []byte(`{"queued":` + strconv.FormatInt(p.Seq, 10) + `}`)
		case s.done[table]:
			v = []byte(`{"done":true}`)
		}
		parts = append(parts, change.Part{Name: PartPrefix + table, Value: v})
		delete(s.dirtySet, table)
	}
	s.dirty = s.dirty[:0]
	return st, parts
}

// inlineSize estimates the bytes of the inline lists, stopping early once
// over the limit.
func (s *Snapshotter) inlineSize() int {
	n := 0
	for _, p := range s.queue {
		if n += len(p.Table) + 48 + 8*len(p.LastKey); n > s.cfg.InlineMax {
			return n
		}
	}
	for _, d := range s.doneList {
		if n += len(d) + 3; n > s.cfg.InlineMax {
			return n
		}
	}
	return n
}

// Restore makes the whole state from st, as stored in a checkpoint, and
// the source's committed parts. An inline st is whole already.
func Restore(st State, parts map[string][]byte) (State, error) {
	if !st.Apart {
		return st, nil
	}
	whole := State{Apart: true}
	started := make(map[string]Progress, len(st.Queue))
	for _, p := range st.Queue {
		started[p.Table] = p
	}
	for name, v := range parts {
		table, ok := strings.CutPrefix(name, PartPrefix)
		if !ok {
			continue
		}
		var tp tablePart
		if err := json.Unmarshal(v, &tp); err != nil {
			return State{}, fmt.Errorf("snapshot: stored part %q: %w", name, err)
		}
		switch {
		case tp.Queued > 0:
			p, ok := started[table]
			if !ok {
				p = Progress{Table: table}
			}
			delete(started, table)
			p.Seq = tp.Queued
			whole.Queue = append(whole.Queue, p)
		case tp.Done:
			whole.Done = append(whole.Done, table)
		}
	}
	// A started table has its part in the same transaction; keep it anyway.
	for _, p := range started {
		whole.Queue = append(whole.Queue, p)
	}
	sort.Slice(whole.Queue, func(i, j int) bool {
		a, b := whole.Queue[i], whole.Queue[j]
		if a.Seq != b.Seq {
			return a.Seq < b.Seq
		}
		return a.Table < b.Table
	})
	sort.Strings(whole.Done)
	return whole, nil
}

// CountParts counts the queued and the finished tables among a source's
// parts, for `cdcrelay offsets show`.
func CountParts(parts map[string][]byte) (queued, finished int) {
	for name, v := range parts {
		if !strings.HasPrefix(name, PartPrefix) {
			continue
		}
		var tp tablePart
		if json.Unmarshal(v, &tp) != nil {
			continue
		}
		switch {
		case tp.Queued > 0:
			queued++
		case tp.Done:
			finished++
		}
	}
	return queued, finished
}
