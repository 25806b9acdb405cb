// Package sources holds what the database sources share: the preflight
// report, and the RowReader through which verify reads tables the way the
// snapshot does. The sources themselves live in sources/postgres and
// sources/mysql.
//
// Invariant: a preflight check and a RowReader only read; they never
// create, alter or drop anything on the database.
package sources
