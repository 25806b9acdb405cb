// Package offsets reads and writes the compacted offsets topic: one
// partition, cleanup.policy=compact, key = source id, value = a versioned
// Record holding the source's resumable state; and, key = source id + "/" +
// name, the parts of that state that are written only when they change.
//
// Invariant: Load reads read_committed up to the last stable offset, so it
// returns exactly the state of the last committed relay transaction for the
// source id, with its parts; a Record and its parts are only ever written
// inside the relay's open Kafka transaction, together with the events they
// cover.
package offsets
