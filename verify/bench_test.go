package verify_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
	"github.com/cdcrelay/cdcrelay/verify"
)

// BenchmarkVerify1M verifies a PostgreSQL table of 1M rows (override with
// CDCRELAY_BENCH_ROWS) against a topic of 3 partitions holding the same
// rows, as the relay writes them, with the default sort memory and with a
// small one that makes both sides spill to sort files. It reports rows/s
// and the peak live heap (as measured by the last GC) during the runs.
func BenchmarkVerify1M(b *testing.B) {
	rows := 1_000_000
	if s := os.Getenv("CDCRELAY_BENCH_ROWS"); s != "" {
		rows, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	br := testenv.StartBroker(b)
	pg := testenv.StartPostgres(b)
	pg.CreateDB(b, "shop")
	pg.Exec(b, "shop", `CREATE TABLE public.orders (id bigint PRIMARY KEY, name text, paid boolean, doc jsonb,
		amount numeric(10,2), at timestamptz)`)
	pg.Exec(b, "shop", `INSERT INTO public.orders SELECT g, 'order ' || g, g % 2 = 0, jsonb_build_object('n', g, 'tag', 'x'),
		g * 1.5, '2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, $1) g`, rows)
	pg.Exec(b, "shop", "VACUUM ANALYZE public.orders")
	cfg := writeConfig(b, "postgres", pg.DSN("postgres", "shop"), "public.orders", br.Addr)
	cfg.Source.SnapshotChunkSize = 10000

	// The topic: every row as an op=r record, in transactions of 50k.
	topic := "shop.public.orders"
	if _, err := kadm.NewClient(br.Client(b)).CreateTopic(ctx, 3, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, topic); err != nil {
		b.Fatal(err)
	}
	txn := br.Client(b, kgo.TransactionalID("verify-bench"), kgo.DefaultProduceTopic("unused"), kgo.ProducerBatchMaxBytes(4<<20))
	enc := format.NewEncoder(format.Options{Value: format.DebeziumJSON, Tombstones: true, TopicPrefix: "shop"})
	rr := openReader(b, cfg)
	tables, err := rr.Tables(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var after snapshot.Key
	for {
		chunk, err := rr.ReadChunk(ctx, tables[0].ID, after, 50000)
		if err != nil {
			b.Fatal(err)
		}
		var recs []*kgo.Record
		for _, r := range chunk {
			recs = enc.Append(recs, r.Event)
		}
		if err := txn.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
			b.Fatal(err)
		}
		if len(chunk) < 50000 {
			break
		}
		after = chunk[len(chunk)-1].Key
	}
	kopts, err := kafkaconfig.Opts(&cfg.Kafka, nil)
	if err != nil {
		b.Fatal(err)
	}

	for _, mem := range []int{verify.DefaultSortMemory, 4 << 20} {
		b.Run(fmt.Sprintf("sort=%dMiB", mem>>20), func(b *testing.B) {
			b.ReportAllocs()
			peak := samplePeak("/gc/heap/live:bytes")
			start := time.Now()
			n := 0
			for b.Loop() {
				err := verify.Run(ctx, verify.Config{
					Reader: rr, Kafka: kopts, OffsetsTopic: cfg.Kafka.OffsetsTopic, SourceID: cfg.ID, TopicPrefix: "shop",
					ChunkSize: 10000, SortMemory: mem, TempDir: b.TempDir(), Out: io.Discard,
				})
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(rows*n)/time.Since(start).Seconds(), "rows/s")
			b.ReportMetric(float64(peak())/(1<<20), "peak-live-heap-MiB")
		})
	}
}

// samplePeak samples a runtime metric every 10ms until the returned
// function is called, which returns the highest sample.
func samplePeak(metric string) func() uint64 {
	stop := make(chan struct{})
	done := make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: metric}}
		var peak uint64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(stop); return <-done }
}
