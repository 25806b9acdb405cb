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

// Check judges events against the ledger and the database's final state
// (each live row's version; deleted rows are absent). events must be in the
// order read from each partition; events of different partitions may be
// interleaved in any way.
func Check(ledger []Txn, events []Event, final map[RowID]int64, opt Options) *Report {
	if opt.Examples <= 0 {
		opt.Examples = 10
	}
	lim := opt.Examples
	rep := &Report{Counts: map[string]int{}, Examples: map[string][]string{}, Events: len(events)}
	for _, k := range Kinds {
		rep.Counts[k] = 0
	}

	hist := map[RowID]*keyHistory{}
	aborted := map[int64]bool{}
	abortedWrites := map[Write]int64{}
	for _, tx := range ledger {
		if !tx.Committed {
			aborted[tx.ID] = true
			for _, w := range tx.Writes {
				abortedWrites[w] = tx.ID
			}
			continue
		}
		rep.Transactions++
		for _, w := range tx.Writes {
			h := hist[w.Row]
			if h == nil {
				h = &keyHistory{committed: map[int64]writeRef{}, first: tx.ID}
				hist[w.Row] = h
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

	byKey := map[RowID][]Event{}
	for _, ev := range events {
		byKey[ev.Row] = append(byKey[ev.Row], ev)
	}
	keys := map[RowID]bool{}
	for k := range hist {
		keys[k] = true
	}
	for k := range byKey {
		keys[k] = true
	}
	for k := range final {
		keys[k] = true
	}
	rep.Keys = len(keys)

	// delivered[txn][version-of-write] tells, per committed transaction,
	// which of its writes reached Kafka (seen, or absorbed by a snapshot).
	lostBy := map[int64]int{}
	deliveredBy := map[int64]int{}

	for _, row := range sortedRows(keys) {
		h := hist[row]
		if h == nil {
			h = &keyHistory{committed: map[int64]writeRef{}}
		}
		evs := byKey[row]
		seen := map[int64]bool{}
		var prev int64 // last accepted version; 0 = none yet
		var start int64
		lastDelete := false
		for _, ev := range evs {
			ref, ok := h.committed[ev.Version]
			switch {
			case ev.TxID != 0 && aborted[ev.TxID]:
				rep.add(AbortedRead, lim, "%s v%d from rolled-back txn %d at p%d@%d", row, ev.Version, ev.TxID, ev.Partition, ev.Offset)
				continue
			case !ok || ref.delete != ev.Delete || (ev.TxID != 0 && ev.TxID != ref.txn) || (ev.Snapshot && ev.Delete):
				if atx, isAborted := abortedWrites[Write{Row: row, Version: ev.Version, Delete: ev.Delete}]; isAborted {
					rep.add(AbortedRead, lim, "%s v%d (delete=%v) matches only rolled-back txn %d, at p%d@%d", row, ev.Version, ev.Delete, atx, ev.Partition, ev.Offset)
				} else {
					rep.add(Unknown, lim, "%s v%d (delete=%v, txid %d) matches no committed write, at p%d@%d", row, ev.Version, ev.Delete, ev.TxID, ev.Partition, ev.Offset)
				}
				continue
			}
			if seen[ev.Version] {
				rep.add(Duplicated, lim, "%s v%d seen again at p%d@%d", row, ev.Version, ev.Partition, ev.Offset)
				continue
			}
			seen[ev.Version] = true
			if prev == 0 {
				start = ev.Version
				if h.first >= opt.StrictFrom && ev.Version > 1 {
					// A strict key must start at its first write: every
					// committed version below the first event was lost.
					for v := int64(1); v < ev.Version; v++ {
						if r, ok := h.committed[v]; ok {
							rep.add(Lost, lim, "%s v%d (txn %d): key created after the snapshot, first seen at v%d", row, v, r.txn, ev.Version)
							lostBy[r.txn]++
						}
					}
					start = 1
				}
			} else if ev.Version < prev {
				rep.add(NonMonotonic, lim, "%s v%d after v%d at p%d@%d", row, ev.Version, prev, ev.Partition, ev.Offset)
				continue
			} else if ev.Version > prev+1 {
				for v := prev + 1; v < ev.Version; v++ {
					r := h.committed[v]
					rep.add(Lost, lim, "%s v%d (txn %d): jumped from v%d to v%d at p%d@%d", row, v, r.txn, prev, ev.Version, ev.Partition, ev.Offset)
					lostBy[r.txn]++
				}
			}
			prev = ev.Version
			lastDelete = ev.Delete
		}
		// Tail: committed versions after the last one seen.
		if prev == 0 {
			if h.last > 0 && (h.first >= opt.StrictFrom || finalHas(final, row)) {
				for v := int64(1); v <= h.last; v++ {
					if r, ok := h.committed[v]; ok {
						rep.add(Lost, lim, "%s v%d (txn %d): key never seen", row, v, r.txn)
						lostBy[r.txn]++
					}
				}
			}
		} else {
			for v := prev + 1; v <= h.last; v++ {
				r := h.committed[v]
				rep.add(Lost, lim, "%s v%d (txn %d): last seen v%d", row, v, r.txn, prev)
				lostBy[r.txn]++
			}
		}
		for v, r := range h.committed {
			if prev != 0 && (v < start || seen[v]) {
				deliveredBy[r.txn]++
			}
		}
		// Final state.
		want, live := final[row]
		switch {
		case prev == 0 && live:
			rep.add(FinalState, lim, "%s: database has v%d, topic has nothing", row, want)
		case prev == 0:
		case lastDelete && live:
			rep.add(FinalState, lim, "%s: database has v%d, topic says deleted at v%d", row, want, prev)
		case !lastDelete && !live:
			rep.add(FinalState, lim, "%s: database has no row, topic has v%d", row, prev)
		case !lastDelete && want != prev:
			rep.add(FinalState, lim, "%s: database has v%d, topic has v%d", row, want, prev)
		}
	}
	for _, tx := range ledger {
		if tx.Committed && lostBy[tx.ID] > 0 && deliveredBy[tx.ID] > 0 {
			rep.add(Torn, lim, "txn %d: %d of %d writes visible", tx.ID, deliveredBy[tx.ID], len(tx.Writes))
		}
	}
	return rep
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
