package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file waits until the broker leads the partitions of the topics the
// maker created. It asks the brokers directly rather than through the
// client's routing of requests: a routed ListOffsets keeps the metadata
// of every topic it asked about in the client's cache, which at thousands
// of new topics is tens of megabytes that nothing reads again.

// leaderWait bounds how long awaitLeaders waits for the broker to lead one
// more of the topics.
const leaderWait = 2 * time.Minute

// awaitLeaders waits until every partition of topics takes writes on its
// leader. A broker answers CreateTopics before it leads the new partitions;
// with hundreds created at once, producing at once runs into
// NOT_LEADER_FOR_PARTITION for longer than the producer retries. Each round
// asks about at most topicsPerRequest of the topics still waiting, and a
// topic once led is not asked about again, so the wait costs requests in
// proportion to the topics, not to their square. It gives up after
// leaderWait without a topic led: a broker that takes the lead of
// thousands of new partitions may need longer than that in all, but keeps
// making progress.
//
// A topic in fresh was created with topic_partitions partitions, and waits
// until the broker shows them all; one that existed keeps the count it has
// (topic_partitions applies only to the topics the relay creates).
func (s *stream) awaitLeaders(ctx context.Context, cl *kgo.Client, topics []string, fresh map[string]bool) error {
	deadline := time.Now().Add(leaderWait)
	pending := append([]string(nil), topics...)
	for len(pending) > 0 {
		batch := pending[:min(len(pending), topicsPerRequest)]
		led, err := s.ledTopics(ctx, cl, batch, fresh)
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
// ListOffsets on its leader, with all topic_partitions of them for a topic
// in fresh. Metadata shows a new partition's leader as soon as the
// controller has chosen it, before the leader has opened its log and can
// take writes; ListOffsets is answered by that log. A request that fails
// counts as none led yet (awaitLeaders bounds the wait); a topic the relay
// may not describe ends the wait at once.
func (s *stream) ledTopics(ctx context.Context, cl *kgo.Client, topics []string, fresh map[string]bool) (map[string]bool, error) {
	meta, err := topicMetadata(ctx, cl, topics)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.r.log.Debug("new topics not answering yet", "err", err)
		return nil, nil
	}
	reqs := map[int32]*kmsg.ListOffsetsRequest{}
	parts := map[string]int{} // partitions to answer, per topic
	for _, t := range meta.Topics {
		if t.Topic == nil {
			continue
		}
		name := *t.Topic
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			if errors.Is(err, kerr.TopicAuthorizationFailed) {
				return nil, fmt.Errorf("relay: describe topic %q: %w; grant the relay's principal DESCRIBE and WRITE on it", name, err)
			}
			continue // not there or not led yet
		}
		want := 1
		if fresh[name] {
			want = int(s.r.cfg.TopicPartitions)
		}
		if len(t.Partitions) < want || !allLed(t.Partitions) {
			continue
		}
		parts[name] = len(t.Partitions)
		for _, p := range t.Partitions {
			addListOffsets(reqs, p.Leader, name, p.Partition)
		}
	}
	reload := false
	for leader, req := range reqs {
		kr, err := cl.Broker(int(leader)).Request(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// An unreachable leader, or one that joined the cluster
			// after the client loaded the brokers: its topics wait a
			// round, and the client loads the brokers again.
			s.r.log.Debug("new topics' leader not answering yet", "broker", leader, "err", err)
			reload = true
			for _, t := range req.Topics {
				delete(parts, t.Topic)
			}
			continue
		}
		for _, t := range kr.(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode == 0 {
					parts[t.Topic]--
				}
			}
		}
	}
	if reload {
		if err := loadBrokers(ctx, cl); err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	led := make(map[string]bool, len(parts))
	for t, left := range parts {
		led[t] = left == 0
	}
	return led, nil
}

// allLed reports whether metadata names a leader for every partition. A
// partition's own error is left to ListOffsets on that leader: metadata
// may report REPLICA_NOT_AVAILABLE for a partition whose leader takes
// writes while a follower is down.
func allLed(ps []kmsg.MetadataResponseTopicPartition) bool {
	for _, p := range ps {
		if p.Leader < 0 {
			return false
		}
	}
	return true
}

// addListOffsets adds a topic's partition to the ListOffsets request of its
// leader.
func addListOffsets(reqs map[int32]*kmsg.ListOffsetsRequest, leader int32, topic string, partition int32) {
	req := reqs[leader]
	if req == nil {
		req = kmsg.NewPtrListOffsetsRequest()
		reqs[leader] = req
	}
	if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != topic {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		req.Topics = append(req.Topics, rt)
	}
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = -1 // the end offset
	rt := &req.Topics[len(req.Topics)-1]
	rt.Partitions = append(rt.Partitions, rp)
}

// topicMetadata asks one broker for the metadata of topics. The request
// goes to the broker directly, so that the client caches nothing of it; a
// client that knows no broker yet learns them from a request for none.
func topicMetadata(ctx context.Context, cl *kgo.Client, topics []string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = false
	brokers := cl.DiscoveredBrokers()
	if len(brokers) == 0 {
		if err := loadBrokers(ctx, cl); err != nil {
			return nil, err
		}
		if brokers = cl.DiscoveredBrokers(); len(brokers) == 0 {
			return nil, errors.New("the cluster lists no brokers")
		}
	}
	var err error
	for _, b := range brokers {
		var kr kmsg.Response
		if kr, err = b.Request(ctx, req); err == nil {
			return kr.(*kmsg.MetadataResponse), nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, err
}

// loadBrokers makes the client load the cluster's brokers with a metadata
// request for no topics (not a nil list: that asks for all of them), which
// leaves its cache of topics alone.
func loadBrokers(ctx context.Context, cl *kgo.Client) error {
	_, err := cl.Request(ctx, &kmsg.MetadataRequest{Topics: []kmsg.MetadataRequestTopic{}})
	return err
}
