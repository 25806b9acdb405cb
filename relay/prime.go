package relay

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// primeWait bounds how long primeProducer waits for the producer to learn
// the partitions of the topics.
const primeWait = 30 * time.Second

// primeProducer makes the producer learn the partitions of topics, which
// it has not produced to yet, in a few metadata requests. It runs in the
// open Kafka transaction.
//
// franz-go learns a topic's partitions when it first produces to it, with a
// metadata request for every topic it has produced to so far, and a copy of
// its map of those topics. A snapshot that meets thousands of tables one
// after the other thus costs a number of topics in metadata and copies that
// grows with the square of the tables, on the broker and in the relay, each
// request on the path of a commit.
//
// franz-go has no call that adds topics without records, so each topic
// gets a record whose context is already cancelled: such a record fails
// before it is given a partition, so nothing is sent and no partition joins
// the transaction, and the topic stays in the producer's map for the
// metadata request it triggered. Every one of those records has failed
// before this returns: a record of the loop's own must not join a topic's
// queue while a cancelled one is in it, since the cancelled one fails the
// queue. Priming is an optimisation: if the producer has not learnt every
// topic after primeWait, the rest is learnt as before.
func (s *stream) primeProducer(ctx context.Context, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	started := time.Now()
	gone, cancel := context.WithCancel(ctx)
	cancel()
	var wg sync.WaitGroup
	wg.Add(len(topics))
	for _, t := range topics {
		s.cl.Produce(gone, &kgo.Record{Topic: t}, func(*kgo.Record, error) { wg.Done() })
	}
	wg.Wait()
	s.cl.ForceMetadataRefresh()
	deadline, forced := time.Now().Add(primeWait), time.Now()
	for next := 0; next < len(topics); {
		if leader, _, _ := s.cl.PartitionLeader(topics[next], 0); leader >= 0 {
			next++
			continue
		}
		if time.Now().After(deadline) {
			s.r.log.Info("producer not primed with every topic; it learns the rest as it meets them", "topics", len(topics), "learnt", next)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(forced) > time.Second {
			// The topics primed after the last request began.
			s.cl.ForceMetadataRefresh()
			forced = time.Now()
		}
	}
	s.r.log.Debug("producer primed", "topics", len(topics), "took", time.Since(started).Round(time.Millisecond))
	return nil
}
