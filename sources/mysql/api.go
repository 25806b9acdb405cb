package mysql

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/sources"
)

var _ sources.Source = (*Source)(nil)

// Ack records the position committed in Kafka. MySQL keeps no replica
// position on the server, so this only feeds the lag metric and logs; it
// never blocks.
func (s *Source) Ack(cp *change.Checkpoint) {
	if cp == nil {
		return
	}
	for {
		cur := s.ackedSeq.Load()
		if cp.Seq <= cur || s.ackedSeq.CompareAndSwap(cur, cp.Seq) {
			break
		}
	}
	var st state
	if json.Unmarshal(cp.State, &st) != nil {
		return
	}
	s.mu.Lock()
	s.acked = &st
	s.mu.Unlock()
}

// Acked returns the label of the last acknowledged position, "" if none.
func (s *Source) Acked() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acked == nil {
		return ""
	}
	return s.acked.label()
}

// watermarkDDL creates the watermark table. One row per (source, kind):
// kind "mark" holds the last snapshot watermark, kind "snapshot" the last
// on-demand snapshot request; seq changes on every write so that each write
// is a row change in the binlog.
func (s *Source) watermarkDDL() string {
	return "CREATE TABLE IF NOT EXISTS " + quoteTable(s.db, WatermarkTable) + ` (
  source_id VARCHAR(64) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  value VARCHAR(1024) NOT NULL,
  seq BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (source_id, kind)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='cdcrelay snapshot watermarks and requests'`
}

// Setup creates the watermark table in the DSN's database when it is
// missing and snapshots use it (see snapshotMode). It is one CREATE TABLE
// IF NOT EXISTS statement, so it either happens whole or not at all. The
// table holds no position, so resuming changes nothing here.
func (s *Source) Setup(ctx context.Context, resuming bool) error {
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer s.release(c)
	mariadb, err := isMariaDB(c)
	if err != nil {
		return err
	}
	mode, why, err := s.snapshotMode(c, mariadb)
	if err != nil {
		return err
	}
	if mode == markBinlog {
		s.log.Info("mysql: snapshots write nothing to the server; the watermark table is not created", "why", why)
		return nil
	}
	if _, err := c.Execute(s.watermarkDDL()); err != nil {
		return fmt.Errorf("mysql: create %s.%s: %w (grant CREATE, INSERT, UPDATE on %s.* or create the table as shown in docs/mysql.md)",
			s.db, WatermarkTable, err, s.db)
	}
	return nil
}

// RequestSnapshot asks the running relay to snapshot one table again, by
// writing a request row into the watermark table; the relay reads it from
// the binlog, in order with the changes around it, and queues the table.
func (s *Source) RequestSnapshot(ctx context.Context, table string) error {
	ref, err := config.ParseTable(table)
	if err != nil {
		return fmt.Errorf("mysql: snapshot table: %v", err)
	}
	if ref.Name == "*" || !s.captured(ref.Namespace, ref.Name) {
		return fmt.Errorf("mysql: table %s is not captured (not in source.tables)", table)
	}
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer s.release(c)
	_, err = c.Execute("INSERT INTO " + quoteTable(s.db, WatermarkTable) +
		" (source_id, kind, value, seq) VALUES (" + quoteString(s.cfg.ID) + ", 'snapshot', " +
		quoteString(ref.Namespace+"."+ref.Name) + ", 1) ON DUPLICATE KEY UPDATE value = VALUES(value), seq = seq + 1")
	if err != nil {
		return fmt.Errorf("mysql: write the snapshot request: %w", err)
	}
	return nil
}

// Describe returns the schema of every captured table that exists now.
func (s *Source) Describe(ctx context.Context) ([]change.TableSchema, error) {
	c, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer s.release(c)
	tables, err := s.listTables(ctx, c)
	if err != nil {
		return nil, err
	}
	out := make([]change.TableSchema, 0, len(tables))
	for _, t := range tables {
		// The Kafka key: source.key_columns, else the primary key, else
		// the implicit one (see snapshotKey).
		cols, key, index, implicit, err := s.snapshotKey(c, t.db, t.name)
		if err != nil {
			return nil, err
		}
		if index != "" {
			key = implicit // nil: keyed by the whole row
		}
		ts := schemaOf(t.db, t.name, cols, key)
		if chosen := s.cfg.Source.KeyColumnsFor(t.db, t.name); chosen != nil {
			ts.Key = append([]string(nil), chosen...)
		}
		out = append(out, ts)
	}
	return out, nil
}

// schemaOf returns the schema of db.name, as Describe shows it.
func schemaOf(db, name string, cols []column, key []int) change.TableSchema {
	ts := change.TableSchema{ID: change.TableID{Namespace: db, Name: name}}
	for _, col := range cols {
		ts.Columns = append(ts.Columns, change.ColumnSchema{
			Name: col.name, SourceType: col.columnType, FlinkType: FlinkType(col.dataType, col.columnType), Nullable: col.nullable,
		})
	}
	for _, k := range key {
		ts.Key = append(ts.Key, cols[k].name)
	}
	return ts
}

// typeArgs reads "name(a,b)" from a COLUMN_TYPE.
func typeArgs(ct string, defA, defB int) (int, int) {
	i := strings.IndexByte(ct, '(')
	j := strings.IndexByte(ct, ')')
	if i < 0 || j < i {
		return defA, defB
	}
	a, b := defA, defB
	parts := strings.Split(ct[i+1:j], ",")
	fmt.Sscan(strings.TrimSpace(parts[0]), &a)
	if len(parts) > 1 {
		fmt.Sscan(strings.TrimSpace(parts[1]), &b)
	}
	return a, b
}
