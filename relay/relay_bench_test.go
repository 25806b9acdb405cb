package relay_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/gensource"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/relay"
)

// BenchmarkTransactionalLoop drives the whole loop (encode, produce, offsets
// record, commit, ack) against a broker (Apache Kafka unless
// CDCRELAY_TEST_KAFKA=dev); one op is one event, so ns/op and allocs/op are
// per event.
func BenchmarkTransactionalLoop(b *testing.B) {
	brk := testenv.StartBroker(b)
	const perTxn = 100
	txns := (b.N + perTxn - 1) / perTxn
	src := gensource.New(gensource.Params{Txns: txns, PerTxn: perTxn, Keys: 10000, Payload: 200})
	r := relay.New(relay.Config{
		ID: "bench", Kafka: []kgo.Opt{kgo.SeedBrokers(brk.Addr)}, OffsetsTopic: "offsets",
		TopicPartitions: 3, TopicReplication: 1, TopicCleanupPolicy: "compact",
		TransactionTimeout: time.Minute, BatchMaxEvents: 10000, BatchLinger: 100 * time.Millisecond,
		Format: format.Options{Value: format.DebeziumJSON, Tombstones: true, Headers: true, TopicPrefix: "bench", Version: "bench"},
	}, src, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.Discard(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() { done <- r.Run(ctx) }()
	for src.Acked.Load() < int64(txns) {
		select {
		case err := <-done:
			b.Fatalf("relay stopped: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(txns*perTxn)/elapsed.Seconds(), "events/s")
}
