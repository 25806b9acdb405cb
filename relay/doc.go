// Package relay owns the transactional Kafka producer and the loop that moves
// a source's changes (a sources.Stream) into Kafka.
//
// Invariant: a source is acked only for a checkpoint whose events and whose
// offsets record were committed together in one Kafka transaction; after any
// Kafka error whose outcome is unknown, the relay re-reads the offsets topic
// and resumes from what it says, never from what it thinks it sent.
package relay
