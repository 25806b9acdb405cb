package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
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
// starts and notes when the need-th distinct marker value arrives; a
// record's marker value is the largest resumeMarker-N in it (an update's
// before-image holds the previous one).
type markerWatch struct {
	cl   *kgo.Client
	seen chan time.Time
}

var markerRE = regexp.MustCompile(resumeMarker + `([0-9-]+)`)

func (b *bench) watchMarker(ctx context.Context, topic string, need int) (*markerWatch, error) {
	// A consumer that meets the topic only after the marker is in it
	// would start past it: wait for the topic first.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		ends, _, err := kafkaclient.StableEnds(ctx, []kgo.Opt{kgo.SeedBrokers(b.brokerAddr)}, topic)
		if err == nil && len(ends[topic]) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("topic %s does not exist after 2 minutes", topic)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		time.Sleep(200 * time.Millisecond)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokerAddr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return nil, err
	}
	w := &markerWatch{cl: cl, seen: make(chan time.Time, 1)}
	go func() {
		values := map[int64]bool{}
		for {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				best, found := int64(0), false
				for _, m := range markerRE.FindAllSubmatch(r.Value, -1) {
					if v, err := strconv.ParseInt(string(m[1]), 10, 64); err == nil && (!found || v > best) {
						best, found = v, true
					}
				}
				if !found || values[best] {
					return
				}
				values[best] = true
				if len(values) == need {
					w.seen <- now
				}
			})
		}
	}()
	return w, nil
}

// waitStreaming updates row 1 to a new marker value every 200 ms until two
// distinct values have reached topic, which only streaming delivers (a
// snapshot emits row 1 once). It returns when the second arrived and how
// many updates it wrote.
func (b *bench) waitStreaming(ctx context.Context, p *peerProc, db, table, topic string) (time.Time, int64, error) {
	w, err := b.watchMarker(ctx, topic, 2)
	if err != nil {
		return time.Time{}, 0, err
	}
	defer w.cl.Close()
	stop := make(chan struct{})
	type markers struct {
		n   int64
		err error
	}
	done := make(chan markers, 1)
	go func() {
		n, err := b.writeMarkers(ctx, db, table, stop)
		done <- markers{n, err}
	}()
	var seen time.Time
	wait := time.NewTimer(30 * time.Minute)
	defer wait.Stop()
	var m markers
	written := false
loop:
	for {
		select {
		case seen = <-w.seen:
			break loop
		case m = <-done:
			written = true
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
	if !written {
		m = <-done
	}
	if m.err != nil {
		return seen, m.n, fmt.Errorf("marker writer: %w", m.err)
	}
	if seen.IsZero() {
		if err := p.check(); err != nil {
			return seen, m.n, err
		}
		return seen, m.n, fmt.Errorf("no streamed change reached %s: %v", topic, ctx.Err())
	}
	return seen, m.n, nil
}

// waitTopicStill waits until the end offsets of topic have not moved for
// 5 s: the setup has written everything it had to.
func (b *bench) waitTopicStill(ctx context.Context, topic string) {
	last, since := int64(-1), time.Now()
	for deadline := time.Now().Add(20 * time.Minute); time.Now().Before(deadline) && ctx.Err() == nil; {
		n, _ := b.topicEnd(ctx, topic)
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= 5*time.Second {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// restartCost runs one setup on a fresh table of n rows: initial snapshot,
// kill -9 once the topic holds half the rows, restart, and marker rows
// written from the restart on. It measures the rows read from the table
// beyond one pass, the time from the restart to the first marker in the
// topic, and the state the setup kept.
func (b *bench) restartCost(ctx context.Context, system, db string, n, run int) peerResult {
	r := peerResult{Scenario: "restart after kill -9 mid-snapshot", System: system, DB: db, Rows: n}
	id := runID(peerID("rc", system, db), run)
	// The first run's topics stay for the encoding comparison.
	defer b.dropPeerRun(ctx, db, id, run <= 1)
	err := func() error {
		table := id
		pr, p, reads0, err := b.startOnFresh(ctx, system, db, id, n)
		if err != nil {
			return err
		}
		defer pr.cleanup()
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
		p, err = pr.start()
		if err != nil {
			return err
		}
		seenAt, markers, err := b.waitStreaming(ctx, p, db, table, pr.topic)
		if err != nil {
			return fmt.Errorf("after the restart: %w", err)
		}
		r.ResumeMs = f64(float64(seenAt.Sub(p.started).Microseconds()) / 1000)
		// A setup that streams while its snapshot goes on may still be
		// reading the table.
		b.waitTopicStill(ctx, pr.topic)
		r.PeakRSS = f64(p.peakRSSMiB())
		p.stop()
		if err := b.countReads(ctx, &r, db, table, reads0, markers); err != nil {
			return err
		}
		ts, err := b.readTopic(ctx, pr.topic, 0)
		if err != nil {
			return err
		}
		st, what := pr.state()
		r.StateBytes, r.StateWhat = i64(st), what
		r.Note = fmt.Sprintf("killed %.1fs after start with %d+ rows in the topic; %d marker updates of row 1 after the restart; the topic holds %d records (read_committed) for %d rows", firstHalf.Seconds(), n/2, markers, ts.records, n)
		return nil
	}()
	if err != nil {
		r.Error = firstLines(err.Error(), 12)
		fmt.Fprintf(os.Stderr, "bench: %s %s: %v\n", system, db, err)
	}
	return r
}

// startOnFresh fills a fresh table id of db with n rows and starts system
// on it; it returns the table's read count from before the start.
func (b *bench) startOnFresh(ctx context.Context, system, db, id string, n int) (*peerRun, *peerProc, int64, error) {
	if err := b.fillPeerTable(ctx, db, id, n); err != nil {
		return nil, nil, 0, fmt.Errorf("fill: %w", err)
	}
	reads0, err := b.tableReadsOf(ctx, db, id)
	if err != nil {
		return nil, nil, 0, err
	}
	pr, p, err := b.startPeer(system, db, id, id)
	return pr, p, reads0, err
}

// countReads sets the rows read from table since its count was reads0,
// once that count stands still, and those beyond one pass of r.Rows rows.
func (b *bench) countReads(ctx context.Context, r *peerResult, db, table string, reads0, markers int64) error {
	reads1, err := b.stableReads(ctx, db, table)
	if err != nil {
		return err
	}
	// Each marker update reads row 1 once.
	read := reads1 - reads0 - markers
	r.RowsRead = i64(read)
	r.RowsReread = i64(max(0, read-int64(r.Rows)))
	return nil
}

// runID names the run-th measurement of id; the first keeps id, whose
// topics the encoding comparison reads.
func runID(id string, run int) string {
	if run <= 1 {
		return id
	}
	return fmt.Sprintf("%s_%d", id, run)
}

// medianRestart folds the restart runs of one setup into the run with the
// median resume time, noting every run's resume time and rows re-read.
func medianRestart(runs []peerResult) peerResult {
	var ok []peerResult
	for _, r := range runs {
		if r.Error == "" && r.ResumeMs != nil && r.RowsReread != nil {
			ok = append(ok, r)
		}
	}
	if len(runs) == 1 || len(ok) == 0 {
		return runs[0]
	}
	sort.Slice(ok, func(i, j int) bool { return *ok[i].ResumeMs < *ok[j].ResumeMs })
	m := ok[len(ok)/2]
	var resume, reread []string
	for _, r := range ok {
		resume = append(resume, fmt.Sprintf("%.1f", *r.ResumeMs/1000))
		reread = append(reread, fmt.Sprint(*r.RowsReread))
	}
	m.Note = fmt.Sprintf("median resume of %d runs (of %d); resume s per run %s; rows re-read in the same runs %s; %s",
		len(ok), len(runs), strings.Join(resume, ", "), strings.Join(reread, ", "), m.Note)
	return m
}

// stableReads waits until the table's read count has not moved for 12 s
// and returns it: a PostgreSQL backend that stays idle reports its reads
// up to 10 s late, one that exits reports them on exit.
func (b *bench) stableReads(ctx context.Context, db, table string) (int64, error) {
	last, err := b.tableReadsOf(ctx, db, table)
	if err != nil {
		return 0, err
	}
	since := time.Now()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		time.Sleep(time.Second)
		n, err := b.tableReadsOf(ctx, db, table)
		if err != nil {
			return 0, err
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= 12*time.Second {
			break
		}
	}
	return last, nil
}

// firstLines keeps the first k lines of s.
func firstLines(s string, k int) string {
	lines := bytes.SplitN([]byte(s), []byte("\n"), k+1)
	if len(lines) > k {
		lines = lines[:k]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
