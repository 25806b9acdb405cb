package mysql

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/sources"
)

// ddl handles a statement logged as text. Row events already carry the
// column names of their own table version, so decoding needs no schema
// history; the fingerprint follows each new version at its first TABLE_MAP
// (schema.go). What a statement changes here is which tables are captured
// and snapshotted:
//
//   - ALTER TABLE (columns, keys): later events carry the new shape.
//   - RENAME TABLE / ALTER TABLE ... RENAME: events follow the new name. A
//     table renamed out of the include list stops being captured; one
//     renamed into it is queued for a snapshot, so its new topic gets the
//     rows it brings.
//   - TRUNCATE: as format.truncate says (see truncated).
//   - DROP TABLE: logged; the table leaves the snapshot queue.
func (r *reader) ddl(ctx context.Context, h *replication.EventHeader, defaultDB, q string) error {
	toks := stmt(sqlTokens(q, 16))
	if len(toks) == 0 {
		return nil
	}
	switch toks.kw(0) {
	case "TRUNCATE":
		i := 1
		if toks.kw(1) == "TABLE" {
			i = 2
		}
		db, t, _ := tableName(toks, i, defaultDB)
		if r.s.captured(db, t) {
			return r.truncated(ctx, h, change.TableID{Namespace: db, Name: t})
		}
	case "DROP":
		r.dropTables(toks, defaultDB)
	case "RENAME":
		return r.renameTables(ctx, toks, defaultDB)
	case "ALTER":
		return r.alterTable(ctx, toks, defaultDB, q)
	}
	return nil
}

// stmt is the first tokens of a statement.
type stmt []string

// kw returns token i in upper case, "" past the end.
func (s stmt) kw(i int) string { return strings.ToUpper(kwAt(s, i)) }

// dropTables handles DROP TABLE: the captured tables among those dropped
// leave the snapshot queue.
func (r *reader) dropTables(toks stmt, defaultDB string) {
	if toks.kw(1) != "TABLE" && !(toks.kw(1) == "TEMPORARY" && toks.kw(2) == "TABLE") {
		return
	}
	i := 2
	if toks.kw(1) == "TEMPORARY" {
		return
	}
	if toks.kw(i) == "IF" && toks.kw(i+1) == "EXISTS" {
		i += 2
	}
	for i < len(toks) {
		db, t, n := tableName(toks, i, defaultDB)
		if n == 0 {
			break
		}
		i += n
		if r.s.captured(db, t) {
			r.s.log.Warn("mysql: captured table dropped; it is no longer captured", "table", db+"."+t)
			r.forget(db + "." + t)
		}
		if i < len(toks) && toks[i] == "," {
			i++
			continue
		}
		break
	}
}

// renameTables handles RENAME TABLE a TO b[, c TO d ...].
func (r *reader) renameTables(ctx context.Context, toks stmt, defaultDB string) error {
	if toks.kw(1) != "TABLE" {
		return nil
	}
	i := 2
	for i < len(toks) {
		db1, t1, n := tableName(toks, i, defaultDB)
		if n == 0 || !strings.EqualFold(kwAt(toks, i+n), "TO") {
			break
		}
		i += n + 1
		db2, t2, m := tableName(toks, i, defaultDB)
		if m == 0 {
			break
		}
		i += m
		if err := r.renamed(ctx, db1, t1, db2, t2); err != nil {
			return err
		}
		if i < len(toks) && toks[i] == "," {
			i++
			continue
		}
		break
	}
	return nil
}

// alterTable handles ALTER TABLE: a rename of the table, or a change of
// its shape, which later events carry.
func (r *reader) alterTable(ctx context.Context, toks stmt, defaultDB, q string) error {
	i := 1
	for toks.kw(i) == "ONLINE" || toks.kw(i) == "IGNORE" {
		i++
	}
	if toks.kw(i) != "TABLE" {
		return nil
	}
	db, t, n := tableName(toks, i+1, defaultDB)
	if n == 0 {
		return nil
	}
	j := i + 1 + n
	if toks.kw(j) == "RENAME" && toks.kw(j+1) != "COLUMN" && toks.kw(j+1) != "INDEX" && toks.kw(j+1) != "KEY" {
		k := j + 1
		if toks.kw(k) == "TO" || toks.kw(k) == "AS" {
			k++
		}
		if db2, t2, m := tableName(toks, k, db); m > 0 {
			return r.renamed(ctx, db, t, db2, t2)
		}
	}
	if r.s.captured(db, t) {
		r.s.log.Info("mysql: schema change on a captured table; later events carry the new columns", "table", db+"."+t, "statement", truncate(q, 200))
	}
	return nil
}

// truncated handles a TRUNCATE of a captured table as format.truncate says:
// skip it (a warning and a count; consumers keep the rows until they are
// deleted), send a truncate event, or stop before it. A chunk of the table
// whose window is open drops its rows in every case: they no longer exist.
func (r *reader) truncated(ctx context.Context, h *replication.EventHeader, id change.TableID) error {
	if r.snap != nil {
		r.snap.Truncated(id.String())
	}
	switch r.s.cfg.Format.Truncate {
	case config.TruncateFail:
		return sources.Fatal(fmt.Errorf("mysql: TRUNCATE of %s after %s, and format.truncate is fail; the position stays before it. Set format.truncate to skip or event to pass it, or re-sync the table afterwards", id, r.st.label()))
	case config.TruncateEvent:
		r.events++
		r.txnRows++
		if r.skip > 0 {
			r.skip-- // sent before the stream was lost
			return nil
		}
		src := change.Source{Connector: "mysql", Name: r.s.cfg.ID, DB: id.Namespace, Table: id.Name,
			TsMs: int64(h.Timestamp) * 1000, File: r.st.File, GTID: r.gtid, ServerID: h.ServerID, Thread: r.thread}
		if h.LogPos >= h.EventSize {
			src.Pos = uint64(h.LogPos - h.EventSize)
		}
		ev := r.alloc.Events.New()
		*ev = change.Event{Table: id, Op: change.OpTruncate, Source: src, Position: []byte(r.gtid)}
		return r.send(ctx, change.Message{Event: ev})
	}
	r.s.m.TruncatesSkipped.WithLabelValues(id.String()).Inc()
	r.s.log.Warn("mysql: TRUNCATE not sent to Kafka (format.truncate: skip); consumers keep the table's rows", "table", id.String(), "position", r.st.label())
	return nil
}

func kwAt(toks []string, i int) string {
	if i < len(toks) {
		return toks[i]
	}
	return ""
}

func (r *reader) renamed(ctx context.Context, db1, t1, db2, t2 string) error {
	was, is := r.s.captured(db1, t1), r.s.captured(db2, t2)
	from, to := db1+"."+t1, db2+"."+t2
	if was {
		r.forget(from)
	}
	switch {
	case was && !is:
		r.s.log.Warn("mysql: captured table renamed out of the include list; it is no longer captured", "from", from, "to", to)
	case is:
		r.s.log.Info("mysql: table renamed into the include list; queueing a snapshot of it", "from", from, "to", to)
		return r.enqueue(to)
	}
	return nil
}

// forget takes a table out of the snapshot queue, unless a chunk of it is
// in flight (its reads then find no rows and the table finishes).
func (r *reader) forget(table string) {
	r.schemas.Forget(table)
	if r.snap != nil {
		r.snap.Forget(table)
	}
}

// tableName reads [db.]name at toks[i:], returning how many tokens it took.
func tableName(toks []string, i int, defaultDB string) (db, name string, n int) {
	if i >= len(toks) || !isIdent(toks[i]) {
		return "", "", 0
	}
	a := unquoteIdent(toks[i])
	if i+2 < len(toks) && toks[i+1] == "." && isIdent(toks[i+2]) {
		return a, unquoteIdent(toks[i+2]), 3
	}
	return defaultDB, a, 1
}

func isIdent(t string) bool {
	if t == "" {
		return false
	}
	if t[0] == '`' {
		return true
	}
	r := rune(t[0])
	return unicode.IsLetter(r) || r == '_' || unicode.IsDigit(r) || r >= 0x80
}

func unquoteIdent(t string) string {
	if len(t) >= 2 && t[0] == '`' && t[len(t)-1] == '`' {
		return strings.ReplaceAll(t[1:len(t)-1], "``", "`")
	}
	return t
}

// sqlTokens splits the first max tokens of a statement: words, `quoted`
// identifiers and single punctuation characters; comments and string
// literals are skipped.
func sqlTokens(q string, max int) []string {
	var toks []string
	for i := 0; i < len(q) && len(toks) < max; {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#' || (c == '-' && strings.HasPrefix(q[i:], "-- ")):
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case strings.HasPrefix(q[i:], "/*"):
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return toks
			}
			i += end + 4
		case c == '`':
			j := i + 1
			for j < len(q) {
				if q[j] == '`' {
					if j+1 < len(q) && q[j+1] == '`' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			toks = append(toks, q[i:min(j+1, len(q))])
			i = j + 1
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) && q[j] != c {
				if q[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '_' || c == '$' || c >= 0x80 || unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)):
			j := i
			for j < len(q) && (q[j] == '_' || q[j] == '$' || q[j] >= 0x80 || unicode.IsLetter(rune(q[j])) || unicode.IsDigit(rune(q[j]))) {
				j++
			}
			toks = append(toks, q[i:j])
			i = j
		default:
			toks = append(toks, q[i:i+1])
			i++
		}
	}
	return toks
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
