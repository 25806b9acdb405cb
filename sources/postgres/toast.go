package postgres

import (
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
)

// This file keeps a column from turning NULL on its way to a consumer.
//
// An update that leaves a TOASTed value unchanged sends it as "unchanged"
// without its value. Under REPLICA IDENTITY FULL the old row is logged
// whole, and the value is taken from it. Otherwise there is nothing to take
// it from: Debezium writes a placeholder string in its place, which Flink
// would store as data, and leaving the field out makes Flink, which reads
// rows whole, store NULL. Both change a value that the database still
// holds, so by default (source.unchanged_toast: refuse) such tables are
// refused at preflight and such an update stops the relay before its
// transaction reaches Kafka. With omit, the field is left out, for
// consumers that merge partial rows.

// toastColumns returns the columns of t whose values PostgreSQL can move out
// of line and that the column rules send.
func (s *Source) toastColumns(t *tableMeta) []string {
	var out []string
	for _, c := range t.cols {
		if c.toastable && s.rules.Keeps(t.id(), c.name) {
			out = append(out, c.name)
		}
	}
	return out
}

// checkIdentity adds the finding on the replica identity of a keyed table.
func (s *Source) checkIdentity(t *tableMeta, add func(sources.Level, string, string, ...any)) {
	subj := "table " + t.ident
	if t.identity == 'f' {
		add(sources.OK, subj, "primary key (%s), REPLICA IDENTITY FULL", strings.Join(t.key, ", "))
		return
	}
	toast := s.toastColumns(t)
	switch {
	case len(toast) > 0 && !s.omitToast:
		add(sources.Block, subj, "REPLICA IDENTITY is not FULL and %s can be TOASTed: an update that leaves such a value unchanged carries no value for it, which a consumer such as Flink would store as NULL; run ALTER TABLE %s REPLICA IDENTITY FULL (or set source.unchanged_toast: omit if every consumer merges partial rows)",
			strings.Join(toast, ", "), t.ident)
	case len(toast) > 0:
		add(sources.Warn, subj, "REPLICA IDENTITY is not FULL and source.unchanged_toast is omit: an update that leaves a TOASTed value of %s unchanged leaves that column out of after, which Flink reads as NULL, and before carries only the key columns; run ALTER TABLE %s REPLICA IDENTITY FULL for full images",
			strings.Join(toast, ", "), t.ident)
	default:
		add(sources.Warn, subj, "REPLICA IDENTITY is not FULL: update and delete events carry only the key columns in before; run ALTER TABLE %s REPLICA IDENTITY FULL for full images", t.ident)
	}
}

// warnIdentity warns, when the stream describes a captured table without
// REPLICA IDENTITY FULL that has TOASTable columns (a table created or
// altered since the preflight), that under refuse its first update leaving
// such a value unchanged will stop the relay.
func (r *runner) warnIdentity(rel *relation, t *tableMeta) {
	if rel.identity == 'f' || r.s.omitToast {
		return
	}
	if cols := r.s.toastColumns(t); len(cols) > 0 {
		r.s.log.Warn("postgres: captured table is not REPLICA IDENTITY FULL and has TOASTable columns; an update that leaves one of their values unchanged will stop the relay (source.unchanged_toast: refuse)",
			"table", rel.ident, "columns", strings.Join(cols, ","), "fix", "ALTER TABLE "+rel.ident+" REPLICA IDENTITY FULL")
	}
}

// unfilled returns the first column of an update's new tuple that came as
// unchanged TOAST with no full old value to fill it from and that the
// column rules send; "" when there is none.
func (s *Source) unfilled(rel *relation, m *pgMessage) string {
	for i, c := range m.new {
		if c.kind != 'u' || i >= len(rel.names) {
			continue
		}
		if m.oldKind == 'O' && i < len(m.old) && m.old[i].kind != 'u' {
			continue
		}
		if s.rules.Keeps(change.TableID{Namespace: rel.schema, Name: rel.name}, rel.names[i]) {
			return rel.names[i]
		}
	}
	return ""
}

// checkUnchangedToast applies source.unchanged_toast to the update being
// decoded. Under refuse it stops the relay: no event of the open source
// transaction has been committed, since the relay commits only at source
// transaction boundaries, so the position stays before this transaction.
// Under omit it warns once per table and Run.
func (r *runner) checkUnchangedToast(rel *relation, walStart pglogrepl.LSN) error {
	col := r.s.unfilled(rel, &r.msg)
	if col == "" {
		return nil
	}
	if !r.s.omitToast {
		return sources.Fatal(fmt.Errorf("postgres: the update of %s at %s leaves the TOASTed value of column %s unchanged and REPLICA IDENTITY is not FULL, so PostgreSQL sent no value for it; stopped before its transaction reached Kafka (source.unchanged_toast: refuse). Run ALTER TABLE %s REPLICA IDENTITY FULL; to pass this update, start once with source.unchanged_toast: omit, then re-snapshot it with cdcrelay snapshot --config <file> --table %s.%s",
			rel.ident, walStart, col, rel.ident, rel.schema, rel.name))
	}
	if !r.toastWarned[rel.ident] {
		if r.toastWarned == nil {
			r.toastWarned = map[string]bool{}
		}
		r.toastWarned[rel.ident] = true
		r.s.log.Warn("postgres: unchanged TOASTed value left out of the after image (source.unchanged_toast: omit); consumers that read rows whole read NULL", "table", rel.ident, "column", col, "lsn", walStart.String())
	}
	return nil
}
