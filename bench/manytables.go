package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The many-tables scenario: N captured tables of 10 rows each, snapshotted
// by one relay, at two sizes so that the growth shows as a ratio.

const manyRows = 10

// manyTablesScenario runs both sources at each size of b.manySizes.
func (b *bench) manyTablesScenario(ctx context.Context) []result {
	var out []result
	for _, src := range b.manySrcs {
		if src == "mariadb" {
			if err := b.startMaria(); err != nil {
				out = append(out, result{Scenario: "many tables (mariadb)", Error: err.Error()})
				continue
			}
		}
		var first *result
		for _, n := range b.manySizes {
			r := b.manyTables(ctx, src, n)
			if first == nil && r.Error == "" {
				first = &r
			} else if first != nil && r.Error == "" && r.SnapshotS != nil && first.SnapshotS != nil {
				g := *r.SnapshotS / *first.SnapshotS
				r.Growth = &g
				r.Note = fmt.Sprintf("%.1fx the tables of the first size took %.2fx its time; ", float64(n)/float64(*first.Tables), g) + r.Note
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
		rc := relayConf{id: id, table: schema + ".*", mysql: src == "mariadb", partitions: 1}
		p, err := b.startRelay(rc)
		if err != nil {
			return err
		}
		defer p.kill()
		if src == "postgres" {
			defer b.dropSlot(ctx, "cdcrelay_"+id)
		}
		pos, err := b.offsets.waitFor(ctx, id, p, 30*time.Minute, func(s storedPos) bool {
			return s.seq > 0 && s.snapDone >= n && s.snapQ == 0
		})
		if err != nil {
			return err
		}
		took := pos.seen.Sub(p.started).Seconds()
		r.SnapshotS = &took
		r.PeakRSS = f64(p.peakRSSMiB())
		size := pos.size
		r.StateBytes = &size
		if s, ok := startupSeconds(p); ok {
			r.StartupS = &s
		}
		series, bytes := scrapeSize(p)
		r.MetricSeries, r.MetricBytes = &series, &bytes
		p.stop()
		startup := "?"
		if r.StartupS != nil {
			startup = fmt.Sprintf("%.1fs", *r.StartupS)
		}
		r.Note = fmt.Sprintf("%d tables of %d rows: snapshot %.1fs, start-up %s (process start to the topics created); offsets record %d bytes; /metrics %d series, %d bytes", n, manyRows, took, startup, size, series, bytes)
		return b.deleteTopics(ctx, id+".")
	}()
	if err != nil {
		r.Error = err.Error()
	}
	return r
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

// startupSeconds is the time from the process start to the log line of
// the topics created (the source's catalog reads and preflight come
// before it).
func startupSeconds(p *relayProc) (float64, bool) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="created topics"`) {
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
		if strings.HasPrefix(t, prefix) {
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
