package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/gensource"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/offsets"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/sources"
)

// TestLoopExactlyOnce runs the loop against a broker (loopBroker), stops
// it with a cancel (SIGTERM) in the middle of the stream, starts it again
// from the offsets topic, and checks the result: the stored position of the
// first run covers exactly what it committed, and after the second run
// every event is in Kafka once, in per-key order. The loop keeps encoding
// while a commit is in flight, so this also checks that no record of the
// next transaction leaks into the one being committed.
func TestLoopExactlyOnce(t *testing.T) {
	testLoopExactlyOnce(t, gensource.Params{Txns: 3000, PerTxn: 10, Keys: 97, Payload: 2000})
}

// TestLoopExactlyOnceRuns is TestLoopExactlyOnce with events sent in runs
// (Message.Events), as snapshot chunks are, of up to change.MaxRun events
// and more than one run per transaction.
func TestLoopExactlyOnceRuns(t *testing.T) {
	testLoopExactlyOnce(t, gensource.Params{Txns: 600, PerTxn: change.MaxRun + 72, Keys: 997, Payload: 200, Runs: true})
}

func testLoopExactlyOnce(t *testing.T, params gensource.Params) {
	opts, log := loopBroker(t)
	txns, perTxn := params.Txns, params.PerTxn
	cfg := loopConfig(opts)

	// First run: stop once something is acked.
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	src := gensource.New(params)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.New(cfg, src, log, m, nil).Run(ctx) }()
	waitAcked(t, src, 200, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}
	first := storedTxn(t, opts)
	if first < 200 || int64(first) < src.Acked.Load() {
		t.Fatalf("stored position %d, acked %d: an ack ran ahead of the offsets", first, src.Acked.Load())
	}
	checkTopic(t, opts, first, perTxn)

	// Second run: to the end.
	src = gensource.New(params)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- relay.New(cfg, src, log, m, nil).Run(ctx) }()
	waitAcked(t, src, txns, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("second run: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "cdcrelay_restarts_total" {
			t.Errorf("the loop restarted (%v): a restart would hide a loop error from this test", mf.GetMetric())
		}
	}
	if got := storedTxn(t, opts); got != txns {
		t.Fatalf("stored position %d, want %d", got, txns)
	}
	checkTopic(t, opts, txns, perTxn)
}

// loopBroker starts a broker for one test (Apache Kafka unless
// CDCRELAY_TEST_KAFKA=dev), and returns the client options that reach it
// and a silent logger.
func loopBroker(t *testing.T) ([]kgo.Opt, *slog.Logger) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a broker")
	}
	b := testenv.StartBroker(t)
	return []kgo.Opt{kgo.SeedBrokers(b.Addr)}, slog.New(slog.NewTextHandler(io.Discard, nil))
}

// loopConfig is the relay's configuration in these tests: source id and
// topic prefix "loop", small transactions.
func loopConfig(opts []kgo.Opt) relay.Config {
	return relay.Config{
		ID: "loop", Kafka: opts, OffsetsTopic: "offsets",
		TopicPartitions: 3, TopicReplication: 1, TopicCleanupPolicy: "compact",
		TransactionTimeout: time.Minute, BatchMaxEvents: 500, BatchLinger: 5 * time.Millisecond,
		Format: format.Options{Value: format.DebeziumJSON, Headers: true, TopicPrefix: "loop", Version: "test"},
	}
}

func waitAcked(t *testing.T, src *gensource.Source, n int, done <-chan error) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for src.Acked.Load() < int64(n) {
		select {
		case err := <-done:
			t.Fatalf("relay stopped: %v", err)
		case <-deadline:
			t.Fatalf("only %d of %d transactions acked", src.Acked.Load(), n)
		case <-time.After(time.Millisecond):
		}
	}
}

func storedTxn(t *testing.T, opts []kgo.Opt) int {
	t.Helper()
	rec, err := offsets.Load(context.Background(), opts, "offsets", "loop")
	if err != nil || rec == nil {
		t.Fatalf("load offsets: %v (record %v)", err, rec)
	}
	var st gensource.State
	if err := json.Unmarshal(rec.State, &st); err != nil {
		t.Fatal(err)
	}
	return st.Txn
}

// checkTopic reads the topic read_committed and checks it holds each event
// of transactions 1..upTo exactly once and nothing else, in per-key order.
func checkTopic(t *testing.T, opts []kgo.Opt, upTo, perTxn int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic = "loop.gen.items"
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	adm.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[[2]int]bool{}
	last := map[string]int{}
	n := 0
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %v (partitions left: %v)", topic, ctx.Err(), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			var v struct {
				After struct{ Txn, I int } `json:"after"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("record %s: %v", r.Value, err)
			}
			k := [2]int{v.After.Txn, v.After.I}
			switch {
			case seen[k]:
				t.Errorf("duplicate: txn %d event %d", k[0], k[1])
			case k[0] > upTo:
				t.Errorf("txn %d is committed, the stored position is %d", k[0], upTo)
			case k[0] < last[string(r.Key)]:
				t.Errorf("key %s: txn %d after txn %d", r.Key, k[0], last[string(r.Key)])
			}
			seen[k] = true
			last[string(r.Key)] = k[0]
			n++
		})
	}
	if n != upTo*perTxn {
		t.Fatalf("read %d records, want %d", n, upTo*perTxn)
	}
}

// TestRecordTooLargeIsFatal: an event larger than kafka.max_record_bytes
// stops the relay at once with an error that names the setting, instead of
// retrying the same row for ever, and commits nothing. With the bound raised
// the same rows go through.
func TestRecordTooLargeIsFatal(t *testing.T) {
	opts, log := loopBroker(t)
	cfg := loopConfig(opts)
	cfg.Format.TopicPrefix, cfg.MaxRecordBytes = "small", 64<<10
	const txns, perTxn = 5, 2
	params := gensource.Params{Txns: txns, PerTxn: perTxn, Keys: 7, Payload: 100 << 10}

	src := gensource.New(params)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := relay.New(cfg, src, log, metrics.New(prometheus.NewRegistry()), nil).Run(ctx)
	var fatal *sources.FatalError
	if !errors.As(err, &fatal) || !strings.Contains(err.Error(), "kafka.max_record_bytes (65536)") {
		t.Fatalf("Run = %v, want a fatal error naming kafka.max_record_bytes (65536)", err)
	}
	if n := src.Acked.Load(); n != 0 {
		t.Fatalf("%d transactions acked before the failure", n)
	}
	if rec, err := offsets.Load(context.Background(), opts, "offsets", "loop"); err != nil || rec != nil {
		t.Fatalf("offsets after the failure: %v, %v; want none stored", rec, err)
	}

	// A bound above Kafka's default also goes into the topics the relay
	// creates.
	cfg.MaxRecordBytes, cfg.Format.TopicPrefix = 1<<20, "loop"
	src = gensource.New(params)
	done := make(chan error, 1)
	rctx, rcancel := context.WithCancel(context.Background())
	go func() { done <- relay.New(cfg, src, log, metrics.New(prometheus.NewRegistry()), nil).Run(rctx) }()
	waitAcked(t, src, txns, done)
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("run with the bound raised: %v", err)
	}
	checkTopic(t, opts, txns, perTxn)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(context.Background(), "loop.gen.items")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("loop.gen.items", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" {
			got = c.MaybeValue()
		}
	}
	if got != "1048576" {
		t.Fatalf("topic max.message.bytes = %q, want 1048576", got)
	}
}

// TestTransactionTimeoutIsFatal: a source transaction that stays open longer
// than kafka.transaction_timeout is aborted by the broker's transaction
// coordinator. The relay stops with an error that names the setting, nothing
// of the aborted transaction is visible to a read_committed reader, and with
// a longer timeout the same transactions go through.
func TestTransactionTimeoutIsFatal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	if testenv.BrokerKind() != testenv.KindApache {
		t.Skip("Apache Kafka only: after the dev broker aborts a timed-out transaction, it answers the next instance's commit as fenced (internal/devbroker's doc)")
	}
	// The coordinator looks for timed-out transactions every 10 s by
	// default.
	b := testenv.StartKafka(t, testenv.KafkaConf("transaction.abort.timed.out.transaction.cleanup.interval.ms=200"))
	opts := []kgo.Opt{kgo.SeedBrokers(b.Addr)}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay log:\n%s", logs.String())
		}
	})
	cfg := loopConfig(opts)
	cfg.TransactionTimeout, cfg.BatchMaxEvents = 2*time.Second, 1000
	// Two quick transactions, then the third takes 4 s to pass.
	const txns, perTxn = 3, 8
	params := gensource.Params{Txns: txns, PerTxn: perTxn, Keys: 5, Payload: 10}
	slow := gensource.New(params)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := &slowThird{Source: slow, gap: 500 * time.Millisecond}
	err := relay.New(cfg, src, log, metrics.New(prometheus.NewRegistry()), nil).Run(ctx)
	var fatal *sources.FatalError
	if !errors.As(err, &fatal) || !errors.Is(err, relay.ErrTxnTimedOut) || !strings.Contains(err.Error(), "kafka.transaction_timeout (2s)") {
		t.Fatalf("Run = %v, want a fatal error naming kafka.transaction_timeout (2s)", err)
	}
	if got := storedTxn(t, opts); got >= txns {
		t.Fatalf("stored position covers transaction %d, which the broker aborted", got)
	}

	cfg.TransactionTimeout = time.Minute
	src = &slowThird{Source: gensource.New(params), gap: 500 * time.Millisecond}
	done := make(chan error, 1)
	rctx, rcancel := context.WithCancel(context.Background())
	go func() { done <- relay.New(cfg, src, log, metrics.New(prometheus.NewRegistry()), nil).Run(rctx) }()
	waitAcked(t, src.Source, txns, done)
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("run with a longer timeout: %v", err)
	}
	checkTopic(t, opts, txns, perTxn)
}

// slowThird is a generator whose third transaction pauses between events.
// It sends that transaction's first event only once the second one is
// acked: a commit in flight holds the events that arrive meanwhile, and on
// a loaded machine it could hold the whole slow transaction, which Kafka
// would then see open for only a moment.
type slowThird struct {
	*gensource.Source
	gap time.Duration

	once   sync.Once
	second chan struct{} // closed once transaction 2 is acked
}

func (s *slowThird) init() { s.once.Do(func() { s.second = make(chan struct{}) }) }

func (s *slowThird) Ack(cp *change.Checkpoint) {
	s.init()
	if cp.LSN >= 2 {
		select {
		case <-s.second:
		default:
			close(s.second)
		}
	}
	s.Source.Ack(cp)
}

func (s *slowThird) Run(ctx context.Context, resume *change.Resume, out chan<- change.Message) error {
	s.init()
	mid := make(chan change.Message)
	errc := make(chan error, 1)
	go func() { errc <- s.Source.Run(ctx, resume, mid) }()
	txn := 1
	if resume != nil && len(resume.State) > 0 {
		var st gensource.State
		if err := json.Unmarshal(resume.State, &st); err == nil {
			txn = st.Txn + 1
		}
	}
	second := s.second
	if txn > 2 {
		second = nil // transaction 2 was committed before this run
	}
	for {
		select {
		case m := <-mid:
			if m.Checkpoint != nil {
				txn++
			} else if txn == 3 {
				if second != nil {
					select {
					case <-second:
					case <-ctx.Done():
						return <-errc
					}
					second = nil
				}
				time.Sleep(s.gap)
			}
			select {
			case out <- m:
			case <-ctx.Done():
				return <-errc
			}
		case err := <-errc:
			return err
		}
	}
}

// TestOffsetsTopicLayoutIsFatal: an offsets topic that deletes is refused
// at once, with no retry: no restart can fix it.
func TestOffsetsTopicLayoutIsFatal(t *testing.T) {
	opts, log := loopBroker(t)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, "offsets"); err != nil {
		t.Fatal(err)
	}
	src := gensource.New(gensource.Params{Txns: 3, PerTxn: 2, Keys: 7})
	start := time.Now()
	err = relay.New(loopConfig(opts), src, log, metrics.New(prometheus.NewRegistry()), nil).Run(ctx)
	var fatal *sources.FatalError
	if !errors.As(err, &fatal) || !errors.Is(err, offsets.ErrTopicLayout) || !strings.Contains(err.Error(), "cleanup.policy=delete") {
		t.Fatalf("Run = %v, want a fatal error naming cleanup.policy=delete", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("Run took %v: it retried", d)
	}
	if n := src.Acked.Load(); n != 0 {
		t.Fatalf("%d transactions acked", n)
	}
}

// TestTransactionTimeoutAboveBrokerMax: a kafka.transaction_timeout longer
// than the brokers' transaction.max.timeout.ms stops the relay at once with
// one line naming both settings, instead of retrying for ever.
func TestTransactionTimeoutAboveBrokerMax(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	if testenv.BrokerKind() != testenv.KindApache {
		t.Skip("Apache Kafka only: the dev broker has no transaction.max.timeout.ms")
	}
	b := testenv.StartKafka(t, testenv.KafkaTxnMaxTimeout(5*time.Second))
	opts := []kgo.Opt{kgo.SeedBrokers(b.Addr)}
	cfg := loopConfig(opts)
	cfg.TransactionTimeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := gensource.New(gensource.Params{Txns: 3, PerTxn: 2, Keys: 3})
	err := relay.New(cfg, src, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New(prometheus.NewRegistry()), nil).Run(ctx)
	var fatal *sources.FatalError
	if !errors.As(err, &fatal) || !strings.Contains(err.Error(), "kafka.transaction_timeout") || !strings.Contains(err.Error(), "transaction.max.timeout.ms") {
		t.Fatalf("Run = %v, want a fatal error naming kafka.transaction_timeout and transaction.max.timeout.ms", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Run retried until the deadline")
	}
}

// withParts is a generator whose checkpoint of transaction n carries the
// part "p/<n mod partsOf>" with value n.
type withParts struct{ *gensource.Source }

const partsOf = 50

func (s withParts) Run(ctx context.Context, resume *change.Resume, out chan<- change.Message) error {
	mid := make(chan change.Message)
	errc := make(chan error, 1)
	go func() { errc <- s.Source.Run(ctx, resume, mid) }()
	for {
		select {
		case m := <-mid:
			if cp := m.Checkpoint; cp != nil {
				var st gensource.State
				if err := json.Unmarshal(cp.State, &st); err != nil {
					return err
				}
				c := *cp
				c.Parts = []change.Part{{Name: "p/" + strconv.Itoa(st.Txn%partsOf), Value: []byte(strconv.Itoa(st.Txn))}}
				m.Checkpoint = &c
			}
			select {
			case out <- m:
			case <-ctx.Done():
			}
		case err := <-errc:
			return err
		}
	}
}

// checkParts checks that the stored parts are exactly those of the
// checkpoints up to the stored position: none lost when several checkpoints
// end up in one Kafka transaction, none ahead of the position.
func checkParts(t *testing.T, opts []kgo.Opt) {
	t.Helper()
	rec, err := offsets.Load(context.Background(), opts, "offsets", "loop")
	if err != nil || rec == nil {
		t.Fatalf("load offsets: %v (record %v)", err, rec)
	}
	var st gensource.State
	if err := json.Unmarshal(rec.State, &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for n := max(1, st.Txn-partsOf+1); n <= st.Txn; n++ {
		want["p/"+strconv.Itoa(n%partsOf)] = strconv.Itoa(n)
	}
	if len(rec.Parts) != len(want) {
		t.Fatalf("%d parts stored at transaction %d, want %d", len(rec.Parts), st.Txn, len(want))
	}
	for name, v := range want {
		if got := string(rec.Parts[name]); got != v {
			t.Fatalf("at transaction %d part %s = %q, want %q", st.Txn, name, got, v)
		}
	}
}

// The parts of every checkpoint commit with the offsets record that
// covers them, across a stop and a restart.
func TestLoopWritesParts(t *testing.T) {
	opts, log := loopBroker(t)
	cfg := loopConfig(opts)
	params := gensource.Params{Txns: 2000, PerTxn: 10, Keys: 97, Payload: 100}
	for _, upTo := range []int{300, params.Txns} {
		gen := gensource.New(params)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- relay.New(cfg, withParts{gen}, log, metrics.New(prometheus.NewRegistry()), nil).Run(ctx)
		}()
		waitAcked(t, gen, upTo, done)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		checkParts(t, opts)
	}
}

// withTables is a generator that lists tables (sources.TableLister).
type withTables struct {
	*gensource.Source
	tables []change.TableID
}

func (s withTables) Tables(context.Context) ([]change.TableID, error) { return s.tables, nil }

// The tables a source lists get their topics, more than one request's
// worth, with the configured partitions, while the source runs: the
// source's table sits in the third batch (100, then 500 a batch), so its
// first event waits for that batch and the producer's priming. Priming
// writes nothing to the topics.
func TestLoopCreatesListedTopics(t *testing.T) {
	opts, log := loopBroker(t)
	cfg := loopConfig(opts)
	// One partition each keeps the test broker's partitions few.
	cfg.TopicPartitions = 1
	const n = 1200
	gen := change.TableID{Namespace: "gen", Name: "items"}
	src := withTables{Source: gensource.New(gensource.Params{Txns: 5, PerTxn: 2, Keys: 7, Payload: 10})}
	for i := range n {
		if i == 700 {
			src.tables = append(src.tables, gen)
		}
		src.tables = append(src.tables, change.TableID{Namespace: "many", Name: "t" + strconv.Itoa(i)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.New(cfg, src, log, metrics.New(prometheus.NewRegistry()), nil).Run(ctx) }()
	waitAcked(t, src.Source, 5, done)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	enc := format.NewEncoder(cfg.Format)
	// The relay goes on creating the topics after the source's events are
	// in; the broker answering metadata may learn of the last topics
	// created a moment after the controller.
	var missing []string
	for try := 0; try < 240; try++ {
		details, err := kadm.NewClient(cl).ListTopics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		missing = missing[:0]
		for _, tb := range src.tables {
			if d, ok := details[enc.Topic(tb)]; !ok || len(d.Partitions) != int(cfg.TopicPartitions) {
				missing = append(missing, fmt.Sprintf("%s (exists %v, %d partitions, err %v)", enc.Topic(tb), ok, len(d.Partitions), d.Err))
			}
		}
		if len(missing) == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d topics missing or with other partitions, e.g. %s", len(missing), len(src.tables), missing[0])
	}
	var listed []string
	for _, tb := range src.tables {
		listed = append(listed, enc.Topic(tb))
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), listed...)
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Errorf("end offset of %s: %v", o.Topic, o.Err)
		} else if o.Offset != 0 {
			written[o.Topic] += o.Offset
		}
	})
	if got := len(ends.Offsets()); got != len(src.tables) {
		t.Fatalf("%d of %d listed topics answered", got, len(src.tables))
	}
	genTopic := enc.Topic(gen)
	// Five transactions of two events, each record followed by its
	// transaction's commit marker in the same partition.
	if len(written) != 1 || written[genTopic] < 10 {
		t.Fatalf("records in %v; want them only in %s, at least 10", written, genTopic)
	}
}

// syncBuffer is a bytes.Buffer that the relay's goroutines may log to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLoopKeepsExistingTopicPartitions: topic_partitions applies to the
// topics the relay creates. A listed table whose topic already exists with
// fewer partitions (created by hand, or before topic_partitions was raised)
// is written as it is, without waiting for partitions it will never have.
func TestLoopKeepsExistingTopicPartitions(t *testing.T) {
	opts, log := loopBroker(t)
	cfg := loopConfig(opts)
	cfg.TopicPartitions = 3
	gen := change.TableID{Namespace: "gen", Name: "items"}
	topic := format.NewEncoder(cfg.Format).Topic(gen)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(context.Background(), 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	src := withTables{Source: gensource.New(gensource.Params{Txns: 5, PerTxn: 2, Keys: 7, Payload: 10}), tables: []change.TableID{gen}}
	m := metrics.New(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.New(cfg, src, log, m, nil).Run(ctx) }()
	waitAcked(t, src.Source, 5, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.Restarts); n != 0 {
		t.Errorf("the relay restarted its session (%d causes counted)", n)
	}
	details, err := adm.ListTopics(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(details[topic].Partitions); got != 1 {
		t.Errorf("%s has %d partitions, want the 1 it was created with", topic, got)
	}
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup(topic, 0); o.Offset == 0 {
		t.Errorf("nothing written to %s: %+v", topic, o)
	}
}

// A listed topic the broker refuses to create (here: more replicas than
// the one test broker) ends the session with the broker's error, as the
// relay restarts a session after a Kafka error; the source's events for
// it are never acked.
func TestLoopTopicMakerFailureEndsSession(t *testing.T) {
	opts, _ := loopBroker(t)
	cfg := loopConfig(opts)
	cfg.TopicPartitions, cfg.TopicReplication = 1, 3
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The offsets topic exists already, so the session gets as far as the
	// listed tables' topics.
	if err := offsets.EnsureTopic(context.Background(), cl, cfg.OffsetsTopic, 1); err != nil {
		t.Fatal(err)
	}
	src := withTables{Source: gensource.New(gensource.Params{Txns: 5, PerTxn: 2, Keys: 7, Payload: 10}),
		tables: []change.TableID{{Namespace: "gen", Name: "items"}, {Namespace: "gen", Name: "other"}}}
	var buf syncBuffer
	m := metrics.New(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.New(cfg, src, slog.New(slog.NewTextHandler(&buf, nil)), m, nil).Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for testutil.ToFloat64(m.Restarts.WithLabelValues("kafka_INVALID_REPLICATION_FACTOR")) < 1 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if testutil.ToFloat64(m.Restarts.WithLabelValues("kafka_INVALID_REPLICATION_FACTOR")) < 1 {
		t.Fatalf("no session ended on the refused topics; log:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "INVALID_REPLICATION_FACTOR") {
		t.Errorf("the log does not name the broker's error:\n%s", buf.String())
	}
	if n := src.Acked.Load(); n != 0 {
		t.Errorf("%d transactions acked with their topics never created", n)
	}
}
