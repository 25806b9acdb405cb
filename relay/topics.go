package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cdcrelay/cdcrelay/change"
)

// This file creates the topics of the captured tables: many per request for
// the tables a source lists, one for a table met at its first event.

// topicConfigs are the configs of the topics the relay creates.
func (s *stream) topicConfigs() map[string]*string {
	policy := s.r.cfg.TopicCleanupPolicy
	configs := map[string]*string{"cleanup.policy": &policy}
	if n := s.maxRecordBytes(); n > DefaultMaxRecordBytes {
		// A topic takes batches up to the cluster default unless told
		// otherwise; a batch never grows in compression.
		limit := strconv.Itoa(int(n))
		configs["max.message.bytes"] = &limit
	}
	return configs
}

// topicsPerRequest bounds the topics of one CreateTopics request, so that
// no request outlasts the broker's request timeout.
const topicsPerRequest = 500

// ensureTopics creates the missing topics of tables, topicsPerRequest per
// CreateTopics request, and marks them known.
func (s *stream) ensureTopics(ctx context.Context, tables []change.TableID) error {
	var missing []string
	seen := map[string]bool{}
	for _, t := range tables {
		topic := s.enc.Topic(t)
		if !s.known[topic] && !seen[topic] {
			seen[topic] = true
			missing = append(missing, topic)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	started, created := time.Now(), 0
	var fresh []string
	configs := s.topicConfigs()
	for len(missing) > 0 {
		batch := missing[:min(len(missing), topicsPerRequest)]
		missing = missing[len(batch):]
		resps, err := s.adm.CreateTopics(ctx, s.r.cfg.TopicPartitions, s.r.cfg.TopicReplication, configs, batch...)
		if err != nil {
			return fmt.Errorf("relay: create %d topics: %w", len(batch), err)
		}
		for _, topic := range batch {
			resp, ok := resps[topic]
			if !ok {
				return fmt.Errorf("relay: create topic %q: no answer from the broker", topic)
			}
			switch {
			case resp.Err == nil && s.r.used[topic]:
				created++
				fresh = append(fresh, topic)
				s.r.log.Warn("topic was deleted while the relay wrote to it; created it again. It holds only changes from now on: to put the table's rows back, run cdcrelay snapshot for it",
					"topic", topic)
			case resp.Err == nil:
				created++
				fresh = append(fresh, topic)
				s.r.log.Debug("created topic", "topic", topic)
			case !errors.Is(resp.Err, kerr.TopicAlreadyExists):
				return fmt.Errorf("relay: create topic %q: %w", topic, resp.Err)
			}
			s.known[topic] = true
			s.r.used[topic] = true
		}
	}
	if err := s.awaitLeaders(ctx, fresh); err != nil {
		return err
	}
	if created > 0 {
		s.r.log.Info("created topics", "count", created, "partitions", s.r.cfg.TopicPartitions,
			"cleanup.policy", s.r.cfg.TopicCleanupPolicy, "took", time.Since(started).Round(time.Millisecond))
	}
	return nil
}

// leaderWait bounds how long awaitLeaders waits.
const leaderWait = 2 * time.Minute

// awaitLeaders waits until every partition of topics has a leader. A broker
// answers CreateTopics before it leads the new partitions; with hundreds
// created at once, producing at once runs into NOT_LEADER_FOR_PARTITION
// for longer than the producer retries.
func (s *stream) awaitLeaders(ctx context.Context, topics []string) error {
	deadline := time.Now().Add(leaderWait)
	for len(topics) > 0 {
		batch := topics[:min(len(topics), topicsPerRequest)]
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = false
		for _, t := range batch {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, s.cl)
		if err != nil {
			return fmt.Errorf("relay: metadata of new topics: %w", err)
		}
		ready := 0
		for _, t := range resp.Topics {
			if t.ErrorCode != 0 || len(t.Partitions) < int(s.r.cfg.TopicPartitions) {
				continue
			}
			led := true
			for _, p := range t.Partitions {
				led = led && p.ErrorCode == 0 && p.Leader >= 0
			}
			if led {
				ready++
			}
		}
		if ready == len(batch) {
			topics = topics[len(batch):]
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("relay: %d of %d new topics still have partitions without a leader after %v", len(batch)-ready, len(batch), leaderWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func (s *stream) ensureTopic(ctx context.Context, topic string) error {
	policy := s.r.cfg.TopicCleanupPolicy
	resp, err := s.adm.CreateTopic(ctx, s.r.cfg.TopicPartitions, s.r.cfg.TopicReplication, s.topicConfigs(), topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("relay: create topic %q: %w", topic, err)
	}
	switch {
	case err == nil && s.r.used[topic]:
		s.r.log.Warn("topic was deleted while the relay wrote to it; created it again. It holds only changes from now on: to put the table's rows back, run cdcrelay snapshot for it",
			"topic", topic, "partitions", s.r.cfg.TopicPartitions, "cleanup.policy", policy)
	case err == nil:
		s.r.log.Info("created topic", "topic", topic, "partitions", s.r.cfg.TopicPartitions, "cleanup.policy", policy)
	}
	s.known[topic] = true
	s.r.used[topic] = true
	return nil
}
