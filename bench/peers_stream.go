package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"
)

// streamThroughput measures one setup's streaming rate: it stops the
// setup (SIGTERM, so that it stores its position), inserts n rows in
// transactions of 10,000, starts it again and times how long it takes
// until the marker row written after them reaches the topic. It keeps the
// process's peak RSS and CPU seconds over the drain.
func (b *bench) streamThroughput(ctx context.Context, system, db string, n, run int) peerResult {
	r := peerResult{Scenario: "stream", System: system, DB: db, Rows: n}
	id := fmt.Sprintf("%s_%d", peerID("st", system, db), run)
	defer b.dropPeerRun(ctx, db, id, false)
	err := func() error {
		if err := b.fillPeerTable(ctx, db, id, 0); err != nil {
			return err
		}
		pr, p, err := b.startPeer(system, db, id, id)
		if err != nil {
			return err
		}
		defer pr.cleanup()
		defer func() { p.kill9() }()
		// Streaming has begun once a row written now arrives.
		if err := b.waitMarker(ctx, p, db, id, pr.topic, -1); err != nil {
			return fmt.Errorf("start: %w", err)
		}
		// Connect stores its offsets on a clean stop, cdcrelay on every
		// commit.
		time.Sleep(2 * time.Second)
		p.stop()
		if err := b.insertRange(ctx, db, id, n); err != nil {
			return err
		}
		w, err := b.watchMarker(ctx, pr.topic, 1)
		if err != nil {
			return err
		}
		defer w.cl.Close()
		time.Sleep(2 * time.Second)
		if err := b.insertMarker(ctx, db, id, int64(n)+1); err != nil {
			return err
		}
		p, err = pr.start()
		if err != nil {
			return err
		}
		select {
		case seen := <-w.seen:
			took := seen.Sub(p.started)
			r.Rate = f64(float64(n) / took.Seconds())
			r.PeakRSS = f64(p.peakRSSMiB())
			r.CPUPerM = f64(p.cpuSeconds() / float64(n) * 1e6)
			r.Note = fmt.Sprintf("%.1fs from process start to the marker after %d inserted rows", took.Seconds(), n)
		case <-time.After(30 * time.Minute):
			return fmt.Errorf("the marker after %d rows did not arrive in 30 minutes: %v", n, p.check())
		case <-ctx.Done():
			return ctx.Err()
		}
		p.stop()
		return nil
	}()
	if err != nil {
		r.Error = firstLines(err.Error(), 12)
		fmt.Fprintf(os.Stderr, "bench: stream %s %s: %v\n", system, db, err)
	}
	return r
}

// insertRange inserts rows 1..n in transactions of 10,000 rows.
func (b *bench) insertRange(ctx context.Context, db, table string, n int) error {
	for lo := 1; lo <= n; lo += 10000 {
		hi := min(n, lo+9999)
		var err error
		if db == "pg" {
			err = b.pgExec(ctx, insertSQL(table), lo, hi)
		} else {
			err = b.myExec(myInsertSQL(table, int64(lo), int64(hi)))
		}
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	return nil
}

// insertMarker inserts one marker row with id.
func (b *bench) insertMarker(ctx context.Context, db, table string, id int64) error {
	if db == "pg" {
		return b.pgExec(ctx, markerSQL(db, table), id, fmt.Sprintf("%s%d", resumeMarker, id))
	}
	c, err := b.myConn()
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Execute(markerSQL(db, table), id, fmt.Sprintf("%s%d", resumeMarker, id))
	return err
}

// medianOf folds the runs of one setup into one result: the median rate,
// with every run's rate kept.
func medianOf(runs []peerResult) peerResult {
	var ok []peerResult
	for _, r := range runs {
		if r.Error == "" && r.Rate != nil {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return runs[0]
	}
	sort.Slice(ok, func(i, j int) bool { return *ok[i].Rate < *ok[j].Rate })
	m := ok[len(ok)/2]
	for _, r := range ok {
		m.Runs = append(m.Runs, *r.Rate)
	}
	m.Note = fmt.Sprintf("median of %d runs (of %d); %s", len(ok), len(runs), m.Note)
	return m
}
