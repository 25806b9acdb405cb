package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// bigTxnScenario drains one source transaction of bigRows inserted rows.
func (b *bench) bigTxnScenario(ctx context.Context) []result {
	r := result{Scenario: fmt.Sprintf("one %d-row transaction (pg)", b.bigRows), Rows: b.bigRows}
	err := func() error {
		const table = "big"
		if err := b.pgExec(ctx, tableDDL(table)); err != nil {
			return err
		}
		rc := relayConf{id: "big", table: "public." + table, txnTimeout: 10 * time.Minute}
		p, err := b.prime(ctx, rc)
		if err != nil {
			return err
		}
		defer p.kill()
		defer b.dropSlot(ctx, "cdcrelay_big")
		c, err := b.pgConn(ctx)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertSQL(table), 1, b.bigRows); err != nil {
			return err
		}
		var s string
		if err := tx.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		committed := time.Now()
		last := parseLSN(s)
		stopProf := b.profile("big", map[bool]int{true: 3, false: 15}[b.quick])
		pos, err := b.offsets.waitFor(ctx, rc.id, p, 15*time.Minute, func(s storedPos) bool { return s.lsn > last })
		if err != nil {
			return err
		}
		stopProf()
		took := pos.seen.Sub(committed)
		r.RelayRate = f64(float64(b.bigRows) / took.Seconds())
		r.PeakRSS = f64(p.peakRSSMiB())
		r.Note = fmt.Sprintf("%.1fs from the source commit to the offsets record covering it (kafka.transaction_timeout 10m)", took.Seconds())
		p.stop()
		return nil
	}()
	if err != nil {
		r.Error = err.Error()
	}
	return []result{r}
}

// restartScenario kills the relay with SIGKILL under a steady insert-only
// writer and starts it again.
func (b *bench) restartScenario(ctx context.Context) []result {
	r := result{Scenario: "restart after kill -9 (pg)"}
	err := func() error {
		const table = "rst"
		if err := b.pgExec(ctx, tableDDL(table)); err != nil {
			return err
		}
		rc := relayConf{id: "rst", table: "public." + table}
		p, err := b.prime(ctx, rc)
		if err != nil {
			return err
		}
		defer func() { p.kill() }()
		defer b.dropSlot(ctx, "cdcrelay_rst")
		w := &insertWriter{perTxn: 50}
		stop := make(chan struct{})
		werr := make(chan error, 1)
		go func() { werr <- w.run(ctx, b, table, stop) }()
		stopWriter := func() error {
			if stop == nil {
				return nil
			}
			close(stop)
			stop = nil
			return <-werr
		}
		defer stopWriter()
		time.Sleep(3 * time.Second)
		if err := p.check(); err != nil {
			return err
		}
		reads0, err := b.tableReads(ctx, table)
		if err != nil {
			return err
		}
		p.kill()
		// Let the watcher see whatever the killed relay committed.
		time.Sleep(time.Second)
		before, _ := b.offsets.get(rc.id)
		p, err = b.startRelay(rc)
		if err != nil {
			return err
		}
		pos, err := b.offsets.waitFor(ctx, rc.id, p, 2*time.Minute, func(s storedPos) bool { return s.seq > before.seq && s.lsn > before.lsn })
		if err != nil {
			return err
		}
		r.ResumeMs = f64(float64(pos.seen.Sub(p.started).Microseconds()) / 1000)
		time.Sleep(2 * time.Second)
		if err := stopWriter(); err != nil {
			return fmt.Errorf("writer: %w", err)
		}
		end, err := b.pgLSN(ctx, "SELECT pg_current_wal_lsn()::text")
		if err != nil {
			return err
		}
		// Heartbeats or the last rows: wait until the relay has caught up.
		pos, err = b.offsets.waitFor(ctx, rc.id, p, time.Minute, func(s storedPos) bool { return s.lsn >= end-1 })
		if err != nil {
			// Not fatal: the stored position may stop at the last row
			// commit, short of the current WAL end.
			pos, _ = b.offsets.get(rc.id)
		}
		r.PeakRSS = f64(p.peakRSSMiB())
		p.stop()
		// Table statistics reach the views at most a second late.
		time.Sleep(1500 * time.Millisecond)
		reads1, err := b.tableReads(ctx, table)
		if err != nil {
			return err
		}
		reread := reads1 - reads0
		r.RowsReread = &reread
		size := pos.size
		r.StateBytes = &size
		r.Note = fmt.Sprintf("insert-only writer at 5k rows/s; resume = process start to the first new offsets record seen read_committed; %d rows written", w.rows.Load())
		return nil
	}()
	if err != nil {
		r.Error = err.Error()
	}
	return []result{r}
}

// runPeer runs --peer-cmd against a copy of the streaming slot and times
// how long it takes until --peer-topic holds as many records as there were
// changes.
//
// The command gets: BENCH_PG_DSN, BENCH_PG_SLOT (bench_peer, created at
// the same point as the relay's slot), BENCH_PG_PUBLICATION,
// BENCH_PG_TABLE, BENCH_KAFKA_BROKERS, BENCH_TOPIC.
func (b *bench) runPeer(ctx context.Context, mix mixResult, limitRate *float64) result {
	r := result{Scenario: "peer stream (pg)", Rows: mix.changes, Note: "peer: " + b.peerCmd}
	err := func() error {
		cmd := exec.CommandContext(ctx, "sh", "-c", "exec "+b.peerCmd)
		cmd.Env = append(os.Environ(),
			"BENCH_PG_DSN="+b.pgDSN, "BENCH_PG_SLOT=bench_peer", "BENCH_PG_PUBLICATION=cdcrelay_stream",
			"BENCH_PG_TABLE=public.orders", "BENCH_KAFKA_BROKERS="+b.brokerAddr, "BENCH_TOPIC="+b.peerTopic)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		// The dev broker creates no topic on first use.
		if err := b.createTopic(ctx, b.peerTopic); err != nil {
			return fmt.Errorf("create the peer topic: %w", err)
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			time.Sleep(time.Second)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}()
		var peak float64
		deadline := time.Now().Add(15 * time.Minute)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			peak = max(peak, vmHWM(cmd.Process.Pid))
			n, err := b.topicEnd(ctx, b.peerTopic)
			if err == nil && n >= int64(mix.changes) {
				took := time.Since(start)
				r.RelayRate = f64(float64(mix.changes) / took.Seconds())
				if limitRate != nil {
					r.LimitRate, r.LimitName = limitRate, "the stream's limit"
					r.Ratio = f64(*r.RelayRate / *limitRate)
				}
				r.PeakRSS = f64(peak)
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("peer topic %s did not reach %d records in 15 minutes", b.peerTopic, mix.changes)
	}()
	if err != nil {
		r.Error = err.Error()
	}
	return r
}
