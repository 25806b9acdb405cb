package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// snapshotRuns measures the initial snapshot of cdcrelay, Debezium and
// Flink CDC on db, b.peerRuns times each, rotating which goes first, and
// returns the median per setup.
func (b *bench) snapshotRuns(ctx context.Context, db string) []peerResult {
	systems := []string{sysRelay, sysDebezium, sysFlinkCDC}
	runs, _ := b.rotateRuns(ctx, "snapshot", db, systems, 0, func(sys string, run int) peerResult {
		return b.snapshotRate(ctx, sys, db, b.peerRows, run)
	})
	return foldRuns(systems, runs, medianOf)
}

// snapshotRate starts one setup on a fresh table of n rows and times how
// long it takes from process start until the topic holds n records
// (read_committed end offsets over all partitions). A fresh topic is not
// compacted that soon, so a record count of n means every row arrived.
// It keeps the process's peak RSS and CPU seconds up to that point.
func (b *bench) snapshotRate(ctx context.Context, system, db string, n, run int) peerResult {
	r := peerResult{Scenario: "snapshot", System: system, DB: db, Rows: n}
	id := fmt.Sprintf("%s_%d", peerID("sn", system, db), run)
	defer b.dropPeerRun(ctx, db, id, false)
	err := func() error {
		if err := b.fillPeerTable(ctx, db, id, n); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		pr, p, err := b.startPeer(system, db, id, id)
		if err != nil {
			return err
		}
		defer pr.cleanup()
		defer p.kill9()
		took, err := b.waitTopicHolds(ctx, p, pr.topic, int64(n), 30*time.Minute)
		if err != nil {
			return err
		}
		r.Rate = f64(float64(n) / took.Seconds())
		r.PeakRSS = f64(p.peakRSSMiB())
		r.CPUPerM = f64(p.cpuSeconds() / float64(n) * 1e6)
		r.Note = fmt.Sprintf("%.1fs from process start until the topic held %d records", took.Seconds(), n)
		return nil
	}()
	if err != nil {
		r.Error = firstLines(err.Error(), 12)
		fmt.Fprintf(os.Stderr, "bench: snapshot %s %s: %v\n", system, db, err)
	}
	return r
}

// waitTopicHolds polls the read_committed end offsets of topic, summed
// over its partitions, until they reach n, and returns the time from the
// start of p until then.
func (b *bench) waitTopicHolds(ctx context.Context, p *peerProc, topic string, n int64, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		end, _ := b.topicEnd(ctx, topic)
		if end >= n {
			return time.Since(p.started), nil
		}
		if err := p.check(); err != nil {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("topic %s held %d of %d records after %v", topic, end, n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startPeer prepares system to read table of db and starts it; the caller
// calls pr.cleanup when done, and kills p.
func (b *bench) startPeer(system, db, table, id string) (*peerRun, *peerProc, error) {
	pr, err := b.newPeerRun(system, db, table, id)
	if err != nil {
		return nil, nil, err
	}
	p, err := pr.start()
	if err != nil {
		pr.cleanup()
		return nil, nil, err
	}
	return pr, p, nil
}
