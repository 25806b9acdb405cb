package relay

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
)

// txnPhase is where the loop's open transaction stands with Kafka.
type txnPhase uint8

const (
	// txnNone: no transaction is open; the next message opens one.
	txnNone txnPhase = iota
	// txnHeld: a transaction is open but its Kafka transaction is not
	// begun, because the previous one's commit is in flight; its records
	// are held in memory until that commit succeeds.
	txnHeld
	// txnBegun: the Kafka transaction is begun and the records are
	// produced into it as they come.
	txnBegun
)

// openTxn is the transaction the loop is filling: the messages received
// since the last commit was handed off. Only the loop's goroutine touches
// it; a commit takes what it needs into its commitJob.
type openTxn struct {
	phase  txnPhase
	start  time.Time
	events int
	counts map[countKey]int
	// end is the checkpoint the transaction ends at: the last one received,
	// nil while events have followed it (or none came yet). Committing at
	// end commits whole source transactions only.
	end *change.Checkpoint
	// parts are the parts of every checkpoint received, in order: only
	// end's offsets record is written, but each part exactly once.
	parts []change.Part
	// held are its records while phase is txnHeld, heldSize their keys'
	// and values' bytes.
	held     []*kgo.Record
	heldSize int
	// The events of one table and op in a row, not yet in counts.
	runKey countKey
	runN   int
}

// open opens a transaction at start, its records held until it is begun.
func (t *openTxn) open(start time.Time) {
	t.phase, t.start, t.events, t.end = txnHeld, start, 0, nil
	t.parts = t.parts[:0]
}

// endsAtCheckpoint reports whether a transaction is open and ends at a
// source checkpoint, so that it may commit now.
func (t *openTxn) endsAtCheckpoint() bool {
	return t.phase != txnNone && t.end != nil
}

// countRun adds the run of events of one table and op to counts.
func (t *openTxn) countRun() {
	if t.runN > 0 {
		t.counts[t.runKey] += t.runN
		t.runN = 0
	}
}

// count counts one event of ev's table and op.
func (t *openTxn) count(ev *change.Event) {
	t.events++
	if k := (countKey{ev.Table, ev.Op}); k == t.runKey {
		t.runN++
	} else {
		t.countRun()
		t.runKey, t.runN = k, 1
	}
}

// hold keeps recs for the Kafka transaction not begun yet.
func (t *openTxn) hold(recs []*kgo.Record) {
	for _, rec := range recs {
		t.held = append(t.held, rec)
		t.heldSize += len(rec.Key) + len(rec.Value)
	}
}

// discard closes the transaction without a commit, forgetting its held
// records and counts but keeping their buffers.
func (t *openTxn) discard() {
	for i := range t.held {
		t.held[i] = nil
	}
	t.held, t.heldSize = t.held[:0], 0
	for k := range t.counts {
		delete(t.counts, k)
	}
	t.parts = t.parts[:0]
	t.runN = 0
	t.phase, t.end = txnNone, nil
}
