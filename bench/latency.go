package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// insertWriter inserts rate rows/s into table in transactions every 10ms
// until stop is closed, and records when each transaction's COMMIT
// returned. Row ids start at 1; row id belongs to transaction
// (id-1)/perTxn.
type insertWriter struct {
	perTxn  int
	mu      sync.Mutex
	commits []time.Time
	rows    atomic.Int64
	err     error
}

func (w *insertWriter) run(ctx context.Context, b *bench, table string, stop <-chan struct{}) error {
	c, err := b.pgConn(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	ins := insertSQL(table)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	next := int64(1)
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if _, err := c.Exec(ctx, ins, next, next+int64(w.perTxn)-1); err != nil {
			return err
		}
		now := time.Now()
		w.mu.Lock()
		w.commits = append(w.commits, now)
		w.mu.Unlock()
		next += int64(w.perTxn)
		w.rows.Store(next - 1)
	}
}

func (w *insertWriter) commitOf(id int64) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := int((id - 1) / int64(w.perTxn))
	if i < 0 || i >= len(w.commits) {
		return time.Time{}, false
	}
	return w.commits[i], true
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (b *bench) latencyScenario(ctx context.Context) []result {
	var rs []result
	for _, rate := range []int{1000, 5000} {
		rs = append(rs, b.latencyAt(ctx, rate))
	}
	return rs
}

// latencyAt measures source commit → visible to a read_committed consumer
// under a steady writer of rate rows/s.
func (b *bench) latencyAt(ctx context.Context, rate int) result {
	name := fmt.Sprintf("lat%dk", rate/1000)
	r := result{Scenario: fmt.Sprintf("latency %dk rows/s (pg)", rate/1000)}
	err := func() error {
		if err := b.pgExec(ctx, tableDDL(name)); err != nil {
			return err
		}
		topic := name + ".public." + name
		if err := b.createTopic(ctx, topic); err != nil {
			return err
		}
		rc := relayConf{id: name, table: "public." + name}
		p, err := b.prime(ctx, rc)
		if err != nil {
			return err
		}
		defer p.kill()
		defer b.dropSlot(ctx, "cdcrelay_"+name)

		cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokerAddr),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.FetchMaxWait(500*time.Millisecond),
		)
		if err != nil {
			return err
		}
		defer cl.Close()
		w := &insertWriter{perTxn: max(1, rate/100)}
		arr, stopConsumer := consumeArrivals(ctx, cl)
		// Let the consumer join before writing.
		time.Sleep(time.Second)
		stop := make(chan struct{})
		werr := make(chan error, 1)
		go func() { werr <- w.run(ctx, b, name, stop) }()
		t0 := time.Now()
		select {
		case <-time.After(b.latencyDur):
		case err := <-werr:
			stopConsumer()
			return fmt.Errorf("writer: %w", err)
		}
		close(stop)
		if err := <-werr; err != nil {
			stopConsumer()
			return fmt.Errorf("writer: %w", err)
		}
		wrote := w.rows.Load()
		actual := float64(wrote) / time.Since(t0).Seconds()
		arr.waitFor(wrote, time.Minute)
		stopConsumer()
		r.PeakRSS = f64(p.peakRSSMiB())
		p.stop()
		var lats []float64
		for id, at := range arr.seen {
			if c, ok := w.commitOf(id); ok {
				lats = append(lats, float64(at.Sub(c).Microseconds())/1000)
			}
		}
		slices.Sort(lats)
		if len(lats) == 0 {
			return fmt.Errorf("no rows seen")
		}
		r.Rows = len(lats)
		r.RelayRate = f64(actual)
		r.P50, r.P99, r.Max = f64(percentile(lats, 0.50)), f64(percentile(lats, 0.99)), f64(lats[len(lats)-1])
		r.Note = fmt.Sprintf("writer %.0f rows/s for %v in transactions of %d rows every 10ms", actual, b.latencyDur, w.perTxn)
		if int64(len(lats)) < wrote {
			r.Note += fmt.Sprintf("; only %d of %d rows seen within a minute", len(lats), wrote)
		}
		return nil
	}()
	if err != nil {
		r.Error = err.Error()
	}
	fmt.Fprintf(os.Stderr, "bench: %s: p50 %s p99 %s max %s ms\n", r.Scenario, fmtOpt(r.P50, 1), fmtOpt(r.P99, 1), fmtOpt(r.Max, 1))
	return r
}

// arrivals records when each row id first reached a read_committed
// consumer.
type arrivals struct {
	mu   sync.Mutex
	seen map[int64]time.Time
}

// consumeArrivals polls cl until stop is called, noting the arrival time of
// each key's first record; stop waits for the poller to end, after which
// seen may be read without the lock.
func consumeArrivals(ctx context.Context, cl *kgo.Client) (a *arrivals, stop func()) {
	a = &arrivals{seen: map[int64]time.Time{}}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for cctx.Err() == nil {
			fs := cl.PollFetches(cctx)
			now := time.Now()
			fs.EachRecord(func(rec *kgo.Record) {
				var k struct {
					ID int64 `json:"id"`
				}
				if json.Unmarshal(rec.Key, &k) != nil || rec.Value == nil {
					return
				}
				// The commit time is looked up at the end: the writer may
				// not have recorded it yet.
				a.mu.Lock()
				if _, dup := a.seen[k.ID]; !dup {
					a.seen[k.ID] = now
				}
				a.mu.Unlock()
			})
		}
	}()
	return a, func() {
		cancel()
		<-done
	}
}

// waitFor waits up to d until n rows have arrived.
func (a *arrivals) waitFor(n int64, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		got := len(a.seen)
		a.mu.Unlock()
		if int64(got) >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
