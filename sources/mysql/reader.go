package mysql

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// rowReader is the MySQL/MariaDB sources.RowReader: the snapshot's chunk
// query and text-protocol encoders (dialect.readRows) on a connection of
// its own.
type rowReader struct {
	s       *Source
	c       *client.Conn
	d       *dialect
	refused map[change.TableID]string
}

var _ sources.RowReader = (*rowReader)(nil)

// OpenRowReader opens a connection that reads the captured tables the way
// the snapshot does, for verify.
func (s *Source) OpenRowReader(ctx context.Context) (sources.RowReader, error) {
	c, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	// TIMESTAMP values are read as UTC, as the snapshot reads them.
	if _, err := c.Execute("SET time_zone = '+00:00'"); err != nil {
		s.release(c)
		return nil, fmt.Errorf("mysql: set time_zone: %w", err)
	}
	return &rowReader{s: s, c: c, d: &dialect{s: s, c: c}, refused: map[change.TableID]string{}}, nil
}

func (rr *rowReader) Close() error {
	rr.s.release(rr.c)
	return nil
}

func (rr *rowReader) Tables(ctx context.Context) ([]change.TableSchema, error) {
	tables, err := rr.s.listTables(ctx, rr.c)
	if err != nil {
		return nil, err
	}
	out := make([]change.TableSchema, 0, len(tables))
	for _, t := range tables {
		cols, key, err := tableColumns(rr.c, t.db, t.name)
		if err != nil {
			return nil, err
		}
		ts := schemaOf(t.db, t.name, cols, key)
		if why := rr.s.cfg.Source.VerifyRefusal(t.db, t.name); why != "" {
			rr.refused[ts.ID] = why
		} else if why := refusal(cols, key); why != "" {
			rr.refused[ts.ID] = why
		} else if _, err := rr.d.compare(t.db + "." + t.name); err != nil {
			rr.refused[ts.ID] = err.Error()
		}
		out = append(out, ts)
	}
	return out, nil
}

// refusal says why a table cannot be compared, "" when it can.
func refusal(cols []column, key []int) string {
	if len(key) == 0 {
		return "no primary key, so it cannot be read in key order"
	}
	for _, c := range cols {
		if typeOf(c.dataType).spatial {
			return fmt.Sprintf("column %s has the spatial type %s, which verify does not compare", c.name, c.dataType)
		}
	}
	return ""
}

func (rr *rowReader) table(id change.TableID) (string, error) {
	if why, ok := rr.refused[id]; ok {
		return "", &sources.RefusedError{Table: id, Reason: why}
	}
	if rr.d.kinds[id.Namespace+"."+id.Name] == nil {
		return "", fmt.Errorf("mysql: table %s not listed", id)
	}
	return id.Namespace + "." + id.Name, nil
}

func (rr *rowReader) ReadChunk(ctx context.Context, id change.TableID, after snapshot.Key, limit int) ([]snapshot.Row, error) {
	table, err := rr.table(id)
	if err != nil {
		return nil, err
	}
	cmp := ""
	if after != nil {
		cmp = ">"
	}
	return rr.d.readRows(table, cmp, after, limit)
}

func (rr *rowReader) Estimate(ctx context.Context, id change.TableID) (int64, error) {
	table, err := rr.table(id)
	if err != nil {
		return 0, err
	}
	return rr.d.Estimate(ctx, table)
}

func (rr *rowReader) ReadKeys(ctx context.Context, id change.TableID, keys [][]byte) ([]*change.Event, error) {
	table, err := rr.table(id)
	if err != nil {
		return nil, err
	}
	cols, keyCols, err := tableColumns(rr.c, id.Namespace, id.Name)
	if err != nil {
		return nil, err
	}
	var out []*change.Event
	for _, k := range keys {
		// A snapshot key is the JSON of each key column, as the event key
		// holds it.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(k, &m); err != nil {
			return nil, fmt.Errorf("mysql: key %s: %w", k, err)
		}
		key := make(snapshot.Key, len(keyCols))
		for i, c := range keyCols {
			v, ok := m[cols[c].name]
			if !ok {
				return nil, fmt.Errorf("mysql: key %s lacks column %s", k, cols[c].name)
			}
			key[i] = string(v)
		}
		rows, err := rr.d.readRows(table, "=", key, 1)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			out = append(out, r.Event)
		}
	}
	return out, nil
}

// Mark reads MariaDB's @@gtid_binlog_pos, or the binlog file and position,
// and compares positions of the same form.
func (rr *rowReader) Mark(ctx context.Context) (string, func(string) bool, error) {
	if row, ok, err := queryRow(rr.c, "SELECT @@gtid_binlog_pos"); err == nil && ok && first(row) != "" {
		label := first(row)
		want := mariaSeqs(label)
		return label, func(pos string) bool {
			got := mariaSeqs(pos)
			if len(got) == 0 {
				return false
			}
			for dom, seq := range want {
				if got[dom] < seq {
					return false
				}
			}
			return true
		}, nil
	}
	row, ok, err := queryRow(rr.c, "SHOW MASTER STATUS")
	if err != nil || !ok || len(row) < 2 {
		return "", nil, fmt.Errorf("mysql: read the binlog position: %v", err)
	}
	file, pos := row[0], row[1]
	p, _ := strconv.ParseUint(pos, 10, 64)
	return file + ":" + pos, func(label string) bool {
		f, ps, ok := strings.Cut(label, ":")
		n, _ := strconv.ParseUint(ps, 10, 64)
		return ok && (f > file || f == file && n >= p)
	}, nil
}

// mariaSeqs reads "domain-server-seq,..." into domain -> seq.
func mariaSeqs(s string) map[string]uint64 {
	out := map[string]uint64{}
	for _, g := range strings.Split(s, ",") {
		p := strings.Split(strings.TrimSpace(g), "-")
		if len(p) == 3 {
			n, _ := strconv.ParseUint(p[2], 10, 64)
			out[p[0]] = n
		}
	}
	return out
}
