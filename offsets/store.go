package offsets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
)

// EnsureTopic creates the offsets topic when missing: one partition,
// cleanup.policy=compact. An existing topic with more than one partition or
// without compaction is refused, since the last-value-wins rule needs both.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string, replication int16) error {
	resp, err := adm.CreateTopic(ctx, 1, replication, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"),
	}, topic)
	if err == nil {
		err = resp.Err
	}
	if err == nil {
		return nil
	}
	if !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("offsets: create topic %q (kafka.offsets_topic): %w", topic, err)
	}
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("offsets: describe topic %q: %w", topic, err)
	}
	td, ok := details[topic]
	if !ok || td.Err != nil {
		return fmt.Errorf("offsets: describe topic %q: %v", topic, td.Err)
	}
	if n := len(td.Partitions); n != 1 {
		return fmt.Errorf("offsets: topic %q has %d partitions, needs exactly 1; point kafka.offsets_topic at a new topic", topic, n)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return fmt.Errorf("offsets: describe configs of %q: %w", topic, err)
	}
	for _, rc := range cfgs {
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil && *c.Value != "compact" && *c.Value != "compact,delete" && *c.Value != "delete,compact" {
				return fmt.Errorf("offsets: topic %q has cleanup.policy=%s, needs compact; set it with kafka-configs --alter --add-config cleanup.policy=compact", topic, *c.Value)
			}
		}
	}
	return nil
}

// Load returns the last committed record for id in topic, or nil when there
// is none. It reads the single partition read_committed from the start up
// to the last stable offset, with its own short-lived client built from
// opts (the connection options: brokers, TLS, SASL).
func Load(ctx context.Context, opts []kgo.Opt, topic, id string) (*Record, error) {
	value, found, err := LoadRaw(ctx, opts, topic, id)
	if err != nil || !found {
		return nil, err
	}
	return Decode(value)
}

// loadIdle is how long Load waits for the offsets topic's position to
// move before it gives up: the topic is small and written in short
// transactions, so a long stall means a broker problem.
const loadIdle = 10 * time.Second

// LoadRaw is Load without decoding: the last committed value for id, which
// is nil after a reset. It reads as kafkaclient.ReadToEnd does.
func LoadRaw(ctx context.Context, opts []kgo.Opt, topic, id string) ([]byte, bool, error) {
	var (
		value []byte
		found bool
	)
	err := kafkaclient.ReadToEnd(ctx, opts, []string{topic}, kafkaclient.ReadOptions{Idle: loadIdle}, func(r *kgo.Record) error {
		if string(r.Key) == id {
			value, found = r.Value, true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("offsets: %w", err)
	}
	return value, found, nil
}
