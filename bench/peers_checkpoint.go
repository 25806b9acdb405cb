package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// flinkCheckpointSize runs the Flink CDC job with RocksDB incremental
// checkpoints on a fresh table of n rows, and measures its checkpoint
// directory after the first checkpoint that follows the snapshot, and
// again after the first one that follows n streamed updates.
func (b *bench) flinkCheckpointSize(ctx context.Context, db string, n int) peerResult {
	r := peerResult{Scenario: "checkpoint size (RocksDB incremental)", System: sysFlinkCDC, DB: db, Rows: n}
	id := "ck_flinkcdc_" + db
	defer b.dropPeerRun(ctx, db, id, false)
	err := func() error {
		if err := b.fillPeerTable(ctx, db, id, n); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		pr, err := b.newPeerRun(sysFlinkCDC, db, id, id)
		if err != nil {
			return err
		}
		defer pr.cleanup()
		ckDir := filepath.Join(pr.dir, "checkpoints")
		if err := os.MkdirAll(ckDir, 0o755); err != nil {
			return err
		}
		p, err := pr.start()
		if err != nil {
			return err
		}
		defer p.kill9()
		if _, _, err := b.waitStreaming(ctx, p, db, id, pr.topic); err != nil {
			return fmt.Errorf("after the snapshot: %w", err)
		}
		afterSnap, err := waitNextCheckpoint(ctx, p, ckDir, b.checkpointEvery)
		if err != nil {
			return err
		}
		if err := b.updateAll(ctx, db, id, n); err != nil {
			return err
		}
		if _, _, err := b.waitStreaming(ctx, p, db, id, pr.topic); err != nil {
			return fmt.Errorf("after the updates: %w", err)
		}
		afterStream, err := waitNextCheckpoint(ctx, p, ckDir, b.checkpointEvery)
		if err != nil {
			return err
		}
		r.PeakRSS = f64(p.peakRSSMiB())
		r.StateBytes, r.StateWhat = i64(afterStream), "checkpoint directory after the streamed changes"
		r.Note = fmt.Sprintf("checkpoint directory %d B after the snapshot, %d B after %d streamed updates; interval %v, retained 1 (Flink's default)",
			afterSnap, afterStream, n, b.checkpointEvery)
		return nil
	}()
	if err != nil {
		r.Error = firstLines(err.Error(), 12)
		fmt.Fprintf(os.Stderr, "bench: flinkcdc checkpoints %s: %v\n", db, err)
	}
	return r
}

// waitMarker inserts one marker row with id and waits until it reaches
// topic: everything written before it has been read.
func (b *bench) waitMarker(ctx context.Context, p *peerProc, db, table, topic string, id int64) error {
	w, err := b.watchMarker(ctx, topic, 1)
	if err != nil {
		return err
	}
	defer w.cl.Close()
	// The watcher starts at the end of the topic; give it time to take
	// its position before the marker is written.
	time.Sleep(2 * time.Second)
	if err := b.insertMarker(ctx, db, table, id); err != nil {
		return err
	}
	deadline := time.After(30 * time.Minute)
	for {
		select {
		case <-w.seen:
			return nil
		case <-deadline:
			return fmt.Errorf("marker %d did not reach %s in 30 minutes", id, topic)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
			if err := p.check(); err != nil {
				return err
			}
		}
	}
}

// waitNextCheckpoint waits for a checkpoint newer than the newest one now
// in dir and returns the directory's size once it is complete.
func waitNextCheckpoint(ctx context.Context, p *peerProc, dir string, every time.Duration) (int64, error) {
	num := func() int {
		n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(latestCheckpoint(dir)), "chk-"))
		return n
	}
	start := num()
	deadline := time.Now().Add(3*every + 2*time.Minute)
	for time.Now().Before(deadline) {
		if num() > start {
			return fileBytes(dir), nil
		}
		if err := p.check(); err != nil {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("no checkpoint completed in %v", 3*every+2*time.Minute)
}

// updateAll updates every row 1..n once, in transactions of 10,000 rows.
func (b *bench) updateAll(ctx context.Context, db, table string, n int) error {
	for lo := 1; lo <= n; lo += 10000 {
		hi := min(n, lo+9999)
		var err error
		if db == "pg" {
			err = b.pgExec(ctx, "UPDATE public."+table+" SET qty = qty + 1, status = 'paid' WHERE id BETWEEN $1 AND $2", lo, hi)
		} else {
			err = b.myExec(fmt.Sprintf("UPDATE bench.%s SET qty = qty + 1, status = 'paid' WHERE id BETWEEN %d AND %d", table, lo, hi))
		}
		if err != nil {
			return fmt.Errorf("update: %w", err)
		}
	}
	return nil
}
