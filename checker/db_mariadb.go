package checker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// MariaDB is the workload's MySQL/MariaDB dialect: tables in database DB.
type MariaDB struct {
	Addr, User, Password, DB string
}

// NewMariaDB returns the dialect for a server at addr (host:port).
func NewMariaDB(addr, user, password, db string) *MariaDB {
	return &MariaDB{Addr: addr, User: user, Password: password, DB: db}
}

func (m *MariaDB) Connect(ctx context.Context) (Session, error) {
	c, err := client.ConnectWithContext(ctx, m.Addr, m.User, m.Password, m.DB, 10*time.Second, func(c *client.Conn) error {
		c.ReadTimeout = 2 * time.Minute
		c.WriteTimeout = 2 * time.Minute
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &myTx{c: c}, nil
}

func (m *MariaDB) Quote(name string) string {
	return "`" + strings.ReplaceAll(m.DB, "`", "``") + "`.`" + strings.ReplaceAll(name, "`", "``") + "`"
}

func (m *MariaDB) CreateTable(name string) []string {
	return []string{"CREATE TABLE IF NOT EXISTS " + m.Quote(name) + " (id BIGINT PRIMARY KEY, ver BIGINT NOT NULL, txid BIGINT NOT NULL, pad TEXT) ENGINE=InnoDB"}
}

func (m *MariaDB) Ledger() []string {
	return []string{"CREATE TABLE IF NOT EXISTS " + m.Quote(LedgerTable) + " (txid BIGINT PRIMARY KEY, writes LONGTEXT NOT NULL) ENGINE=InnoDB"}
}

type myTx struct{ c *client.Conn }

func (s *myTx) Begin(context.Context) error    { return s.c.Begin() }
func (s *myTx) Commit(context.Context) error   { return s.c.Commit() }
func (s *myTx) Rollback(context.Context) error { return s.c.Rollback() }

func (s *myTx) Exec(_ context.Context, q string, args ...any) (int64, error) {
	r, err := s.c.Execute(q, args...)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return int64(r.AffectedRows), nil
}

func (s *myTx) Query(_ context.Context, q string, args ...any) ([][]string, error) {
	r, err := s.c.Execute(q, args...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make([][]string, 0, len(r.Values))
	for i := range r.Values {
		row := make([]string, len(r.Values[i]))
		for j := range r.Values[i] {
			v, err := r.GetString(i, j)
			if err != nil {
				return nil, fmt.Errorf("checker: row %d column %d: %w", i, j, err)
			}
			row[j] = v
		}
		out = append(out, row)
	}
	return out, nil
}

func (s *myTx) Close() { _ = s.c.Close() }
