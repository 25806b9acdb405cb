package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"golang.org/x/sync/errgroup"

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

// createsInFlight bounds the CreateTopics requests sent at once: the broker
// answers each only once its controller has committed the topics, so
// requests in flight keep it busy while the relay waits.
const createsInFlight = 4

// ensureTopics creates the missing topics of tables, topicsPerRequest per
// CreateTopics request and createsInFlight requests at once, waits until
// the broker leads their partitions, and marks them known.
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
	started := time.Now()
	var batches [][]string
	for len(missing) > 0 {
		batch := missing[:min(len(missing), topicsPerRequest)]
		missing = missing[len(batch):]
		batches = append(batches, batch)
	}
	resps := make([]kadm.CreateTopicResponses, len(batches))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(createsInFlight)
	configs := s.topicConfigs()
	for i, batch := range batches {
		g.Go(func() error {
			var err error
			resps[i], err = s.adm.CreateTopics(gctx, s.r.cfg.TopicPartitions, s.r.cfg.TopicReplication, configs, batch...)
			if err != nil {
				return fmt.Errorf("relay: create %d topics: %w", len(batch), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	created := 0
	fresh := make(map[string]bool)
	for i, batch := range batches {
		for _, topic := range batch {
			resp, ok := resps[i][topic]
			if !ok {
				return fmt.Errorf("relay: create topic %q: no answer from the broker", topic)
			}
			switch {
			case resp.Err == nil && s.r.used[topic]:
				created++
				fresh[topic] = true
				s.r.log.Warn("topic was deleted while the relay wrote to it; created it again. It holds only changes from now on: to put the table's rows back, run cdcrelay snapshot for it",
					"topic", topic)
			case resp.Err == nil:
				created++
				fresh[topic] = true
				s.r.log.Debug("created topic", "topic", topic)
			case !errors.Is(resp.Err, kerr.TopicAlreadyExists):
				return fmt.Errorf("relay: create topic %q: %w", topic, resp.Err)
			}
		}
	}
	// Topics that already existed are waited for too: a session that
	// stopped while the broker was still taking the lead of the partitions
	// it created leaves them to the next one.
	all := slices.Concat(batches...)
	if err := s.awaitLeaders(ctx, all, fresh); err != nil {
		return err
	}
	for _, topic := range all {
		s.known[topic] = true
		s.r.used[topic] = true
	}
	if err := s.primeProducer(ctx, all); err != nil {
		return err
	}
	if created > 0 {
		s.r.log.Info("created topics", "count", created, "partitions", s.r.cfg.TopicPartitions,
			"cleanup.policy", s.r.cfg.TopicCleanupPolicy, "took", time.Since(started).Round(time.Millisecond))
	}
	return nil
}

// leaderWait bounds how long awaitLeaders waits for the broker to lead one
// more of the topics.
const leaderWait = 2 * time.Minute

// awaitLeaders waits until every partition of topics takes writes on its
// leader. A broker answers CreateTopics before it leads the new partitions;
// with hundreds created at once, producing at once runs into
// NOT_LEADER_FOR_PARTITION for longer than the producer retries. Each round asks about at most
// topicsPerRequest of the topics still waiting, and a topic once led is
// not asked about again, so the wait costs requests in proportion to the
// topics, not to their square. It gives up after leaderWait without a topic
// led: a broker that takes the lead of thousands of new partitions may
// need longer than that in all, but keeps making progress.
//
// A topic in fresh was created with topic_partitions partitions, and waits
// until the broker shows them all; one that existed keeps the count it has
// (topic_partitions applies only to the topics the relay creates).
func (s *stream) awaitLeaders(ctx context.Context, topics []string, fresh map[string]bool) error {
	deadline := time.Now().Add(leaderWait)
	pending := append([]string(nil), topics...)
	for len(pending) > 0 {
		batch := pending[:min(len(pending), topicsPerRequest)]
		led, err := s.ledTopics(ctx, batch, fresh)
		if err != nil {
			return err
		}
		rest := pending[:0]
		for _, t := range pending[:len(batch)] {
			if !led[t] {
				rest = append(rest, t)
			}
		}
		waiting := len(rest)
		if waiting < len(batch) {
			deadline = time.Now().Add(leaderWait)
		}
		pending = append(rest, pending[len(batch):]...)
		if waiting == 0 {
			continue // the next batch, at once
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("relay: %d of %d new topics still have partitions without a leader; the broker led none of them for %v", len(pending), len(topics), leaderWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// ledTopics returns those of topics whose every partition answers
// ListOffsets, with all topic_partitions of them for a topic in fresh. Metadata shows a new partition's leader as soon as the
// controller has chosen it, before the broker has opened its log and can
// take writes; ListOffsets is answered by that log. An error of the whole
// request counts as none led yet: awaitLeaders bounds the wait.
func (s *stream) ledTopics(ctx context.Context, topics []string, fresh map[string]bool) (map[string]bool, error) {
	ends, err := s.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		var shards *kadm.ShardErrors
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.As(err, &shards) {
			s.r.log.Debug("new topics not answering yet", "err", err)
			return nil, nil
		}
	}
	led := make(map[string]bool, len(ends))
	for topic, parts := range ends {
		want := 1
		if fresh[topic] {
			want = int(s.r.cfg.TopicPartitions)
		}
		ok := len(parts) >= want
		for p, o := range parts {
			ok = ok && p >= 0 && o.Err == nil
		}
		led[topic] = ok
	}
	return led, nil
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
