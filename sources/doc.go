// Package sources holds the contract every database source implements
// (Source, and the Stream part of it that the relay drives), its fatal
// error type, the preflight report, and the RowReader through which verify
// reads tables the way the snapshot does. The sources themselves live in
// sources/postgres and sources/mysql; this package imports neither them
// nor the relay.
//
// Invariant: a preflight check and a RowReader only read; they never
// create, alter or drop anything on the database.
package sources
