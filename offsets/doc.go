// Package offsets reads and writes the compacted offsets topic: one
// partition, cleanup.policy=compact, key = source id, value = a versioned
// Record holding the source's resumable state.
//
// Invariant: Load reads read_committed up to the last stable offset, so it
// returns exactly the state of the last committed relay transaction for the
// source id; a Record is only ever written inside the relay's open Kafka
// transaction, together with the events it covers.
package offsets
