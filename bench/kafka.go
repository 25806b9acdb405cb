package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
	"github.com/cdcrelay/cdcrelay/offsets"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/sources/mysql"
)

const offsetsTopic = "cdcrelay_offsets"

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// storedPos is the last committed offsets record of one source id.
type storedPos struct {
	seq      int // how many records of this id were seen
	lsn      uint64
	gtid     uint64 // MariaDB: sequence number of the domain 0 GTID
	snapDone int
	snapQ    int
	size     int // bytes of the record value
	seen     time.Time
}

// offsetsWatch tails the offsets topic read_committed and keeps the last
// record of every source id.
type offsetsWatch struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every record
	last    map[string]storedPos
}

func (b *bench) watchOffsets(ctx context.Context) (*offsetsWatch, error) {
	w := &offsetsWatch{changed: make(chan struct{}), last: map[string]storedPos{}}
	// The topic is created as the relays create it (compacted, one
	// partition) before anyone reads it: a broker that creates topics on
	// first use would otherwise make it with its defaults, which the
	// relays refuse.
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.brokerAddr))
	if err != nil {
		return nil, err
	}
	err = offsets.EnsureTopic(ctx, adm, offsetsTopic, 1)
	adm.Close()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokerAddr),
		kgo.ConsumeTopics(offsetsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.MetadataMinAge(250*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	go func() {
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				rec, err := offsets.Decode(r.Value)
				if err != nil || rec == nil {
					return
				}
				var st struct {
					LSN      string `json:"lsn"`
					GTID     string `json:"gtid"`
					Snapshot struct {
						Queue    []json.RawMessage `json:"queue"`
						Done     []string          `json:"done"`
						Apart    bool              `json:"apart"`
						Waiting  int               `json:"waiting"`
						Finished int               `json:"finished"`
					} `json:"snapshot"`
				}
				_ = json.Unmarshal(rec.State, &st)
				w.mu.Lock()
				p := w.last[string(r.Key)]
				p.seq++
				p.lsn = parseLSN(st.LSN)
				p.gtid = gtidSeq(st.GTID)
				p.snapDone = len(st.Snapshot.Done) + st.Snapshot.Finished
				p.snapQ = len(st.Snapshot.Queue)
				if st.Snapshot.Apart {
					p.snapQ = st.Snapshot.Waiting
				}
				p.size = len(r.Value)
				p.seen = now
				w.last[string(r.Key)] = p
				close(w.changed)
				w.changed = make(chan struct{})
				w.mu.Unlock()
			})
		}
	}()
	return w, nil
}

func (w *offsetsWatch) get(id string) (storedPos, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[id], w.changed
}

// waitFor waits until cond holds for id's last record, the relay exits, or
// timeout passes. It returns the record and when it was seen.
func (w *offsetsWatch) waitFor(ctx context.Context, id string, p *relayProc, timeout time.Duration, cond func(storedPos) bool) (storedPos, error) {
	deadline := time.After(timeout)
	for {
		pos, ch := w.get(id)
		if cond(pos) {
			return pos, nil
		}
		var done <-chan struct{}
		if p != nil {
			done = p.done
		}
		select {
		case <-ch:
		case <-done:
			return pos, p.check()
		case <-deadline:
			return pos, fmt.Errorf("offsets of %s: condition not met within %v (last lsn %s)", id, timeout, fmtLSN(pos.lsn))
		case <-ctx.Done():
			return pos, ctx.Err()
		}
	}
}

func parseLSN(s string) uint64 {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0
	}
	return uint64(hi)<<32 | uint64(lo)
}

// gtidSeq returns the sequence number of the domain 0 entry of a MariaDB
// GTID position such as "0-1-1234,1-7-88"; 0 when it has none.
func gtidSeq(s string) uint64 {
	seqs, _ := mysql.MariaDBSeqs(s)
	return seqs[0]
}

func fmtLSN(v uint64) string { return fmt.Sprintf("%X/%X", uint32(v>>32), uint32(v)) }

// topicSample is what the relay wrote into one topic: record count and a
// sample of records (key and value bytes, nil value for tombstones).
type topicSample struct {
	records    int
	keyBytes   int64
	valueBytes int64
	sample     []*kgo.Record
}

func (s topicSample) meanKey() float64   { return float64(s.keyBytes) / float64(max(1, s.records)) }
func (s topicSample) meanValue() float64 { return float64(s.valueBytes) / float64(max(1, s.records)) }

// readTopic consumes topic read_committed up to its committed end and
// counts records, keeping up to keep of them.
func (b *bench) readTopic(ctx context.Context, topic string, keep int) (topicSample, error) {
	var s topicSample
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	opts := []kgo.Opt{kgo.SeedBrokers(b.brokerAddr)}
	err := kafkaclient.ReadToEnd(ctx, opts, []string{topic}, kafkaclient.ReadOptions{FetchMaxBytes: 64 << 20}, func(r *kgo.Record) error {
		s.records++
		s.keyBytes += int64(len(r.Key))
		s.valueBytes += int64(len(r.Value))
		if len(s.sample) < keep {
			s.sample = append(s.sample, &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers})
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("read %s: %w", topic, err)
	}
	return s, nil
}

// produceLimit writes n records cycling through sample into a fresh topic
// with partitions partitions, in Kafka transactions of batch records each
// followed by one small record in a single-partition topic (as the relay
// writes its offsets record). It returns the elapsed time.
//
// It runs against the broker the relay wrote to, with the relay's producer:
// the connection options of `cdcrelay run` (kafkaconfig.Opts) and the
// producer options of the relay (relay.ProducerOpts: partitioner, buffer
// bounds, linger, retries; batch size and acks are franz-go's defaults in
// both), with the relays' kafka.compression (-compression), and into topics
// created as the relay creates its own (cleanup.policy=compact). Each transaction is flushed and committed
// before the next one begins.
func (b *bench) produceLimit(ctx context.Context, name string, sample []*kgo.Record, n, batch int, partitions int32) (time.Duration, error) {
	if len(sample) == 0 {
		return 0, errors.New("produce limit: no sample records")
	}
	batch = max(1, batch)
	topic := "limit." + name
	posTopic := "limit." + name + ".pos"
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.brokerAddr))
	if err != nil {
		return 0, err
	}
	ac := kadm.NewClient(adm)
	policy := "compact"
	compact := map[string]*string{"cleanup.policy": &policy}
	_, err = ac.CreateTopic(ctx, partitions, 1, compact, topic)
	if err == nil {
		_, err = ac.CreateTopic(ctx, 1, 1, compact, posTopic)
	}
	adm.Close()
	if err != nil {
		return 0, err
	}
	opts, err := kafkaconfig.Opts(&config.Kafka{Brokers: []string{b.brokerAddr}, Compression: b.compression}, nil)
	if err != nil {
		return 0, err
	}
	opts = append(opts,
		kgo.TransactionalID("bench-limit-"+name),
		kgo.TransactionTimeout(60*time.Second), // the bench's relays run with 60s too
		kgo.DefaultProduceTopic(topic),
	)
	cl, err := kgo.NewClient(append(opts, relay.ProducerOpts(config.DefaultMaxRecordBytes)...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	pos := []byte(strings.Repeat("p", 300))
	var perr error
	var mu sync.Mutex
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			perr = err
			mu.Unlock()
		}
	}
	start := time.Now()
	for i := 0; i < n; {
		if err := cl.BeginTransaction(); err != nil {
			return 0, err
		}
		for j := 0; j < batch && i < n; j++ {
			s := sample[i%len(sample)]
			cl.Produce(ctx, &kgo.Record{Key: s.Key, Value: s.Value, Headers: s.Headers}, promise)
			i++
		}
		cl.Produce(ctx, &kgo.Record{Topic: posTopic, Key: []byte(name), Value: pos}, promise)
		if err := cl.Flush(ctx); err != nil {
			return 0, err
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return 0, err
		}
		mu.Lock()
		err := perr
		mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// createTopic creates topic as the relay would (3 partitions, compact).
func (b *bench) createTopic(ctx context.Context, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokerAddr))
	if err != nil {
		return err
	}
	defer cl.Close()
	policy := "compact"
	_, err = kadm.NewClient(cl).CreateTopic(ctx, 3, 1, map[string]*string{"cleanup.policy": &policy}, topic)
	return err
}

// topicEnd sums the committed end offsets of topic's partitions (control
// records included).
func (b *bench) topicEnd(ctx context.Context, topic string) (int64, error) {
	ends, _, err := kafkaclient.StableEnds(ctx, []kgo.Opt{kgo.SeedBrokers(b.brokerAddr)}, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, end := range ends[topic] {
		n += end
	}
	return n, nil
}
