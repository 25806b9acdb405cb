// Package verify compares each captured table of a source with the latest
// state per key of its topic, read read_committed, and reports the keys
// that are missing in Kafka, extra in Kafka, or differ, naming the columns
// that differ.
//
// The database side is read through the source's sources.RowReader, which
// is the snapshot's chunk reader: each row is encoded by the stream's own
// encoders, so values are compared byte for byte (json and jsonb documents
// as documents). Memory stays flat whatever the table size: both sides go
// through a sorter by key hash that spills sorted runs to temporary files
// beyond a fixed budget, and the two sorted streams are merged.
//
// Invariant: verify only reads, from the database and from Kafka.
package verify
