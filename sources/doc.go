// Package sources holds what the database sources share: the preflight
// report. The sources themselves live in sources/postgres and sources/mysql.
//
// Invariant: a preflight check only reads; it never creates, alters or
// drops anything on the database.
package sources
