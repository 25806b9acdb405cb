package checker

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
)

// ReadTopics reads every record of the given topics read_committed, from
// the start of each partition to its last stable offset at the time of the
// call, and decodes them with Decode. topics maps a topic to the table name
// its events carry. A topic that does not exist yields no events.
func ReadTopics(ctx context.Context, opts []kgo.Opt, topics map[string]string) ([]Event, error) {
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	slices.Sort(names)
	var events []Event
	var decodeErr error
	err := kafkaclient.ReadToEnd(ctx, opts, names, kafkaclient.ReadOptions{FetchMaxBytes: 16 << 20}, func(r *kgo.Record) error {
		ev, ok, err := Decode(topics[r.Topic], r.Key, r.Value)
		if err != nil && decodeErr == nil {
			decodeErr = err
		}
		if ok {
			ev.Partition, ev.Offset = r.Partition, r.Offset
			events = append(events, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checker: %w", err)
	}
	return events, decodeErr
}

// StuckPartitions lists the partitions of the given topics whose last
// stable offset is below their high watermark. Once every producer has
// ended its transactions, there should be none: a partition listed here
// holds records that no read_committed reader can see, so ReadTopics stops
// short of them. Each entry names the partition and both offsets.
func StuckPartitions(ctx context.Context, opts []kgo.Opt, topics ...string) ([]string, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("checker: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	stable, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("checker: list last stable offsets: %w", err)
	}
	high, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("checker: list high watermarks: %w", err)
	}
	var stuck []string
	stable.Each(func(o kadm.ListedOffset) {
		h, ok := high.Lookup(o.Topic, o.Partition)
		if o.Err != nil || !ok || h.Err != nil || o.Offset >= h.Offset {
			return
		}
		stuck = append(stuck, fmt.Sprintf("%s/%d: last stable offset %d, high watermark %d", o.Topic, o.Partition, o.Offset, h.Offset))
	})
	slices.Sort(stuck)
	return stuck, nil
}
