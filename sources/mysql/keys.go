package mysql

import (
	"fmt"
	"slices"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// This file chooses the two keys of a table: the Kafka key (the primary
// key, source.key_columns, or the whole row of a keyless table) and the
// snapshot key (the primary key, or for a keyless table a unique index on
// NOT NULL columns), which must be unique for the snapshot's window rules.

// chooseKafkaKey makes c key its events by source.key_columns when an entry
// covers its table.
func (s *Source) chooseKafkaKey(c *tableCodec) error {
	cols := s.cfg.Source.KeyColumnsFor(c.id.Namespace, c.id.Name)
	if cols == nil {
		return nil
	}
	key := make([]int, len(cols))
	for i, name := range cols {
		key[i] = slices.Index(c.names, name)
		if key[i] < 0 {
			return fatalf("mysql: source.key_columns: table %s has no column %q", c.id, name)
		}
	}
	c.key, c.keyNames, c.chosen = key, cols, true
	return nil
}

// snapshotKey returns the columns of db.name, the indexes of its snapshot
// key among them, and, for a table without a primary key, the name of the
// unique index that key comes from and the columns of the table's implicit
// primary key.
//
// MySQL and MariaDB take the first unique index whose columns are all NOT
// NULL and whole (no prefix length), in the server's key order (SHOW KEYS),
// as the primary key of a table that declares none: InnoDB clusters by it
// and the binlog's TABLE_MAP names it, so the stream keys the table's events
// by it. (A unique index on a prefix is not taken: the binlog then keys by
// the whole row, and so does the snapshot.) The snapshot keys its
// rows the same way (implicit), and reads by the first such index whose
// types it can order, preferring one on exactly the columns of
// source.key_columns. chunk is nil when there is none.
func (s *Source) snapshotKey(c *client.Conn, db, name string) (cols []column, chunk []int, index string, implicit []int, err error) {
	cols, chunk, err = tableColumns(c, db, name)
	if err != nil || len(chunk) > 0 || len(cols) == 0 {
		return cols, chunk, "", nil, err
	}
	rows, err := queryRows(c, "SHOW KEYS FROM "+quoteTable(db, name))
	if err != nil {
		return nil, nil, "", nil, fmt.Errorf("mysql: read the indexes of %s.%s: %w", db, name, err)
	}
	// Columns: Table, Non_unique, Key_name, Seq_in_index, Column_name,
	// Collation, Cardinality, Sub_part, ...
	type candidate struct {
		name      string
		cols      []int
		notNull   bool
		orderable bool
		prefix    bool
	}
	var found []*candidate
	for _, r := range rows {
		if len(r) < 5 || r[1] != "0" {
			continue
		}
		if len(found) == 0 || found[len(found)-1].name != r[2] {
			found = append(found, &candidate{name: r[2], notNull: true, orderable: true})
		}
		ix := found[len(found)-1]
		i := slices.IndexFunc(cols, func(col column) bool { return col.name == r[4] })
		if i < 0 { // an expression
			ix.notNull, ix.orderable = false, false
			continue
		}
		if cols[i].nullable {
			ix.notNull = false
		}
		if _, ok := kindOf(cols[i]); !ok {
			ix.orderable = false
		}
		if len(r) > 7 && r[7] != "" {
			ix.prefix = true
		}
		ix.cols = append(ix.cols, i)
	}
	chosen := s.cfg.Source.KeyColumnsFor(db, name)
	var best *candidate
	for _, ix := range found {
		if !ix.notNull {
			continue
		}
		if implicit == nil && !ix.prefix {
			implicit = ix.cols
		}
		if !ix.orderable {
			continue
		}
		if chosen != nil && len(chosen) == len(ix.cols) && !slices.ContainsFunc(ix.cols, func(i int) bool { return !slices.Contains(chosen, cols[i].name) }) {
			best = ix
			break
		}
		if best == nil {
			best = ix
		}
	}
	if best == nil {
		return cols, nil, "", implicit, nil
	}
	return cols, best.cols, best.name, implicit, nil
}

// snapshotRefusal is the line that refuses the snapshot of a table that
// has no key to read it by.
func snapshotRefusal(table string) error {
	return fmt.Errorf("mysql: table %s has no primary key and no unique index on NOT NULL columns, so its rows cannot be snapshotted in chunks; add a primary key or such a unique index (the snapshot reads by it), or set source.snapshot: never to stream it without its existing rows", table)
}

// chunkKey returns the indexes, in c's columns, of the snapshot key of the
// table c encodes, and false when the snapshot has none for it: the key
// dialect.compare chose when the table was queued (the primary key, or a
// unique index), which need not be the Kafka key. The result is kept in c.
func (r *reader) chunkKey(c *tableCodec) ([]int, bool) {
	if c.chunk != nil {
		return c.chunk, true
	}
	if r.dialect == nil {
		return nil, false
	}
	names := r.dialect.chunkNames[c.id.String()]
	if names == nil {
		return nil, false
	}
	idx := make([]int, len(names))
	for i, n := range names {
		if idx[i] = slices.Index(c.names, n); idx[i] < 0 {
			return nil, false
		}
	}
	c.chunk = idx
	return idx, true
}

// admit asks the snapshot whether a change of row in c's table is sent.
func (r *reader) admit(c *tableCodec, row *change.Row) (bool, error) {
	if r.snap == nil || !r.snap.Active() {
		return true, nil
	}
	key, ok := r.chunkKey(c)
	if !ok {
		if r.snap.Queued(c.id.String()) {
			return false, fatalf("mysql: the snapshot of %s has no key for a change of it (its unique index is gone from the row); re-snapshot it with: cdcrelay snapshot --config <file> --table %s", c.id, c.id)
		}
		return true, nil
	}
	k := make(snapshot.Key, len(key))
	for i, idx := range key {
		k[i] = string(row.Values[idx])
	}
	return r.snap.Admit(c.id.String(), k), nil
}

func joinCols(cols []column, key []int) string {
	names := make([]string, len(key))
	for i, k := range key {
		names[i] = cols[k].name
	}
	return strings.Join(names, ", ")
}

// columnOf reads one row of COLUMN_NAME, DATA_TYPE, COLUMN_TYPE,
// IS_NULLABLE, CHARACTER_SET_NAME.
func columnOf(r []string) column {
	col := column{name: r[0], dataType: strings.ToLower(r[1]), columnType: strings.ToLower(r[2]), nullable: r[3] == "YES"}
	col.enc = textEncoderFor(col.dataType, col.columnType, r[4])
	return col
}

// tableKey is a table's columns and primary key, as tableColumns reads them.
type tableKey struct {
	cols []column
	key  []int
}

// readKeys reads what tableColumns does for every table of the databases
// of tables, in two queries per database, keyed db.name.
func readKeys(c *client.Conn, tables []tableInfo) (map[string]*tableKey, error) {
	out := map[string]*tableKey{}
	dbs := map[string]bool{}
	for _, t := range tables {
		dbs[t.db] = true
	}
	for db := range dbs {
		rows, err := queryRows(c, `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COALESCE(CHARACTER_SET_NAME, '')
			FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = `+quoteString(db)+` ORDER BY TABLE_NAME, ORDINAL_POSITION`)
		if err != nil {
			return nil, fmt.Errorf("mysql: read the columns of database %s: %w", db, err)
		}
		for _, r := range rows {
			k := out[db+"."+r[0]]
			if k == nil {
				k = &tableKey{}
				out[db+"."+r[0]] = k
			}
			k.cols = append(k.cols, columnOf(r[1:]))
		}
		krows, err := queryRows(c, `SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS
			WHERE TABLE_SCHEMA = `+quoteString(db)+` AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX`)
		if err != nil {
			return nil, fmt.Errorf("mysql: read the primary keys of database %s: %w", db, err)
		}
		for _, r := range krows {
			if k := out[db+"."+r[0]]; k != nil {
				if i := slices.IndexFunc(k.cols, func(col column) bool { return col.name == r[1] }); i >= 0 {
					k.key = append(k.key, i)
				}
			}
		}
	}
	return out, nil
}
