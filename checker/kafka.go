package checker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadTopics reads every record of the given topics read_committed, from
// the start of each partition to its last stable offset at the time of the
// call, and decodes them with Decode. topics maps a topic to the table name
// its events carry. A topic that does not exist yields no events.
func ReadTopics(ctx context.Context, opts []kgo.Opt, topics map[string]string) ([]Event, error) {
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("checker: kafka client: %w", err)
	}
	defer adm.Close()
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("checker: list the ends of %v: %w", names, err)
	}
	want := map[string]map[int32]kgo.Offset{}
	remaining := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if errors.Is(o.Err, kerr.UnknownTopicOrPartition) || o.Offset <= 0 {
			return
		}
		if want[o.Topic] == nil {
			want[o.Topic] = map[int32]kgo.Offset{}
			remaining[o.Topic] = map[int32]int64{}
		}
		want[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		remaining[o.Topic][o.Partition] = o.Offset
	})
	if len(want) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumePartitions(want),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(16<<20),
	)...)
	if err != nil {
		return nil, fmt.Errorf("checker: kafka client: %w", err)
	}
	defer cl.Close()

	var events []Event
	var decodeErr error
	left := 0
	for _, ps := range remaining {
		left += len(ps)
	}
	idle := 0
	for left > 0 {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return nil, fmt.Errorf("checker: fetch: %w", ferr)
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			end, ok := remaining[r.Topic][r.Partition]
			if !ok {
				return
			}
			if r.Offset+1 >= end {
				delete(remaining[r.Topic], r.Partition)
				left--
			}
			if r.Offset >= end || r.Attrs.IsControl() {
				return
			}
			ev, ok, err := Decode(topics[r.Topic], r.Key, r.Value)
			if err != nil && decodeErr == nil {
				decodeErr = err
			}
			if ok {
				ev.Partition, ev.Offset = r.Partition, r.Offset
				events = append(events, ev)
			}
		})
		if n > 0 {
			idle = 0
			continue
		}
		// Records of aborted transactions are dropped by the client, so
		// a long run of them looks idle: allow five minutes of that.
		if idle++; idle >= 100 {
			return nil, fmt.Errorf("checker: %d partitions did not reach their last stable offset; is the broker healthy? left: %v", left, remaining)
		}
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
