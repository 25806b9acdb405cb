package postgres

import (
	"context"
	"fmt"

	"github.com/cdcrelay/cdcrelay/change"
)

// seedShapes gives the fingerprint the catalog's shape of every captured
// table the stored state does not know, so that the first checkpoint of a
// fresh start already covers them all.
func (r *runner) seedShapes() error {
	if err := r.schemas.Restore(r.st.Schemas); err != nil {
		return fmt.Errorf("postgres: stored schema digests: %w", err)
	}
	for _, t := range r.tables {
		cols := make([]change.ShapeColumn, len(t.cols))
		for i, c := range t.cols {
			cols[i] = change.ShapeColumn{Name: c.name, Type: c.typeName}
		}
		key := t.kafka
		if key == nil {
			key = t.key
		}
		if key == nil {
			key = t.names
		}
		r.schemas.Seed(t.id().String(), change.DescribeShape(cols, key))
	}
	return nil
}

// observeShape records the shape a Relation message gives a captured table,
// and logs and counts a change from the shape known before.
func (r *runner) observeShape(ctx context.Context, rel *relation, t *tableMeta, m *relationMsg) error {
	cols := make([]change.ShapeColumn, len(m.cols))
	if sameColumns(t, m) {
		for i, c := range t.cols {
			cols[i] = change.ShapeColumn{Name: c.name, Type: c.typeName}
		}
	} else {
		// The catalog has moved past this message's table version.
		oids := make([]uint32, len(m.cols))
		mods := make([]int32, len(m.cols))
		for i, c := range m.cols {
			oids[i], mods[i] = c.oid, c.typmod
		}
		rows, err := r.sql.Query(ctx, `SELECT pg_catalog.format_type(o, m)
FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS u(o, m, i) ORDER BY i`, oids, mods)
		if err != nil {
			return fmt.Errorf("postgres: type names of %s: %w", rel.ident, err)
		}
		i := 0
		for rows.Next() && i < len(cols) {
			cols[i].Name = m.cols[i].name
			if err := rows.Scan(&cols[i].Type); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: type names of %s: %w", rel.ident, err)
			}
			i++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: type names of %s: %w", rel.ident, err)
		}
	}
	id := change.TableID{Namespace: rel.schema, Name: rel.name}.String()
	shape := change.DescribeShape(cols, rel.kafkaNames)
	changed, was := r.schemas.Observe(id, shape)
	if !changed {
		return nil
	}
	r.s.m.SchemaChanges.WithLabelValues(r.s.m.Table(id)).Inc()
	if was == "" {
		was = "(not in this run; changed since the stored position)"
	}
	r.s.log.Warn("postgres: schema of "+id+" changed; regenerate Flink DDL with cdcrelay flink-ddl",
		"table", id, "columns", shape, "before", was, "fingerprint", r.schemas.Fingerprint())
	return nil
}
