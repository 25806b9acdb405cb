package checker

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Postgres is the workload's PostgreSQL dialect: tables in schema public of
// the database the DSN names.
type Postgres struct{ DSN string }

// NewPostgres returns the dialect for dsn (with its password, if any).
func NewPostgres(dsn string) *Postgres { return &Postgres{DSN: dsn} }

func (p *Postgres) Connect(ctx context.Context) (Session, error) {
	c, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		return nil, err
	}
	return &pgSession{c: c}, nil
}

func (p *Postgres) Quote(name string) string { return "public." + pgx.Identifier{name}.Sanitize() }

func (p *Postgres) CreateTable(name string) []string {
	q := p.Quote(name)
	return []string{
		"CREATE TABLE IF NOT EXISTS " + q + " (id bigint PRIMARY KEY, ver bigint NOT NULL, txid bigint NOT NULL, pad text)",
		"ALTER TABLE " + q + " REPLICA IDENTITY FULL",
	}
}

func (p *Postgres) Ledger() []string {
	return []string{"CREATE TABLE IF NOT EXISTS " + p.Quote(LedgerTable) + " (txid bigint PRIMARY KEY, writes text NOT NULL)"}
}

type pgSession struct {
	c  *pgx.Conn
	tx pgx.Tx
}

// pgSQL turns ? placeholders into $n.
func pgSQL(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *pgSession) Begin(ctx context.Context) error {
	tx, err := s.c.Begin(ctx)
	s.tx = tx
	return err
}

func (s *pgSession) Commit(ctx context.Context) error {
	if s.tx == nil {
		return fmt.Errorf("checker: commit without begin")
	}
	err := s.tx.Commit(ctx)
	s.tx = nil
	return err
}

func (s *pgSession) Rollback(ctx context.Context) error {
	if s.tx == nil {
		return nil
	}
	err := s.tx.Rollback(ctx)
	s.tx = nil
	return err
}

func (s *pgSession) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := s.c.Exec(ctx, pgSQL(q), args...)
	return tag.RowsAffected(), err
}

func (s *pgSession) Query(ctx context.Context, q string, args ...any) ([][]string, error) {
	rows, err := s.c.Query(ctx, pgSQL(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		r := make([]string, len(vals))
		for i, v := range vals {
			r[i] = fmt.Sprint(v)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *pgSession) Close() { _ = s.c.Close(context.Background()) }
