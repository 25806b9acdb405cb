package postgres

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// tableMeta is a captured table as the catalog describes it now.
type tableMeta struct {
	oid       uint32
	schema    string
	name      string
	ident     string // quoted schema.table, also the snapshot's table name
	identity  byte   // relreplident: d, n, f or i
	reltuples float64
	cols      []colMeta
	names     []string // the column names, shared by the snapshot's rows
	keys      [][]byte // names as JSON object keys (change.ObjectKeys)
	key       []string // primary-key columns in key order; nil when keyless
	keyless   bool     // listed in source.keyless
	// chunk is the snapshot's key: the primary key, or for a table without
	// one the columns of a unique index on NOT NULL columns (chunkIndex);
	// nil when the table cannot be snapshotted.
	chunk      []string
	chunkIndex string
	// kafka is the Kafka key chosen by source.key_columns; nil: the
	// primary key, or the whole row for a keyless table.
	kafka []string
}

type colMeta struct {
	name     string
	oid      uint32
	typmod   int32
	notNull  bool
	typeName string // format_type
	typ      colType
	// toastable: a variable-length column whose storage lets PostgreSQL
	// move its values out of line (attlen -1, attstorage not plain). An
	// update that leaves such a value unchanged sends no value for it
	// unless the old row is logged whole (REPLICA IDENTITY FULL).
	toastable bool
	// dims is the number of array dimensions the column was declared with
	// (attndims, at least 1 for an array); 0 for a column that is not an
	// array. PostgreSQL records it but does not enforce it (arraydims.go).
	dims int
}

func (t *tableMeta) id() change.TableID { return change.TableID{Namespace: t.schema, Name: t.name} }

// listTables resolves source.tables against the catalog and loads each
// match, sorted by schema and name.
func (s *Source) listTables(ctx context.Context, conn *pgx.Conn, lookup typeResolver) ([]*tableMeta, error) {
	out, err := s.capturedTables(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, t := range out {
		if err := loadColumns(ctx, conn, t, lookup); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// capturedTables lists the captured tables, in name order, in one query,
// without their columns.
func (s *Source) capturedTables(ctx context.Context, conn *pgx.Conn) ([]*tableMeta, error) {
	rows, err := conn.Query(ctx, `
SELECT c.oid, n.nspname, c.relname, c.relreplident::text, c.reltuples
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tables: %w", err)
	}
	var out []*tableMeta
	for rows.Next() {
		t := &tableMeta{}
		var ident string
		if err := rows.Scan(&t.oid, &t.schema, &t.name, &ident, &t.reltuples); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: list tables: %w", err)
		}
		if !s.captured(t.schema, t.name) {
			continue
		}
		if ident != "" {
			t.identity = ident[0]
		}
		t.ident = pgx.Identifier{t.schema, t.name}.Sanitize()
		t.keyless = s.isKeyless(t.schema, t.name)
		t.kafka = s.keyColumns(t.schema, t.name)
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list tables: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].schema != out[j].schema {
			return out[i].schema < out[j].schema
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// Tables lists the captured tables, for the relay to create their topics
// (sources.TableLister).
func (s *Source) Tables(ctx context.Context) ([]change.TableID, error) {
	conn, err := s.connectSQLRetry(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables, err := s.capturedTables(ctx, conn)
	if err != nil {
		return nil, err
	}
	ids := make([]change.TableID, len(tables))
	for i, t := range tables {
		ids[i] = change.TableID{Namespace: t.schema, Name: t.name}
	}
	return ids, nil
}

// loadColumns fills t's columns and primary key.
func loadColumns(ctx context.Context, conn *pgx.Conn, t *tableMeta, lookup typeResolver) error {
	rows, err := conn.Query(ctx, `
SELECT attname, atttypid, atttypmod, attnotnull, pg_catalog.format_type(atttypid, atttypmod),
  attlen = -1 AND attstorage <> 'p', attndims
FROM pg_catalog.pg_attribute
WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
ORDER BY attnum`, t.oid)
	if err != nil {
		return fmt.Errorf("postgres: columns of %s: %w", t.ident, err)
	}
	t.cols = t.cols[:0]
	for rows.Next() {
		var c colMeta
		if err := rows.Scan(&c.name, &c.oid, &c.typmod, &c.notNull, &c.typeName, &c.toastable, &c.dims); err != nil {
			rows.Close()
			return fmt.Errorf("postgres: columns of %s: %w", t.ident, err)
		}
		t.cols = append(t.cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: columns of %s: %w", t.ident, err)
	}
	for i := range t.cols {
		ct, err := resolveType(t.cols[i].oid, t.cols[i].typmod, lookup)
		if err != nil {
			return fmt.Errorf("postgres: type of %s.%s: %w", t.ident, t.cols[i].name, err)
		}
		ct.flink = nestArray(ct.flink, t.cols[i].dims)
		t.cols[i].typ = ct
		if strings.HasPrefix(ct.flink, "ARRAY<") {
			t.cols[i].dims = max(t.cols[i].dims, 1)
		} else {
			t.cols[i].dims = 0
		}
	}
	t.names = make([]string, len(t.cols))
	for i, c := range t.cols {
		t.names[i] = c.name
	}
	t.keys = change.ObjectKeys(t.names)
	t.key, err = primaryKey(ctx, conn, t.oid)
	if err != nil {
		return fmt.Errorf("postgres: primary key of %s: %w", t.ident, err)
	}
	t.chunk, t.chunkIndex = t.key, ""
	if len(t.key) == 0 {
		if t.chunk, t.chunkIndex, err = uniqueKey(ctx, conn, t); err != nil {
			return fmt.Errorf("postgres: unique indexes of %s: %w", t.ident, err)
		}
	}
	return nil
}

// nestArray returns the Flink type of an array column declared with dims
// dimensions: ARRAY<T> nested once per dimension past the first, as the
// encoder writes a value of that many dimensions (nested JSON arrays).
func nestArray(flink string, dims int) string {
	if !strings.HasPrefix(flink, "ARRAY<") {
		return flink
	}
	for ; dims > 1; dims-- {
		flink = "ARRAY<" + flink + ">"
	}
	return flink
}

// uniqueKey picks the snapshot key of a table without a primary key: the
// columns of a valid, non-partial unique index on plain NOT NULL columns
// whose types the snapshot can order. An index on exactly the columns of
// source.key_columns comes first, then the one with the fewest columns,
// then by name. It returns nil when there is none.
func uniqueKey(ctx context.Context, conn *pgx.Conn, t *tableMeta) ([]string, string, error) {
	rows, err := conn.Query(ctx, `
SELECT ic.relname, array_agg(a.attname ORDER BY k.ord), bool_and(a.attnotnull)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY ic.relname
ORDER BY count(*), ic.relname`, t.oid)
	if err != nil {
		return nil, "", err
	}
	type index struct {
		name    string
		cols    []string
		notNull bool
	}
	var found []index
	for rows.Next() {
		var ix index
		var notNull *bool
		if err := rows.Scan(&ix.name, &ix.cols, &notNull); err != nil {
			rows.Close()
			return nil, "", err
		}
		ix.notNull = notNull != nil && *notNull
		found = append(found, ix)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	orderable := func(cols []string) bool {
		for _, n := range cols {
			if c := t.col(n); c == nil || c.typ.order == orderNone {
				return false
			}
		}
		return true
	}
	best := -1
	for i, ix := range found {
		if !ix.notNull || !orderable(ix.cols) {
			continue
		}
		if t.kafka != nil && sameSet(ix.cols, t.kafka) {
			return ix.cols, ix.name, nil
		}
		if best < 0 {
			best = i
		}
	}
	if best < 0 {
		return nil, "", nil
	}
	return found[best].cols, found[best].name, nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// kafkaKey returns the Kafka key columns of t: source.key_columns, else the
// primary key; nil for a keyless table keyed by the whole row.
func (t *tableMeta) kafkaKey() []string {
	if t.kafka != nil {
		return t.kafka
	}
	return t.key
}

// checkKafkaKey reports a source.key_columns entry that the table cannot
// honour: a column it lacks, or, without REPLICA IDENTITY FULL, a column
// that deletes do not carry.
func (t *tableMeta) checkKafkaKey() error {
	for _, k := range t.kafka {
		if t.col(k) == nil {
			return fmt.Errorf("source.key_columns: table %s has no column %q", t.ident, k)
		}
		if t.identity != 'f' && !slices.Contains(t.key, k) {
			return fmt.Errorf("source.key_columns: column %q of %s is not in its primary key, so its deletes do not carry it; run ALTER TABLE %s REPLICA IDENTITY FULL, or choose primary-key columns", k, t.ident, t.ident)
		}
	}
	return nil
}

// snapshotRefusal is the line that refuses the snapshot of a table that has
// no key to read it by.
func (t *tableMeta) snapshotRefusal() error {
	return fmt.Errorf("postgres: table %s has no primary key and no unique index on NOT NULL columns, so its rows cannot be snapshotted in chunks; add a primary key or such a unique index (the snapshot reads by it), or set source.snapshot: never to stream it without its existing rows", t.ident)
}

func primaryKey(ctx context.Context, conn *pgx.Conn, oid uint32) ([]string, error) {
	rows, err := conn.Query(ctx, `
SELECT a.attname
FROM pg_catalog.pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisprimary
ORDER BY k.ord`, oid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// catalogTypes returns a typeResolver that asks pg_type, with a cache.
func catalogTypes(ctx context.Context, conn *pgx.Conn) typeResolver {
	cache := map[uint32]typeInfo{}
	return func(oid uint32) (typeInfo, error) {
		if ti, ok := cache[oid]; ok {
			return ti, nil
		}
		var ti typeInfo
		var typtype, category string
		err := conn.QueryRow(ctx, `SELECT typtype::text, typcategory::text, typelem, typbasetype, typname
FROM pg_catalog.pg_type WHERE oid = $1`, oid).Scan(&typtype, &category, &ti.elem, &ti.base, &ti.name)
		if err != nil {
			return ti, fmt.Errorf("postgres: look up type %d: %w", oid, err)
		}
		if typtype != "" {
			ti.typtype = typtype[0]
		}
		if category != "" {
			ti.category = category[0]
		}
		cache[oid] = ti
		return ti, nil
	}
}

// keyCompare returns the snapshot key order of t, or an error when a key
// column has a type whose order Go cannot reproduce.
func (t *tableMeta) keyCompare() (snapshot.Compare, error) {
	if len(t.chunk) == 0 {
		return nil, fmt.Errorf("table %s has no primary key and no unique index on NOT NULL columns", t.ident)
	}
	orders := make([]keyOrder, len(t.chunk))
	for i, k := range t.chunk {
		c := t.col(k)
		if c == nil {
			return nil, fmt.Errorf("key column %q of %s not found", k, t.ident)
		}
		if c.typ.order == orderNone {
			return nil, fmt.Errorf("key column %q of %s has type %s, which the snapshot cannot order", k, t.ident, c.typeName)
		}
		orders[i] = c.typ.order
	}
	return func(a, b snapshot.Key) int {
		for i, o := range orders {
			if c := o.compare(a[i], b[i]); c != 0 {
				return c
			}
		}
		return 0
	}, nil
}

func (t *tableMeta) col(name string) *colMeta {
	for i := range t.cols {
		if t.cols[i].name == name {
			return &t.cols[i]
		}
	}
	return nil
}

// Describe returns the schema of every captured table, for flink-ddl.
func (s *Source) Describe(ctx context.Context) ([]change.TableSchema, error) {
	conn, err := s.connectSQL(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	tables, err := s.listTables(ctx, conn, catalogTypes(ctx, conn))
	if err != nil {
		return nil, err
	}
	out := make([]change.TableSchema, 0, len(tables))
	for _, t := range tables {
		out = append(out, t.schemaOf())
	}
	return out, nil
}

// schemaOf returns the schema of t, as Describe shows it; its key is the
// Kafka key (source.key_columns, else the primary key).
func (t *tableMeta) schemaOf() change.TableSchema {
	ts := change.TableSchema{ID: t.id(), Key: append([]string(nil), t.kafkaKey()...)}
	for _, c := range t.cols {
		ts.Columns = append(ts.Columns, change.ColumnSchema{
			Name: c.name, SourceType: c.typeName, FlinkType: c.typ.flink, Nullable: !c.notNull,
		})
	}
	return ts
}
