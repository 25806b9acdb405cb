package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// tableDDL creates a table of about 300-byte rows with REPLICA IDENTITY
// FULL, as debezium-json wants full before-images.
func tableDDL(name string) string {
	return fmt.Sprintf(`CREATE TABLE public.%[1]s (
  id bigint PRIMARY KEY,
  customer text NOT NULL,
  status text NOT NULL,
  qty integer NOT NULL,
  amount numeric(12,2) NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  note text NOT NULL,
  payload text NOT NULL
);
ALTER TABLE public.%[1]s REPLICA IDENTITY FULL`, name)
}

// insertSQL inserts ids $1..$2 (inclusive); each row is about 300 bytes.
func insertSQL(table string) string {
	return `INSERT INTO public.` + table + ` SELECT g, 'customer-' || (g % 100000), 'new', (g % 1000)::int, (g % 100000) * 1.25,
  now(), now(), 'order note ' || g || ' shipped by ground', repeat(md5(g::text), 6)
FROM generate_series($1::bigint, $2::bigint) g`
}

func (b *bench) pgConn(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, b.pgDSN)
}

func (b *bench) pgExec(ctx context.Context, sql string, args ...any) error {
	c, err := b.pgConn(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql, args...)
	return err
}

func (b *bench) pgLSN(ctx context.Context, q string) (uint64, error) {
	c, err := b.pgConn(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	var s string
	if err := c.QueryRow(ctx, q).Scan(&s); err != nil {
		return 0, err
	}
	return parseLSN(s), nil
}

// mixResult tells where a mixed workload ended.
type mixResult struct {
	changes  int
	lastLSN  uint64 // insert LSN inside the last transaction, before its commit
	finalLSN uint64 // pg_current_wal_lsn() after the last commit
	took     time.Duration
}

// writeMix writes changes row changes into table in transactions of 100:
// 70 inserts, 20 updates of rows of the previous transaction, 10 deletes
// of rows of the previous transaction.
func (b *bench) writeMix(ctx context.Context, table string, changes int) (mixResult, error) {
	var res mixResult
	c, err := b.pgConn(ctx)
	if err != nil {
		return res, err
	}
	defer c.Close(context.Background())
	ins := insertSQL(table)
	upd := `UPDATE public.` + table + ` SET status = 'paid', qty = qty + 1, amount = amount + 1, updated_at = now() WHERE id BETWEEN $1 AND $2`
	del := `DELETE FROM public.` + table + ` WHERE id BETWEEN $1 AND $2`
	start := time.Now()
	ntx := changes / 100
	for k := 0; k < ntx; k++ {
		// Transaction k inserts ids 70k+1..70k+70, then updates 20 and
		// deletes 10 rows of transaction k-1 (the first one touches its
		// own rows, deleting ones the second leaves alone).
		base := int64(70 * k)
		prev, delFrom := base-70, base-70+61
		if k == 0 {
			prev, delFrom = 0, 51
		}
		batch := &pgx.Batch{}
		batch.Queue("BEGIN")
		batch.Queue(ins, base+1, base+70)
		batch.Queue(upd, prev+21, prev+40)
		batch.Queue(del, delFrom, delFrom+9)
		last := k == ntx-1
		if last {
			batch.Queue("SELECT pg_current_wal_insert_lsn()::text")
		}
		batch.Queue("COMMIT")
		br := c.SendBatch(ctx, batch)
		for i := 0; i < batch.Len(); i++ {
			if last && i == batch.Len()-2 {
				var s string
				if err := br.QueryRow().Scan(&s); err != nil {
					br.Close()
					return res, err
				}
				res.lastLSN = parseLSN(s)
				continue
			}
			if _, err := br.Exec(); err != nil {
				br.Close()
				return res, fmt.Errorf("write mix: %w", err)
			}
		}
		if err := br.Close(); err != nil {
			return res, err
		}
		res.changes += 100
	}
	res.took = time.Since(start)
	var s string
	if err := c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		return res, err
	}
	res.finalLSN = parseLSN(s)
	return res, nil
}

// fillTable inserts rows 1..n in transactions of 100,000 rows.
func (b *bench) fillTable(ctx context.Context, table string, n int) error {
	c, err := b.pgConn(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for lo := 1; lo <= n; lo += 100000 {
		hi := min(n, lo+99999)
		if _, err := c.Exec(ctx, insertSQL(table), lo, hi); err != nil {
			return err
		}
	}
	_, err = c.Exec(ctx, "VACUUM ANALYZE public."+table)
	return err
}

// recvlogical drains slot with pg_recvlogical up to endpos into /dev/null.
// It also returns the CPU time pg_recvlogical itself used.
func (b *bench) recvlogical(ctx context.Context, slot, publication string, endpos uint64) (time.Duration, time.Duration, error) {
	bin := filepath.Join(pgBinDir, "pg_recvlogical")
	args := []string{
		"-d", b.pgDSN, "--slot", slot, "--start", "--no-loop",
		"-o", "proto_version=1", "-o", "publication_names=" + publication,
		"--plugin=pgoutput", "-f", "/dev/null", "--endpos", fmtLSN(endpos),
		"-s", "10",
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("pg_recvlogical: %v\n%s", err, out)
	}
	return took, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// copyOut reads the whole table with COPY TO STDOUT into io.Discard.
func (b *bench) copyOut(ctx context.Context, table string) (time.Duration, int64, error) {
	c, err := b.pgConn(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close(context.Background())
	start := time.Now()
	tag, err := c.PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT * FROM public."+table+") TO STDOUT")
	if err != nil {
		return 0, 0, err
	}
	return time.Since(start), tag.RowsAffected(), nil
}

// tableReads is seq_tup_read + idx_tup_fetch of table.
func (b *bench) tableReads(ctx context.Context, table string) (int64, error) {
	c, err := b.pgConn(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	var n int64
	err = c.QueryRow(ctx, `SELECT coalesce(seq_tup_read,0) + coalesce(idx_tup_fetch,0) FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = $1`, table).Scan(&n)
	return n, err
}

// createSlot creates a pgoutput slot; it returns once the slot is
// consistent.
func (b *bench) createSlot(ctx context.Context, slot string) error {
	return b.pgExec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot)
}

func (b *bench) dropSlot(ctx context.Context, slot string) {
	_ = b.pgExec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
}

func itoa(i int) string { return strconv.Itoa(i) }
