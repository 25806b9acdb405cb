package mysql

import (
	"context"
	"fmt"
	"sort"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/change"
)

// captured reports whether db.tbl is in the include list. The watermark
// table never is.
func (s *Source) captured(db, tbl string) bool {
	if db == s.db && tbl == WatermarkTable {
		return false
	}
	for _, r := range s.include {
		if r.Matches(db, tbl) {
			return true
		}
	}
	return false
}

func (s *Source) isKeyless(db, tbl string) bool {
	for _, r := range s.keyless {
		if r.Matches(db, tbl) {
			return true
		}
	}
	return false
}

// tableInfo is a captured base table as information_schema describes it.
type tableInfo struct {
	db, name string
	rows     int64
	hasPK    bool
}

// Tables lists the captured tables, for the relay to create their topics
// (sources.TableLister).
func (s *Source) Tables(ctx context.Context) ([]change.TableID, error) {
	c, err := s.connectRetry(ctx)
	if err != nil {
		return nil, err
	}
	defer s.release(c)
	tables, err := s.listTables(ctx, c)
	if err != nil {
		return nil, s.classify(err)
	}
	ids := make([]change.TableID, len(tables))
	for i, t := range tables {
		ids[i] = change.TableID{Namespace: t.db, Name: t.name}
	}
	return ids, nil
}

// listTables returns the existing base tables that the include list
// covers, sorted by name.
func (s *Source) listTables(ctx context.Context, c *client.Conn) ([]tableInfo, error) {
	dbs := map[string]bool{}
	for _, r := range s.include {
		dbs[r.Namespace] = true
	}
	var out []tableInfo
	for db := range dbs {
		rows, err := queryRows(c, `SELECT TABLE_NAME, COALESCE(TABLE_ROWS, 0)
			FROM information_schema.TABLES WHERE TABLE_SCHEMA = `+quoteString(db)+` AND TABLE_TYPE = 'BASE TABLE'`)
		if err != nil {
			return nil, fmt.Errorf("mysql: list tables of %s: %w", db, err)
		}
		// One read of the database's primary keys: a subquery per table
		// made the list cost more per table the more tables there were.
		keyed, err := queryRows(c, `SELECT DISTINCT TABLE_NAME FROM information_schema.STATISTICS
			WHERE TABLE_SCHEMA = `+quoteString(db)+` AND INDEX_NAME = 'PRIMARY'`)
		if err != nil {
			return nil, fmt.Errorf("mysql: list the primary keys of %s: %w", db, err)
		}
		hasPK := make(map[string]bool, len(keyed))
		for _, r := range keyed {
			hasPK[r[0]] = true
		}
		for _, r := range rows {
			if !s.captured(db, r[0]) {
				continue
			}
			var n int64
			fmt.Sscan(r[1], &n)
			out = append(out, tableInfo{db: db, name: r[0], rows: n, hasPK: hasPK[r[0]]})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].db != out[j].db {
			return out[i].db < out[j].db
		}
		return out[i].name < out[j].name
	})
	return out, nil
}
