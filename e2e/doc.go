// Package e2e runs the cdcrelay binary against real servers and checks what
// lands in Kafka: kill and restart, fencing, and the invariants of the
// guarantees (no loss, no duplicates for read_committed readers, per-key
// order).
package e2e
