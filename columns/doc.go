// Package columns applies the per-table column rules of the configuration
// (source.column_include, column_exclude, column_hash, column_truncate) to
// events and to the table schemas flink-ddl prints.
//
// Invariant: a value left out or masked never reaches Kafka, in a row image
// or in a key, and the same value always masks to the same bytes, whether a
// snapshot or the stream sent it.
package columns
