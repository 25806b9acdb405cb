package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
)

// This file creates the topics of the captured tables: many per request for
// the tables a source lists, one for a table met at its first event.

// topicConfigs are the configs of the topics the relay creates.
func (s *stream) topicConfigs() map[string]*string {
	policy := s.r.cfg.TopicCleanupPolicy
	configs := map[string]*string{"cleanup.policy": &policy}
	if n := s.maxRecordBytes(); n > config.DefaultMaxRecordBytes {
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
				s.r.log.Warn("topic was deleted while the relay wrote to it; created it again. It holds only changes from now on: to put the table's rows back, run cdcrelay snapshot for it",
					"topic", topic)
			case resp.Err == nil:
				created++
				s.r.log.Debug("created topic", "topic", topic)
			case !errors.Is(resp.Err, kerr.TopicAlreadyExists):
				return fmt.Errorf("relay: create topic %q: %w", topic, resp.Err)
			}
			s.known[topic] = true
			s.r.used[topic] = true
		}
	}
	if created > 0 {
		s.r.log.Info("created topics", "count", created, "partitions", s.r.cfg.TopicPartitions,
			"cleanup.policy", s.r.cfg.TopicCleanupPolicy, "took", time.Since(started).Round(time.Millisecond))
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
