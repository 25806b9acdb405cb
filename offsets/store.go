package offsets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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

// LoadRaw is Load without decoding: the last committed value for id, which
// is nil after a reset.
func LoadRaw(ctx context.Context, opts []kgo.Opt, topic, id string) ([]byte, bool, error) {
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, false, fmt.Errorf("offsets: client: %w", err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, false, fmt.Errorf("offsets: list the end of %q: %w", topic, err)
	}
	end, ok := ends.Lookup(topic, 0)
	if !ok || errors.Is(end.Err, kerr.UnknownTopicOrPartition) {
		// No offsets topic yet: nothing was ever committed.
		return nil, false, nil
	}
	if end.Err != nil {
		return nil, false, fmt.Errorf("offsets: list the end of %q: %w", topic, end.Err)
	}
	starts, err := kadm.NewClient(adm).ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, false, fmt.Errorf("offsets: list the start of %q: %w", topic, err)
	}
	start, _ := starts.Lookup(topic, 0)
	if end.Offset <= start.Offset {
		return nil, false, nil
	}

	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, false, fmt.Errorf("offsets: client: %w", err)
	}
	defer cl.Close()

	var (
		value []byte
		found bool
		next  = start.Offset
		idle  int
	)
	for next < end.Offset {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		progressed := false
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return nil, false, fmt.Errorf("offsets: read %q: %w", topic, ferr)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 > next {
				next = r.Offset + 1
				progressed = true
			}
			if r.Attrs.IsControl() || string(r.Key) != id {
				return
			}
			value, found = r.Value, true
		})
		if progressed {
			idle = 0
			continue
		}
		if idle++; idle >= 5 {
			return nil, false, fmt.Errorf("offsets: could not read %q to its end (reached offset %s of %s); is the broker healthy?",
				topic, strconv.FormatInt(next, 10), strconv.FormatInt(end.Offset, 10))
		}
	}
	return value, found, nil
}
