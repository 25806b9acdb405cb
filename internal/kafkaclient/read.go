package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// ReadPoll bounds one poll of ReadToEnd, so that a stalled read is
	// noticed and the context is checked between polls.
	ReadPoll = 3 * time.Second
	// ReadIdleDefault is the default idle limit of ReadToEnd: how long the
	// position of the unfinished partitions may stand still. It is long
	// because a read_committed consumer skips the records of aborted
	// transactions without returning them: a long run of them looks idle.
	ReadIdleDefault = 5 * time.Minute
)

// ReadOptions tunes ReadToEnd. The zero value is the default.
type ReadOptions struct {
	// Idle is how long the read may go without any partition's position
	// moving before it fails. Default: ReadIdleDefault.
	Idle time.Duration
	// FetchMaxBytes is franz-go's FetchMaxBytes. Default: franz-go's.
	FetchMaxBytes int32
}

// StableEnds returns the last stable offset and the log start offset of
// every partition of topics. A topic that does not exist has no
// partitions.
func StableEnds(ctx context.Context, opts []kgo.Opt, topics ...string) (ends, starts map[string]map[int32]int64, err error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	stable, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return nil, nil, fmt.Errorf("list the last stable offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	first, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, nil, fmt.Errorf("list the start offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	ends, starts = map[string]map[int32]int64{}, map[string]map[int32]int64{}
	var errs []error
	stable.Each(func(o kadm.ListedOffset) {
		if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
			return
		}
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err))
			return
		}
		var start int64
		if s, ok := first.Lookup(o.Topic, o.Partition); ok && s.Err == nil {
			start = s.Offset
		}
		if ends[o.Topic] == nil {
			ends[o.Topic], starts[o.Topic] = map[int32]int64{}, map[int32]int64{}
		}
		ends[o.Topic][o.Partition], starts[o.Topic][o.Partition] = o.Offset, start
	})
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("list the last stable offsets: %w", errors.Join(errs...))
	}
	return ends, starts, nil
}

// ReadToEnd reads every committed record of topics, read_committed, from
// the start of each partition up to the end it has when the call begins,
// and calls fn for each data record, in offset order within a partition
// (partitions interleave). It returns fn's first error.
//
// The end rules:
//   - a partition's end is its last stable offset, taken once at the start
//     (StableEnds); records written later are not read, and a partition
//     with nothing below its end is not read at all;
//   - transaction markers occupy offsets, so the read follows the consumer
//     position: the offset after the last record or marker fetched
//     (markers are fetched, and skipped, for that reason). A partition is
//     done when its position reaches its end, whatever the offset of its
//     last data record;
//   - records of aborted transactions are skipped by the client and move
//     no position until their abort marker arrives; if no unfinished
//     partition's position moves for opt.Idle, the read fails and says
//     which partitions stopped where.
//
// One case the position cannot show: when compaction has removed every
// record and marker at the end of a partition, only empty batches are
// left there, which the client skips without returning anything; such a
// read fails at the idle limit.
//
// The client is built from opts (connection options) and closed on return.
func ReadToEnd(ctx context.Context, opts []kgo.Opt, topics []string, opt ReadOptions, fn func(*kgo.Record) error) error {
	ends, starts, err := StableEnds(ctx, opts, topics...)
	if err != nil {
		return err
	}
	idle := opt.Idle
	if idle <= 0 {
		idle = ReadIdleDefault
	}
	want := map[string]map[int32]kgo.Offset{}
	pos := map[string]map[int32]int64{}
	left := 0
	for t, ps := range ends {
		for p, end := range ps {
			if end <= starts[t][p] {
				continue // nothing below the end
			}
			if want[t] == nil {
				want[t], pos[t] = map[int32]kgo.Offset{}, map[int32]int64{}
			}
			want[t][p] = kgo.NewOffset().AtStart()
			pos[t][p] = starts[t][p]
			left++
		}
	}
	if left == 0 {
		return nil
	}
	copts := append(append([]kgo.Opt{}, opts...),
		kgo.ConsumePartitions(want),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	if opt.FetchMaxBytes > 0 {
		copts = append(copts, kgo.FetchMaxBytes(opt.FetchMaxBytes))
	}
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	lastMove := time.Now()
	for left > 0 {
		pctx, cancel := context.WithTimeout(ctx, ReadPoll)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("read %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		var cbErr error
		fs.EachRecord(func(r *kgo.Record) {
			at, ok := pos[r.Topic][r.Partition]
			end := ends[r.Topic][r.Partition]
			if !ok || cbErr != nil || r.Offset < at || at >= end {
				return
			}
			pos[r.Topic][r.Partition] = r.Offset + 1
			lastMove = time.Now()
			if r.Offset+1 >= end {
				left--
			}
			if r.Offset >= end || r.Attrs.IsControl() {
				return
			}
			cbErr = fn(r)
		})
		if cbErr != nil {
			return cbErr
		}
		if left > 0 && time.Since(lastMove) >= idle {
			return fmt.Errorf("read %s: %s did not reach the last stable offset within %s; is the broker healthy?",
				strings.Join(topics, ", "), behind(ends, pos), idle)
		}
	}
	return nil
}

// behind describes the unfinished partitions: topic/partition at position
// of end.
func behind(ends, pos map[string]map[int32]int64) string {
	var out []string
	for t, ps := range pos {
		for p, at := range ps {
			if end := ends[t][p]; at < end {
				out = append(out, fmt.Sprintf("%s/%d at %d of %d", t, p, at, end))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
