package kafkaconfig_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/devbroker"
	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
)

func TestCompressionNames(t *testing.T) {
	if _, err := kafkaconfig.Compression("brotli"); err == nil || !strings.Contains(err.Error(), "kafka.compression") {
		t.Errorf("Compression(brotli) error = %v, want one naming kafka.compression", err)
	}
	def, err := kafkaconfig.Compression("")
	if err != nil {
		t.Fatal(err)
	}
	named, _ := kafkaconfig.Compression(config.DefaultCompression)
	if def != named {
		t.Errorf("empty name gives %v, want the default %s", def, config.DefaultCompression)
	}
}

// The codec kafka.compression names is the one the batches reach the broker
// with: a reader sees it in each batch's attributes.
func TestCompressionOnTheWire(t *testing.T) {
	brk, err := devbroker.Start(devbroker.Config{Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { brk.Close() })
	want := map[string]kgo.CompressionCodecType{
		"none": kgo.CodecNone, "gzip": kgo.CodecGzip, "snappy": kgo.CodecSnappy, "lz4": kgo.CodecLz4, "zstd": kgo.CodecZstd,
	}
	recs := orderRecords(200)
	for _, name := range config.Compressions {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			topic := "compression." + name
			opts, err := kafkaconfig.Opts(&config.Kafka{Brokers: []string{brk.Addr()}, Compression: name}, nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(topic))...)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if _, err := kadm.NewClient(p).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			// Many records per batch: franz-go sends a batch that would not
			// shrink uncompressed.
			batch := make([]*kgo.Record, len(recs))
			for i, r := range recs {
				batch[i] = &kgo.Record{Key: r.Key, Value: r.Value}
			}
			if err := p.ProduceSync(ctx, batch...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			seen := map[kgo.CompressionCodecType]int{}
			c, err := kgo.NewClient(kgo.SeedBrokers(brk.Addr()), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.WithHooks(batchCodecs{&mu, seen}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for n := 0; n < len(recs); {
				fs := c.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatal(err)
				}
				n += fs.NumRecords()
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 1 || seen[want[name]] == 0 {
				t.Fatalf("batch codecs seen: %v, want only %v", seen, want[name])
			}
		})
	}
}

type batchCodecs struct {
	mu   *sync.Mutex
	seen map[kgo.CompressionCodecType]int
}

func (h batchCodecs) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h.mu.Lock()
	h.seen[kgo.CompressionCodecType(m.CompressionType)]++
	h.mu.Unlock()
}
