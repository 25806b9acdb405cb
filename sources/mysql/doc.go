// Package mysql captures row changes from MySQL 8 and MariaDB 10.5+ through
// the binary log, and takes the initial snapshot through sources/snapshot with
// watermark rows written to a small table on the source, or, writing
// nothing, with each chunk placed at the binlog point of its consistent read
// (MariaDB; see binlogmark.go).
//
// Invariant: a Checkpoint is sent only after the XID (or COMMIT, or
// standalone DDL) that ends a source transaction, and its State resumes at
// the first transaction after it; a transaction at or before a stored
// position is never sent again.
package mysql
