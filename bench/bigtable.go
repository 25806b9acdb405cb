package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// The big-table scenario: the initial snapshot of one table at two sizes
// per source, so that the cost per row at the larger size shows as a ratio
// to the smaller, with the relay's memory over the run and the accuracy of
// its progress estimate.

// rssPoint is the relay's resident memory at a moment of a run.
type rssPoint struct {
	At  float64 `json:"t_s"`
	MiB float64 `json:"rss_mib"`
}

func (b *bench) bigTableScenario(ctx context.Context) []result {
	return b.sizedScenario(ctx, "big table", b.bigSizes, b.bigTable, func(first, r *result, n int) {
		// Time per row at this size over the first's.
		g := *first.RelayRate / *r.RelayRate
		r.Growth = &g
		r.Note = fmt.Sprintf("%.0fx the rows of the first size took %.2fx its time per row; ", float64(n)/float64(first.Rows), g) + r.Note
	})
}

// bigTable snapshots a fresh table of n rows of the stream scenario's shape
// from src, and drops it afterwards.
func (b *bench) bigTable(ctx context.Context, src string, n int) result {
	r := result{Scenario: fmt.Sprintf("big table (%s)", src), Rows: n}
	id := fmt.Sprintf("bt%s%d", src[:2], n)
	table := fmt.Sprintf("big%d", n)
	mysql := src == "mariadb"
	err := func() error {
		t0 := time.Now()
		if err := b.bigFill(ctx, mysql, table, n); err != nil {
			return fmt.Errorf("fill %d rows: %w", n, err)
		}
		defer b.bigDrop(ctx, mysql, table)
		fmt.Fprintf(os.Stderr, "bench: %s: %d rows written in %v\n", id, n, time.Since(t0).Round(time.Second))
		limitA, err := b.bigRead(ctx, mysql, table)
		if err != nil {
			return err
		}
		ns := "public."
		if mysql {
			ns = "bench."
		}
		p, err := b.startRelay(relayConf{id: id, table: ns + table, mysql: mysql})
		if err != nil {
			return err
		}
		defer p.kill()
		if !mysql {
			defer b.dropSlot(ctx, "cdcrelay_"+id)
		}
		stopCurve, curve := sampleRSS(p.cmd.Process.Pid, p.started)
		cpu0 := b.sampleCPU(p.cmd.Process.Pid)
		pos, err := b.offsets.waitFor(ctx, id, p, 2*time.Hour, func(s storedPos) bool {
			return s.seq > 0 && s.snapDone > 0 && s.snapQ == 0
		})
		stopCurve()
		if err != nil {
			return err
		}
		took := pos.seen.Sub(p.started)
		relayCPU := b.cpuSince(cpu0, p.cmd.Process.Pid)
		r.PeakRSS = f64(p.peakRSSMiB())
		p.stop()
		limitB, err := b.bigRead(ctx, mysql, table)
		if err != nil {
			return err
		}
		read := (limitA + limitB) / 2
		name := "COPY TO STDOUT"
		if mysql {
			name = "client read"
		}
		r.setLimits(float64(n)/took.Seconds(), limit{name, float64(n) / read.Seconds()})
		r.RSSCurve = curve()
		ts, err := b.readTopic(ctx, id+"."+ns+table, 0)
		if err != nil {
			return err
		}
		if ts.records != n {
			r.Note = fmt.Sprintf("topic holds %d records, expected %d; ", ts.records, n)
		}
		r.Note += fmt.Sprintf("%s %.1fs before the relay and %.1fs after, the limit uses the mean; %.1fs from process start to the committed end of the snapshot; RSS MiB at 10/25/50/75/100%% of the run: %s; %s; %s",
			name, limitA.Seconds(), limitB.Seconds(), took.Seconds(), curveSummary(r.RSSCurve, took.Seconds()), etaCheck(p.logPath, p.started, took), relayCPU)
		return b.deleteTopics(ctx, id+".")
	}()
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// bigFill creates table with rows 1..n, and the statistics the relay's
// progress estimate reads.
func (b *bench) bigFill(ctx context.Context, mysql bool, table string, n int) error {
	if !mysql {
		return b.fillPeerTable(ctx, "pg", table, n) // with VACUUM ANALYZE
	}
	if err := b.fillPeerTable(ctx, "mariadb", table, n); err != nil {
		return err
	}
	return b.myExec("ANALYZE TABLE " + table)
}

// bigRead is the source's limit: every row of table read by the client.
func (b *bench) bigRead(ctx context.Context, mysql bool, table string) (time.Duration, error) {
	if mysql {
		return b.clientRead(ctx, table)
	}
	d, _, err := b.copyOut(ctx, table)
	return d, err
}

// bigDrop drops table, so that the next size has the disk.
func (b *bench) bigDrop(ctx context.Context, mysql bool, table string) {
	var err error
	if mysql {
		err = b.myExec("DROP TABLE " + table)
	} else {
		err = b.pgExec(ctx, "DROP TABLE public."+table)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: drop %s: %v\n", table, err)
	}
}

// sampleRSS reads the process's VmRSS every 500 ms until stop is called;
// points returns what it read.
func sampleRSS(pid int, started time.Time) (stop func(), points func() []rssPoint) {
	var mu sync.Mutex
	var out []rssPoint
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			mib := statusKiB(pid, "VmRSS:") / 1024
			mu.Lock()
			out = append(out, rssPoint{At: time.Since(started).Seconds(), MiB: mib})
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); <-finished }) }
	points = func() []rssPoint {
		mu.Lock()
		defer mu.Unlock()
		return append([]rssPoint(nil), out...)
	}
	return stop, points
}

// curveSummary gives the RSS read nearest to 10, 25, 50, 75 and 100 % of
// a run of total seconds.
func curveSummary(curve []rssPoint, total float64) string {
	if len(curve) == 0 {
		return "none read"
	}
	var parts []string
	for _, f := range []float64{0.10, 0.25, 0.50, 0.75, 1.0} {
		best := curve[0]
		for _, p := range curve {
			if abs(p.At-f*total) < abs(best.At-f*total) {
				best = p
			}
		}
		parts = append(parts, fmt.Sprintf("%.0f", best.MiB))
	}
	return strings.Join(parts, "/")
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// etaCheck compares the estimate of the relay's progress line nearest to
// the middle of the run with the time the snapshot then still took.
func etaCheck(logPath string, started time.Time, took time.Duration) string {
	f, err := os.Open(logPath)
	if err != nil {
		return "progress: no log"
	}
	defer f.Close()
	mid := started.Add(took / 2)
	var best time.Time
	var bestETA, bestDone string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="snapshot: progress"`) {
			continue
		}
		ts, eta, done := logField(line, "time"), logField(line, "eta"), logField(line, "rows_done")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || eta == "" {
			continue
		}
		if best.IsZero() || abs(at.Sub(mid).Seconds()) < abs(best.Sub(mid).Seconds()) {
			best, bestETA, bestDone = at, eta, done
		}
	}
	if best.IsZero() {
		return "no progress line (runs under 10 s log none)"
	}
	left := started.Add(took).Sub(best)
	return fmt.Sprintf("progress line at %.0fs (%s rows done) gave eta %s; the snapshot ended %.1fs later", best.Sub(started).Seconds(), bestDone, bestETA, left.Seconds())
}

// logField returns the value of key in a logfmt line, unquoted.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		if !strings.HasPrefix(line, key+"=") {
			return ""
		}
		i = -1
	}
	rest := line[i+len(key)+2:]
	if strings.HasPrefix(rest, `"`) {
		if j := strings.Index(rest[1:], `"`); j >= 0 {
			return rest[1 : j+1]
		}
		return rest[1:]
	}
	if j := strings.IndexByte(rest, ' '); j >= 0 {
		return rest[:j]
	}
	return rest
}
