package checker

import (
	"fmt"
	"sort"
	"strings"
)

// RowID names one row: its table and its integer primary key.
type RowID struct {
	Table string
	Key   int64
}

func (r RowID) String() string { return fmt.Sprintf("%s/%d", r.Table, r.Key) }

// Write is one row write of a source transaction. A delete of a row at
// version v is written down as version v+1 with Delete set, so each key's
// committed writes carry the versions 1, 2, 3, ... with no gap.
type Write struct {
	Row     RowID
	Version int64
	Delete  bool
}

// Txn is one source transaction of the workload.
type Txn struct {
	ID        int64
	Committed bool
	Writes    []Write
}

// Event is one change read back from Kafka, decoded.
type Event struct {
	Row     RowID
	Version int64 // for a delete: the version of the deleted row plus one
	Delete  bool
	// Snapshot is set for op=r rows.
	Snapshot bool
	// TxID is the workload transaction id carried by the row image; 0 when
	// unknown (deletes carry the id of the previous write).
	TxID      int64
	Partition int32
	Offset    int64
}

// Options tune the judgement.
type Options struct {
	// StrictFrom is the first transaction id written after the initial
	// snapshot finished: a key whose first committed write has an id at or
	// above it must be seen from that write on. Zero makes every key
	// strict; a value above every id lets every key start anywhere.
	StrictFrom int64
	// Examples caps the examples kept per anomaly kind. Default 10.
	Examples int
}

// Anomaly kinds.
const (
	Lost         = "lost"          // a committed write never seen
	Duplicated   = "duplicated"    // the same key version seen twice
	NonMonotonic = "non-monotonic" // a version older than one already seen
	AbortedRead  = "aborted-read"  // a write of a rolled-back transaction
	Unknown      = "unknown-write" // a version no transaction wrote
	Torn         = "torn"          // a committed transaction partly visible
	FinalState   = "final-state"   // the topic's last state differs from the database
)

// Kinds lists the anomaly kinds in report order.
var Kinds = []string{Lost, Duplicated, NonMonotonic, AbortedRead, Unknown, Torn, FinalState}

// Report is the verdict.
type Report struct {
	Events       int // events judged
	Keys         int // keys seen or written
	Transactions int // committed transactions in the ledger
	Counts       map[string]int
	Examples     map[string][]string
}

// OK reports whether no anomaly was found.
func (r *Report) OK() bool {
	for _, n := range r.Counts {
		if n > 0 {
			return false
		}
	}
	return true
}

// Verdict is "ok" or a one-line summary of the anomalies.
func (r *Report) Verdict() string {
	if r.OK() {
		return "ok"
	}
	var parts []string
	for _, k := range Kinds {
		if n := r.Counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
	}
	return "FAIL " + strings.Join(parts, " ")
}

// String prints the counts and the examples.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checked %d events over %d keys, %d committed transactions: %s\n", r.Events, r.Keys, r.Transactions, r.Verdict())
	for _, k := range Kinds {
		for _, ex := range r.Examples[k] {
			fmt.Fprintf(&b, "  %s: %s\n", k, ex)
		}
	}
	return b.String()
}

func (r *Report) add(kind string, limit int, format string, args ...any) {
	r.addN(kind, 1, limit, format, args...)
}

func (r *Report) addN(kind string, n, limit int, format string, args ...any) {
	r.Counts[kind] += n
	if len(r.Examples[kind]) < limit {
		r.Examples[kind] = append(r.Examples[kind], fmt.Sprintf(format, args...))
	}
}

type writeRef struct {
	txn    int64
	delete bool
}

// keyHistory is what the ledger says about one key.
type keyHistory struct {
	committed map[int64]writeRef // version -> write
	first     int64              // txn id of the first committed write
	last      int64              // highest committed version
}

// ledgerIndex is the ledger read by key and by transaction.
type ledgerIndex struct {
	hist          map[RowID]*keyHistory
	aborted       map[int64]bool  // rolled-back transaction ids
	abortedWrites map[Write]int64 // write -> the rolled-back transaction that made it
	committed     int             // committed transactions
}

func indexLedger(ledger []Txn) ledgerIndex {
	idx := ledgerIndex{hist: map[RowID]*keyHistory{}, aborted: map[int64]bool{}, abortedWrites: map[Write]int64{}}
	for _, tx := range ledger {
		if !tx.Committed {
			idx.aborted[tx.ID] = true
			for _, w := range tx.Writes {
				idx.abortedWrites[w] = tx.ID
			}
			continue
		}
		idx.committed++
		for _, w := range tx.Writes {
			h := idx.hist[w.Row]
			if h == nil {
				h = &keyHistory{committed: map[int64]writeRef{}, first: tx.ID}
				idx.hist[w.Row] = h
			}
			h.committed[w.Version] = writeRef{txn: tx.ID, delete: w.Delete}
			if w.Version == 1 || tx.ID < h.first {
				h.first = tx.ID
			}
			if w.Version > h.last {
				h.last = w.Version
			}
		}
	}
	return idx
}

// judge is what Check keeps across keys.
type judge struct {
	rep        *Report
	lim        int
	strictFrom int64
	idx        ledgerIndex
	// Per committed transaction: how many of its writes were lost, and how
	// many reached Kafka (seen, or absorbed by a snapshot).
	lostBy, deliveredBy map[int64]int
}

// Check judges events against the ledger and the database's final state
// (each live row's version; deleted rows are absent). events must be in the
// order read from each partition; events of different partitions may be
// interleaved in any way.
func Check(ledger []Txn, events []Event, final map[RowID]int64, opt Options) *Report {
	if opt.Examples <= 0 {
		opt.Examples = 10
	}
	rep := &Report{Counts: map[string]int{}, Examples: map[string][]string{}, Events: len(events)}
	for _, k := range Kinds {
		rep.Counts[k] = 0
	}
	j := &judge{rep: rep, lim: opt.Examples, strictFrom: opt.StrictFrom, idx: indexLedger(ledger),
		lostBy: map[int64]int{}, deliveredBy: map[int64]int{}}
	rep.Transactions = j.idx.committed

	byKey := map[RowID][]Event{}
	for _, ev := range events {
		byKey[ev.Row] = append(byKey[ev.Row], ev)
	}
	keys := map[RowID]bool{}
	for k := range j.idx.hist {
		keys[k] = true
	}
	for k := range byKey {
		keys[k] = true
	}
	for k := range final {
		keys[k] = true
	}
	rep.Keys = len(keys)

	for _, row := range sortedRows(keys) {
		prev, lastDelete := j.key(row, byKey[row], finalHas(final, row))
		j.finalState(row, prev, lastDelete, final)
	}
	for _, tx := range ledger {
		if tx.Committed && j.lostBy[tx.ID] > 0 && j.deliveredBy[tx.ID] > 0 {
			rep.add(Torn, j.lim, "txn %d: %d of %d writes visible", tx.ID, j.deliveredBy[tx.ID], len(tx.Writes))
		}
	}
	return rep
}

// key judges the events of one key, in the order read, against its
// committed writes, and returns the last version accepted (0 for none) and
// whether it was a delete. live says whether the database still has the
// row.
func (j *judge) key(row RowID, evs []Event, live bool) (prev int64, lastDelete bool) {
	h := j.idx.hist[row]
	if h == nil {
		h = &keyHistory{committed: map[int64]writeRef{}}
	}
	seen := map[int64]bool{}
	var start int64
	for _, ev := range evs {
		if !j.known(row, h, ev) {
			continue
		}
		if seen[ev.Version] {
			j.rep.add(Duplicated, j.lim, "%s v%d seen again at p%d@%d", row, ev.Version, ev.Partition, ev.Offset)
			continue
		}
		seen[ev.Version] = true
		switch {
		case prev == 0:
			start = ev.Version
			if h.first >= j.strictFrom && ev.Version > 1 {
				// A strict key must start at its first write: every
				// committed version below the first event was lost.
				for v := int64(1); v < ev.Version; v++ {
					if r, ok := h.committed[v]; ok {
						j.lost(r.txn, "%s v%d (txn %d): key created after the snapshot, first seen at v%d", row, v, r.txn, ev.Version)
					}
				}
				start = 1
			}
		case ev.Version < prev:
			j.rep.add(NonMonotonic, j.lim, "%s v%d after v%d at p%d@%d", row, ev.Version, prev, ev.Partition, ev.Offset)
			continue
		case ev.Version > prev+1:
			for v := prev + 1; v < ev.Version; v++ {
				r := h.committed[v]
				j.lost(r.txn, "%s v%d (txn %d): jumped from v%d to v%d at p%d@%d", row, v, r.txn, prev, ev.Version, ev.Partition, ev.Offset)
			}
		}
		prev = ev.Version
		lastDelete = ev.Delete
	}
	// Tail: committed versions after the last one seen.
	if prev == 0 {
		if h.last > 0 && (h.first >= j.strictFrom || live) {
			for v := int64(1); v <= h.last; v++ {
				if r, ok := h.committed[v]; ok {
					j.lost(r.txn, "%s v%d (txn %d): key never seen", row, v, r.txn)
				}
			}
		}
	} else {
		for v := prev + 1; v <= h.last; v++ {
			r := h.committed[v]
			j.lost(r.txn, "%s v%d (txn %d): last seen v%d", row, v, r.txn, prev)
		}
	}
	for v, r := range h.committed {
		if prev != 0 && (v < start || seen[v]) {
			j.deliveredBy[r.txn]++
		}
	}
	return prev, lastDelete
}

// known reports whether ev matches a committed write of its key; if not,
// it counts ev as an aborted read or an unknown write.
func (j *judge) known(row RowID, h *keyHistory, ev Event) bool {
	ref, ok := h.committed[ev.Version]
	switch {
	case ev.TxID != 0 && j.idx.aborted[ev.TxID]:
		j.rep.add(AbortedRead, j.lim, "%s v%d from rolled-back txn %d at p%d@%d", row, ev.Version, ev.TxID, ev.Partition, ev.Offset)
		return false
	case !ok || ref.delete != ev.Delete || (ev.TxID != 0 && ev.TxID != ref.txn) || (ev.Snapshot && ev.Delete):
		if atx, isAborted := j.idx.abortedWrites[Write{Row: row, Version: ev.Version, Delete: ev.Delete}]; isAborted {
			j.rep.add(AbortedRead, j.lim, "%s v%d (delete=%v) matches only rolled-back txn %d, at p%d@%d", row, ev.Version, ev.Delete, atx, ev.Partition, ev.Offset)
		} else {
			j.rep.add(Unknown, j.lim, "%s v%d (delete=%v, txid %d) matches no committed write, at p%d@%d", row, ev.Version, ev.Delete, ev.TxID, ev.Partition, ev.Offset)
		}
		return false
	}
	return true
}

// lost counts one lost write of transaction txn.
func (j *judge) lost(txn int64, format string, args ...any) {
	j.rep.add(Lost, j.lim, format, args...)
	j.lostBy[txn]++
}

// finalState compares the key's last event with the database's row.
func (j *judge) finalState(row RowID, prev int64, lastDelete bool, final map[RowID]int64) {
	want, live := final[row]
	switch {
	case prev == 0 && live:
		j.rep.add(FinalState, j.lim, "%s: database has v%d, topic has nothing", row, want)
	case prev == 0:
	case lastDelete && live:
		j.rep.add(FinalState, j.lim, "%s: database has v%d, topic says deleted at v%d", row, want, prev)
	case !lastDelete && !live:
		j.rep.add(FinalState, j.lim, "%s: database has no row, topic has v%d", row, prev)
	case !lastDelete && want != prev:
		j.rep.add(FinalState, j.lim, "%s: database has v%d, topic has v%d", row, want, prev)
	}
}

func finalHas(final map[RowID]int64, r RowID) bool {
	_, ok := final[r]
	return ok
}

func sortedRows(m map[RowID]bool) []RowID {
	out := make([]RowID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Table != out[j].Table {
			return out[i].Table < out[j].Table
		}
		return out[i].Key < out[j].Key
	})
	return out
}
