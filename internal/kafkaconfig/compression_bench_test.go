package kafkaconfig_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/relay"
)

// BenchmarkCompression produces debezium-json change records of an orders
// table into the broker StartBroker runs (CDCRELAY_TEST_KAFKA) with each
// kafka.compression codec, with the relay's producer options, in Kafka transactions of 2000
// records (kafka.batch_max_events) each followed by an offsets record, as
// the relay writes them. One op is one record. Besides ns/op it reports:
//
//   - rec/s: records per second;
//   - client-µs/rec: CPU (user+system) of this process per record;
//   - broker-µs/rec: CPU of the broker process per record;
//   - wire-B/rec: bytes of the record batches sent, after compression.
//
// Run it several times, interleaved, and compare medians:
//
//	go test -run '^$' -bench Compression -benchtime 100000x -count 5 ./internal/kafkaconfig
func BenchmarkCompression(b *testing.B) {
	brk := testenv.StartBroker(b)
	pid := brk.Pid()
	recs := orderRecords(20000)
	for _, codec := range config.Compressions {
		b.Run(codec, func(b *testing.B) {
			produceBench(b, brk.Addr, pid, codec, recs)
		})
	}
}

var benchTopics atomic.Int64

func produceBench(b *testing.B, addr string, brokerPID int, codec string, recs []*kgo.Record) {
	ctx := context.Background()
	n := benchTopics.Add(1)
	topic := fmt.Sprintf("bench.%s.%d", codec, n)
	posTopic := topic + ".pos"
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		b.Fatal(err)
	}
	policy := "compact"
	ac := kadm.NewClient(adm)
	_, err = ac.CreateTopic(ctx, 3, 1, map[string]*string{"cleanup.policy": &policy}, topic)
	if err == nil {
		_, err = ac.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &policy}, posTopic)
	}
	adm.Close()
	if err != nil {
		b.Fatal(err)
	}
	opts, err := kafkaconfig.Opts(&config.Kafka{Brokers: []string{addr}, Compression: codec}, nil)
	if err != nil {
		b.Fatal(err)
	}
	var wire atomic.Int64
	opts = append(opts,
		kgo.TransactionalID(fmt.Sprintf("bench-compression-%d", n)),
		kgo.TransactionTimeout(time.Minute),
		kgo.DefaultProduceTopic(topic),
		kgo.WithHooks(batchBytes{&wire}),
	)
	cl, err := kgo.NewClient(append(opts, relay.ProducerOpts(config.DefaultMaxRecordBytes)...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	pos := []byte(strings.Repeat("p", 300))
	var mu sync.Mutex
	var perr error
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			perr = err
			mu.Unlock()
		}
	}
	const perTxn = 2000
	b.ReportAllocs()
	cpu0, brk0 := selfCPU(), procCPU(brokerPID)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; {
		if err := cl.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < perTxn && i < b.N; j++ {
			r := recs[i%len(recs)]
			cl.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers}, promise)
			i++
		}
		cl.Produce(ctx, &kgo.Record{Topic: posTopic, Key: []byte("bench"), Value: pos}, promise)
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		err := perr
		mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu, brkCPU := selfCPU()-cpu0, procCPU(brokerPID)-brk0
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rec/s")
	b.ReportMetric(per(cpu), "client-µs/rec")
	b.ReportMetric(per(brkCPU), "broker-µs/rec")
	b.ReportMetric(float64(wire.Load())/float64(b.N), "wire-B/rec")
}

// batchBytes counts the bytes of the batches written, after compression.
type batchBytes struct{ n *atomic.Int64 }

func (h batchBytes) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	h.n.Add(int64(m.CompressedBytes))
}

// orderRecords encodes n change events of an orders table the way the
// relay does: 70 % inserts, 20 % updates with a key-only before (REPLICA
// IDENTITY DEFAULT), 10 % deletes each followed by a tombstone, with
// headers, and values that vary the way a shop's orders do.
func orderRecords(n int) []*kgo.Record {
	enc := format.NewEncoder(format.Options{Value: format.DebeziumJSON, Tombstones: true, Headers: true,
		TopicPrefix: "shop", Version: "v1.4.0"})
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []string{"new", "paid", "packed", "shipped", "delivered", "cancelled"}
	currencies := []string{"EUR", "USD", "GBP", "CHF"}
	words := strings.Fields("please leave the parcel at the back door call before delivery gift wrap " +
		"no invoice in the box fragile handle with care second floor ring twice")
	base := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	lsn := uint64(0x3000000)
	var out []*kgo.Record
	for i := 0; len(out) < n; i++ {
		id := 100000 + rng.IntN(50000)
		key := []byte(`{"id":` + strconv.Itoa(id) + `}`)
		at := base.Add(time.Duration(i) * 37 * time.Millisecond)
		var note []string
		for range rng.IntN(8) {
			note = append(note, words[rng.IntN(len(words))])
		}
		row := &change.Row{
			Names: []string{"id", "customer_id", "status", "amount", "currency", "items", "note", "created_at", "updated_at"},
			Values: [][]byte{
				[]byte(strconv.Itoa(id)),
				[]byte(strconv.Itoa(1 + rng.IntN(20000))),
				change.String(statuses[rng.IntN(len(statuses))]),
				[]byte(fmt.Sprintf("%d.%02d", rng.IntN(500), rng.IntN(100))),
				change.String(currencies[rng.IntN(len(currencies))]),
				[]byte(strconv.Itoa(1 + rng.IntN(9))),
				change.String(strings.Join(note, " ")),
				change.String(at.Add(-time.Duration(rng.IntN(86400)) * time.Second).Format("2006-01-02 15:04:05.000000")),
				change.String(at.Format("2006-01-02 15:04:05.000000")),
			},
		}
		ev := &change.Event{
			Table: change.TableID{Namespace: "public", Name: "orders"}, Key: key,
			Source: change.Source{Connector: "postgresql", Name: "shop", DB: "shop", Schema: "public",
				Table: "orders", TsMs: at.UnixMilli(), LSN: lsn, TxID: uint32(9000 + i/20)},
		}
		lsn += uint64(200 + rng.IntN(400))
		ev.Position = []byte(fmt.Sprintf("%X/%X", uint32(lsn>>32), uint32(lsn)))
		switch p := rng.IntN(10); {
		case p < 7:
			ev.Op, ev.After = change.OpCreate, row
		case p < 9:
			ev.Op, ev.After = change.OpUpdate, row
			ev.Before = &change.Row{Names: []string{"id"}, Values: [][]byte{row.Values[0]}}
		default:
			ev.Op, ev.Before = change.OpDelete, &change.Row{Names: []string{"id"}, Values: [][]byte{row.Values[0]}}
		}
		out = enc.Append(out, ev)
	}
	return out[:n]
}

// procCPU is the user+system CPU time of process pid so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
