package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// peerResult is one setup's row of the peers results.
type peerResult struct {
	Scenario string `json:"scenario"`
	System   string `json:"system"`
	DB       string `json:"db"`
	Rows     int    `json:"rows,omitempty"`
	// restart cost
	RowsRead   *int64   `json:"rows_read_total,omitempty"`
	RowsReread *int64   `json:"rows_reread,omitempty"`
	ResumeMs   *float64 `json:"resume_ms,omitempty"`
	StateBytes *int64   `json:"state_bytes,omitempty"`
	StateWhat  string   `json:"state,omitempty"`
	// throughput
	Rate    *float64  `json:"rows_per_s,omitempty"`
	Runs    []float64 `json:"runs_rows_per_s,omitempty"`
	PeakRSS *float64  `json:"peak_rss_mib,omitempty"`
	CPUPerM *float64  `json:"cpu_s_per_million,omitempty"`
	Note    string    `json:"note,omitempty"`
	Error   string    `json:"error,omitempty"`
}

func i64(v int64) *int64 { return &v }

// markerWatch consumes a topic read_committed from its end at the time it
// starts and notes when the first record holding resumeMarker arrives.
type markerWatch struct {
	cl   *kgo.Client
	once sync.Once
	seen chan time.Time
}

func (b *bench) watchMarker(ctx context.Context, topic string) (*markerWatch, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokerAddr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return nil, err
	}
	w := &markerWatch{cl: cl, seen: make(chan time.Time, 1)}
	marker := []byte(resumeMarker)
	go func() {
		for {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				if bytes.Contains(r.Value, marker) {
					w.once.Do(func() { w.seen <- now })
				}
			})
		}
	}()
	return w, nil
}

// restartCost runs one setup on a fresh table of n rows: initial snapshot,
// kill -9 once the topic holds half the rows, restart, and marker rows
// written from the restart on. It measures the rows read from the table
// beyond one pass, the time from the restart to the first marker in the
// topic, and the state the setup kept.
func (b *bench) restartCost(ctx context.Context, system, db string, n int) peerResult {
	r := peerResult{Scenario: "restart after kill -9 mid-snapshot", System: system, DB: db, Rows: n}
	id := fmt.Sprintf("rc_%s_%s", system, db)
	err := func() error {
		table := id
		if err := b.fillPeerTable(ctx, db, table, n); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		reads0, err := b.tableReadsOf(ctx, db, table)
		if err != nil {
			return err
		}
		pr, err := b.newPeerRun(system, db, table, id)
		if err != nil {
			return err
		}
		defer pr.cleanup()
		p, err := pr.start()
		if err != nil {
			return err
		}
		defer func() { p.kill9() }()
		// Kill in the middle of the snapshot: once half the rows are in.
		deadline := time.Now().Add(20 * time.Minute)
		for {
			if err := p.check(); err != nil {
				return fmt.Errorf("before the kill: %w", err)
			}
			end, _ := b.topicEnd(ctx, pr.topic)
			if end >= int64(n/2) {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("topic %s did not reach %d records in 20 minutes", pr.topic, n/2)
			}
			time.Sleep(50 * time.Millisecond)
		}
		firstHalf := time.Since(p.started)
		p.kill9()
		time.Sleep(time.Second)
		w, err := b.watchMarker(ctx, pr.topic)
		if err != nil {
			return err
		}
		defer w.cl.Close()
		p, err = pr.start()
		if err != nil {
			return err
		}
		stop := make(chan struct{})
		type markers struct {
			n   int64
			err error
		}
		mdone := make(chan markers, 1)
		go func() {
			m, err := b.writeMarkers(ctx, db, table, int64(n)+1, stop)
			mdone <- markers{m, err}
		}()
		var seenAt time.Time
		wait := time.NewTimer(30 * time.Minute)
		defer wait.Stop()
	loop:
		for {
			select {
			case seenAt = <-w.seen:
				break loop
			case <-wait.C:
				break loop
			case <-ctx.Done():
				break loop
			case <-time.After(500 * time.Millisecond):
				if p.exited() {
					break loop
				}
			}
		}
		close(stop)
		m := <-mdone
		if m.err != nil {
			return fmt.Errorf("marker writer: %w", m.err)
		}
		if seenAt.IsZero() {
			return fmt.Errorf("no new change reached %s after the restart: %v", pr.topic, p.check())
		}
		r.ResumeMs = f64(float64(seenAt.Sub(p.started).Microseconds()) / 1000)
		// Let the setup settle its state (Connect flushes offsets on
		// stop), then stop it cleanly.
		time.Sleep(2 * time.Second)
		r.PeakRSS = f64(p.peakRSSMiB())
		p.stop()
		time.Sleep(1500 * time.Millisecond) // table statistics lag by up to a second
		reads1, err := b.tableReadsOf(ctx, db, table)
		if err != nil {
			return err
		}
		read := reads1 - reads0
		r.RowsRead = i64(read)
		r.RowsReread = i64(max(0, read-int64(n)))
		st, what := pr.state()
		r.StateBytes, r.StateWhat = i64(st), what
		r.Note = fmt.Sprintf("killed %.1fs after start with %d+ rows in the topic; %d marker rows written after the restart (they may be read by a snapshot too)", firstHalf.Seconds(), n/2, m.n)
		return nil
	}()
	if err != nil {
		r.Error = firstLines(err.Error(), 12)
		fmt.Fprintf(os.Stderr, "bench: %s %s: %v\n", system, db, err)
	}
	return r
}

// firstLines keeps the first k lines of s.
func firstLines(s string, k int) string {
	lines := bytes.SplitN([]byte(s), []byte("\n"), k+1)
	if len(lines) > k {
		lines = lines[:k]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
