package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// The many-tables scenario: N captured tables of 10 rows each, snapshotted
// by one relay, at two sizes so that the growth shows as a ratio.

const manyRows = 10

// manyTablesScenario runs both sources at each size of b.manySizes.
func (b *bench) manyTablesScenario(ctx context.Context) []result {
	return b.sizedScenario(ctx, "many tables", b.manySizes, b.manyTables, func(first, r *result, n int) {
		if r.SnapshotS == nil || first.SnapshotS == nil {
			return
		}
		g := *r.SnapshotS / *first.SnapshotS
		r.Growth = &g
		r.Note = fmt.Sprintf("%.1fx the tables of the first size took %.2fx its time; ", float64(n)/float64(*first.Tables), g) + r.Note
	})
}

// sizedScenario runs measure for each source of b.manySrcs at each of
// sizes, and lets growth compare each size's result with the first one
// that succeeded.
func (b *bench) sizedScenario(ctx context.Context, name string, sizes []int, measure func(ctx context.Context, src string, n int) result, growth func(first, r *result, n int)) []result {
	var out []result
	for _, src := range b.manySrcs {
		if src == "mariadb" {
			if err := b.startMaria(); err != nil {
				out = append(out, result{Scenario: name + " (mariadb)", Error: err.Error()})
				continue
			}
		}
		var first *result
		for _, n := range sizes {
			r := measure(ctx, src, n)
			if first == nil && r.Error == "" {
				first = &r
			} else if first != nil && r.Error == "" {
				growth(first, &r, n)
			}
			out = append(out, r)
			if ctx.Err() != nil {
				return out
			}
		}
	}
	return out
}

// manyTables measures one source at n tables.
func (b *bench) manyTables(ctx context.Context, src string, n int) result {
	r := result{Scenario: fmt.Sprintf("many tables (%s)", src), Rows: n * manyRows, Tables: &n}
	id := fmt.Sprintf("mt%s%d", src[:2], n)
	schema := fmt.Sprintf("mt%d", n)
	err := func() error {
		t0 := time.Now()
		var err error
		if src == "postgres" {
			err = b.pgManyTables(ctx, schema, n)
		} else {
			err = b.myManyTables(schema, n)
		}
		if err != nil {
			return fmt.Errorf("create %d tables: %w", n, err)
		}
		fmt.Fprintf(os.Stderr, "bench: %s: %d tables created in %v\n", id, n, time.Since(t0).Round(time.Second))
		// The broker's own pace, before the relay: a bare admin client
		// creates as many topics the way the relay does and waits until
		// they answer. They are deleted, and the broker given the time to
		// finish deleting them, before the relay starts.
		limitS, err := b.createTopicsLimit(ctx, "lim"+id+".", n)
		if err != nil {
			return fmt.Errorf("topic creation limit: %w", err)
		}
		if err := b.deleteTopicsAndSettle(ctx, "lim"+id+"."); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: %s: a bare client created and led %d topics in %.1fs\n", id, n, limitS)
		rc := relayConf{id: id, table: schema + ".*", mysql: src == "mariadb", partitions: 1}
		p, err := b.startRelay(rc)
		if err != nil {
			return err
		}
		defer p.kill()
		if src == "postgres" {
			defer b.dropSlot(ctx, "cdcrelay_"+id)
		}
		first, err := b.offsets.waitFor(ctx, id, p, 30*time.Minute, func(s storedPos) bool { return s.snapDone >= 1 })
		if err != nil {
			return err
		}
		startup := first.seen.Sub(p.started).Seconds()
		r.StartupS = &startup
		pos, err := b.offsets.waitFor(ctx, id, p, 30*time.Minute, func(s storedPos) bool {
			return s.seq > 0 && s.snapDone >= n && s.snapQ == 0
		})
		if err != nil {
			return err
		}
		took := pos.seen.Sub(p.started).Seconds()
		r.SnapshotS = &took
		r.setLimits(float64(n*manyRows)/took, limit{Name: "create topics", Rate: float64(n*manyRows) / limitS})
		r.PeakRSS = f64(p.peakRSSMiB())
		size := pos.size
		r.StateBytes = &size
		if s, ok := logSeconds(p, `msg="created topics"`); ok {
			r.TopicsS = &s
		}
		series, bytes := scrapeSize(p)
		r.MetricSeries, r.MetricBytes = &series, &bytes
		p.stop()
		r.Note = fmt.Sprintf("%d tables of %d rows: snapshot %.1fs; a bare client creates their topics in %.1fs; first table committed at %s, every topic created at %s; offsets record %d bytes; /metrics %d series, %d bytes",
			n, manyRows, took, limitS, optSeconds(r.StartupS), optSeconds(r.TopicsS), size, series, bytes)
		return b.deleteTopicsAndSettle(ctx, id+".")
	}()
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// deleteTopicsAndSettle deletes the topics whose names start with prefix,
// waits until the broker lists none of them, and then for the broker's
// file.delete.delay.ms (60 s by default), after which it removes their
// logs from disk: so that a measurement that follows does not share the
// broker with the deletion.
func (b *bench) deleteTopicsAndSettle(ctx context.Context, prefix string) error {
	if err := b.deleteTopics(ctx, prefix); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokerAddr))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for deadline := time.Now().Add(10 * time.Minute); ; {
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		left := 0
		for _, t := range topics.Names() {
			if strings.HasPrefix(t, prefix) {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d topics %s* still listed 10 minutes after their deletion", left, prefix)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(65 * time.Second):
		return nil
	}
}

// pgManyTables creates n tables of manyRows rows in schema, 500 per
// transaction (each table takes locks until its transaction ends).
func (b *bench) pgManyTables(ctx context.Context, schema string, n int) error {
	if err := b.pgExec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return err
	}
	for lo := 1; lo <= n; lo += 500 {
		hi := min(n, lo+499)
		sql := fmt.Sprintf(`DO $$ BEGIN FOR i IN %d..%d LOOP
EXECUTE format('CREATE TABLE %s.t%%s (id int PRIMARY KEY, v int NOT NULL)', i);
EXECUTE format('INSERT INTO %s.t%%s SELECT g, g FROM generate_series(1, %d) g', i);
END LOOP; END $$`, lo, hi, schema, schema, manyRows)
		if err := b.pgExec(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

// myManyTables creates n tables of manyRows rows in database schema.
func (b *bench) myManyTables(schema string, n int) error {
	c, err := b.myConn()
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Execute("CREATE DATABASE " + schema); err != nil {
		return err
	}
	var vals strings.Builder
	for i := 1; i <= manyRows; i++ {
		if i > 1 {
			vals.WriteByte(',')
		}
		fmt.Fprintf(&vals, "(%d,%d)", i, i)
	}
	for i := 1; i <= n; i++ {
		t := fmt.Sprintf("%s.t%d", schema, i)
		if _, err := c.Execute("CREATE TABLE " + t + " (id INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
			return err
		}
		if _, err := c.Execute("INSERT INTO " + t + " VALUES " + vals.String()); err != nil {
			return err
		}
	}
	return nil
}

// logSeconds is the time from the process start to the first line of
// p's log that holds substr.
func logSeconds(p *relayProc, substr string) (float64, bool) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, substr) {
			continue
		}
		ts, ok := strings.CutPrefix(strings.Fields(line)[0], "time=")
		if !ok {
			return 0, false
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return 0, false
		}
		return at.Sub(p.started).Seconds(), true
	}
	return 0, false
}

func optSeconds(v *float64) string {
	if v == nil {
		return "?"
	}
	return fmt.Sprintf("%.1fs", *v)
}

// createTopicsLimit creates n topics named prefix<i> the way the relay
// creates a listed table's (one partition, compacted, 500 per request, four
// requests at once), waits until each answers ListOffsets on its leader,
// and returns the seconds that took.
func (b *bench) createTopicsLimit(ctx context.Context, prefix string, n int) (float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokerAddr))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var batches [][]string
	for lo := 0; lo < n; lo += 500 {
		var batch []string
		for i := lo; i < min(n, lo+500); i++ {
			batch = append(batch, fmt.Sprintf("%s%d", prefix, i))
		}
		batches = append(batches, batch)
	}
	policy := "compact"
	configs := map[string]*string{"cleanup.policy": &policy}
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, batch := range batches {
		g.Go(func() error {
			resps, err := adm.CreateTopics(gctx, 1, 1, configs, batch...)
			if err != nil {
				return err
			}
			if err := resps.Error(); err != nil {
				return err
			}
			for pending := batch; len(pending) > 0; {
				ends, err := adm.ListEndOffsets(gctx, pending...)
				var shards *kadm.ShardErrors
				if err != nil && !errors.As(err, &shards) {
					return err
				}
				rest := pending[:0:0]
				for _, t := range pending {
					o, ok := ends.Lookup(t, 0)
					if !ok || o.Err != nil {
						rest = append(rest, t)
					}
				}
				pending = rest
				if len(pending) > 0 {
					select {
					case <-gctx.Done():
						return gctx.Err()
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// scrapeSize returns the series and bytes of one /metrics scrape.
func scrapeSize(p *relayProc) (series, bytes int) {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			series++
		}
	}
	return series, len(body)
}

// deleteTopics deletes the topics whose names start with prefix, so that
// the next size does not run on a broker already holding them.
func (b *bench) deleteTopics(ctx context.Context, prefix string) error {
	return b.deleteTopicsWhere(ctx, func(t string) bool { return strings.HasPrefix(t, prefix) })
}

// deleteTopicsWhere deletes the topics whose names match.
func (b *bench) deleteTopicsWhere(ctx context.Context, match func(string) bool) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokerAddr))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, t := range topics.Names() {
		if match(t) {
			names = append(names, t)
		}
	}
	for len(names) > 0 {
		batch := names[:min(len(names), 500)]
		names = names[len(batch):]
		if _, err := adm.DeleteTopics(ctx, batch...); err != nil {
			return err
		}
	}
	return nil
}
