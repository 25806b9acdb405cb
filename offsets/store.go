package offsets

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
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
)

// ErrTopicLayout means an existing offsets topic has more than one
// partition or a cleanup.policy other than compact. No retry can fix it, so
// the relay refuses to start on it.
var ErrTopicLayout = errors.New("offsets: the offsets topic has the wrong layout")

// EnsureTopic creates the offsets topic when missing: one partition,
// cleanup.policy=compact. An existing topic is checked with CheckTopic.
func EnsureTopic(ctx context.Context, cl *kgo.Client, topic string, replication int16) error {
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, replication, map[string]*string{
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
	// The broker that said it exists may answer metadata before it
	// knows of a topic created a moment ago.
	for try := 0; ; try++ {
		exists, err := CheckTopic(ctx, cl, topic)
		if exists || err != nil {
			return err
		}
		if try == 20 {
			return fmt.Errorf("offsets: topic %q exists but its metadata does not show it yet", topic)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// CheckTopic reports whether the offsets topic exists and, when it does,
// refuses it (with an error wrapping ErrTopicLayout) unless it has exactly
// one partition and cleanup.policy=compact, since the last-value-wins rule
// needs both. compact,delete is refused too: its retention would delete the
// position of a relay stopped or idle for longer than retention.ms, and the
// relay would then start over as if new. It changes nothing.
func CheckTopic(ctx context.Context, cl *kgo.Client, topic string) (exists bool, err error) {
	// A direct request, not kadm's cached metadata, which may still
	// remember the topic as missing; it never asks the broker to create it.
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Topics) != 1 {
		err = fmt.Errorf("the broker answered for %d topics", len(resp.Topics))
	}
	if err != nil {
		return false, fmt.Errorf("offsets: describe topic %q: %w", topic, err)
	}
	td := resp.Topics[0]
	switch err := kerr.ErrorForCode(td.ErrorCode); {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("offsets: describe topic %q: %w", topic, err)
	}
	if n := len(td.Partitions); n != 1 {
		return true, fmt.Errorf("%w: topic %q (kafka.offsets_topic) has %d partitions, needs exactly 1; point kafka.offsets_topic at a new topic", ErrTopicLayout, topic, n)
	}
	cfgs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return true, fmt.Errorf("offsets: describe configs of %q: %w", topic, err)
	}
	for _, rc := range cfgs {
		if rc.Err != nil {
			return true, fmt.Errorf("offsets: describe configs of %q: %w", topic, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil && *c.Value != "compact" {
				return true, fmt.Errorf("%w: topic %q (kafka.offsets_topic) has cleanup.policy=%s, needs exactly compact; fix: kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact",
					ErrTopicLayout, topic, *c.Value, topic)
			}
		}
	}
	return true, nil
}

// Load returns the last committed record for id in topic, with its parts,
// or nil when there is none. It reads the single partition read_committed
// from the start up to the last stable offset, with its own short-lived
// client built from opts (the connection options: brokers, TLS, SASL).
// Parts left without a record (there are none unless something other than
// cdcrelay wrote them) are ignored.
func Load(ctx context.Context, opts []kgo.Opt, topic, id string) (*Record, error) {
	st, err := read(ctx, opts, topic, id)
	if err != nil || st.value == nil {
		return nil, err
	}
	rec, err := Decode(st.value)
	if err != nil {
		return nil, err
	}
	if len(st.parts) > 0 {
		rec.Parts = st.parts
	}
	return rec, nil
}

// loadIdle is how long Load waits for the offsets topic's position to
// move before it gives up: the topic is small and written in short
// transactions, so a long stall means a broker problem.
const loadIdle = 10 * time.Second

// LoadRaw is Load without decoding and without the parts: the last
// committed value for id, which is nil after a reset.
func LoadRaw(ctx context.Context, opts []kgo.Opt, topic, id string) ([]byte, bool, error) {
	st, err := read(ctx, opts, topic, id)
	return st.value, st.found, err
}

// PartNames returns the names of the live parts of id, whether or not its
// record exists, for a reset to tombstone them.
func PartNames(ctx context.Context, opts []kgo.Opt, topic, id string) ([]string, error) {
	st, err := read(ctx, opts, topic, id)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(st.parts))
	for n := range st.parts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// stored is what the offsets topic holds for one source id.
type stored struct {
	value []byte // the record's value, nil when missing or reset
	found bool   // a record or tombstone exists under the id
	parts map[string][]byte
}

// read reads the offsets topic as kafkaclient.ReadToEnd does, keeping the
// last value of id's key and of each of its part keys.
func read(ctx context.Context, opts []kgo.Opt, topic, id string) (stored, error) {
	var st stored
	prefix := PartKey(id, "")
	err := kafkaclient.ReadToEnd(ctx, opts, []string{topic}, kafkaclient.ReadOptions{Idle: loadIdle}, func(r *kgo.Record) error {
		switch key := string(r.Key); {
		case key == id:
			st.value, st.found = r.Value, true
		case strings.HasPrefix(key, prefix):
			name := key[len(prefix):]
			if r.Value == nil {
				delete(st.parts, name)
				return nil
			}
			if st.parts == nil {
				st.parts = map[string][]byte{}
			}
			st.parts[name] = r.Value
		}
		return nil
	})
	if err != nil {
		return stored{}, fmt.Errorf("offsets: %w", err)
	}
	return st, nil
}
