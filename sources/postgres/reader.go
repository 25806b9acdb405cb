package postgres

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// rowReader is the PostgreSQL sources.RowReader: the snapshot's chunk
// query and row encoding (dialect.readRows) on a connection of its own.
type rowReader struct {
	r *runner // only s, sql, db and tables are set
}

var _ sources.RowReader = (*rowReader)(nil)

// OpenRowReader opens a connection that reads the captured tables the way
// the snapshot does, for verify.
func (s *Source) OpenRowReader(ctx context.Context) (sources.RowReader, error) {
	conn, err := s.connectSQL(ctx)
	if err != nil {
		return nil, err
	}
	r := &runner{s: s, sql: conn, tables: map[string]*tableMeta{}}
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&r.db); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("postgres: current database: %w", err)
	}
	return &rowReader{r: r}, nil
}

func (rr *rowReader) Close() error { return rr.r.sql.Close(context.Background()) }

func (rr *rowReader) Tables(ctx context.Context) ([]change.TableSchema, error) {
	tables, err := rr.r.s.listTables(ctx, rr.r.sql, catalogTypes(ctx, rr.r.sql))
	if err != nil {
		return nil, err
	}
	out := make([]change.TableSchema, 0, len(tables))
	for _, t := range tables {
		rr.r.tables[t.ident] = t
		out = append(out, t.schemaOf())
	}
	return out, nil
}

func (rr *rowReader) table(id change.TableID) (*tableMeta, error) {
	t := rr.r.tables[pgx.Identifier{id.Namespace, id.Name}.Sanitize()]
	if t == nil {
		return nil, fmt.Errorf("postgres: table %s not listed", id)
	}
	if len(t.key) == 0 {
		return nil, &sources.RefusedError{Table: id, Reason: "no primary key, so it cannot be read in key order"}
	}
	if why := rr.r.s.cfg.VerifyRefusal(t.schema, t.name); why != "" {
		return nil, &sources.RefusedError{Table: id, Reason: why}
	}
	return t, nil
}

func (rr *rowReader) ReadChunk(ctx context.Context, id change.TableID, after snapshot.Key, limit int) ([]snapshot.Row, error) {
	t, err := rr.table(id)
	if err != nil {
		return nil, err
	}
	cmp := ""
	if after != nil {
		cmp = ">"
	}
	return dialect{r: rr.r}.readRows(ctx, t, cmp, after, limit)
}

func (rr *rowReader) Estimate(ctx context.Context, id change.TableID) (int64, error) {
	t, err := rr.table(id)
	if err != nil {
		return 0, err
	}
	return dialect{r: rr.r}.Estimate(ctx, t.ident)
}

func (rr *rowReader) ReadKeys(ctx context.Context, id change.TableID, keys [][]byte) ([]*change.Event, error) {
	t, err := rr.table(id)
	if err != nil {
		return nil, err
	}
	var out []*change.Event
	for _, k := range keys {
		key, err := eventKeyText(t, k)
		if err != nil {
			return nil, err
		}
		rows, err := dialect{r: rr.r}.readRows(ctx, t, "=", key, 1)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			out = append(out, row.Event)
		}
	}
	return out, nil
}

// eventKeyText turns an event key back into the text of each key column, as a
// query parameter: strings as they are (bytea from base64 to \x hex),
// numbers and booleans as their JSON text.
func eventKeyText(t *tableMeta, key []byte) (snapshot.Key, error) {
	d := json.NewDecoder(bytes.NewReader(key))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("postgres: key %s: %w", key, err)
	}
	out := make(snapshot.Key, len(t.key))
	for i, k := range t.key {
		switch x := m[k].(type) {
		case string:
			out[i] = x
			if c := t.col(k); c != nil && c.oid == oidBytea {
				raw, err := base64.StdEncoding.DecodeString(x)
				if err != nil {
					return nil, fmt.Errorf("postgres: key %s: column %s: %w", key, k, err)
				}
				out[i] = `\x` + hex.EncodeToString(raw)
			}
		case json.Number:
			out[i] = string(x)
		case bool:
			out[i] = strconv.FormatBool(x)
		default:
			return nil, fmt.Errorf("postgres: key %s: column %s cannot be read back", key, k)
		}
	}
	return out, nil
}

func (rr *rowReader) Mark(ctx context.Context) (string, func(string) bool, error) {
	var s string
	if err := rr.r.sql.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		return "", nil, fmt.Errorf("postgres: current WAL position: %w", err)
	}
	at, err := pglogrepl.ParseLSN(s)
	if err != nil {
		return "", nil, err
	}
	return s, func(pos string) bool {
		got, err := pglogrepl.ParseLSN(pos)
		return err == nil && got >= at
	}, nil
}
