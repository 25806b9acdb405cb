// Package checker judges what a relay wrote to Kafka against what a
// versioned workload did to the source database, in the manner of a queue
// checker: every row carries a version that each write bumps by one, and
// every source transaction is written down in a ledger (its id, the keys and
// versions it wrote, and whether it committed).
//
// Invariant: Check is a pure function of the ledger, the events read back
// read_committed in partition order, and the database's final state; it
// reports every lost, duplicated, reordered, aborted or torn write it can
// prove from them, and nothing it cannot.
//
// # Snapshot semantics
//
// A key that existed before the relay's initial snapshot finished may start
// anywhere: its first event is either the op=r row of its chunk, at whatever
// version the chunk read, or, when the watermark rule dropped that row, the
// first stream change inside the chunk's window. Versions older than the
// first event are taken as absorbed by the snapshot. From the first event on,
// versions must follow one by one. A key created after the snapshot (its
// first committed write has a transaction id at or above
// Options.StrictFrom) must start at that first write.
package checker
