package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
)

// This file creates the topics of the captured tables: many per request, in
// the background, for the tables a source lists; one for a table met at its
// first event.

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

// firstBatch is the size of the maker's first batch, which it creates
// alone before sending the others: a broker that takes several batches at
// once leads their partitions together, and the snapshot's first table
// would wait for all of them.
const firstBatch = 100

// createsInFlight bounds the CreateTopics requests sent at once: the broker
// answers each only once its controller has committed the topics, so
// requests in flight keep it busy while the relay waits.
const createsInFlight = 4

// topicMaker creates the topics of the tables a source lists, in the
// background and in the order listed (the order the sources snapshot in),
// topicsPerRequest per CreateTopics request and createsInFlight requests
// at once. The source runs meanwhile: the loop waits only for the batch of
// a topic it is about to write to. With thousands of tables the broker
// needs minutes to create and lead every topic; the snapshot goes on at the
// pace the topics come, not after the last of them.
type topicMaker struct {
	batches [][]string
	batchOf map[string]int
	// ready[i] is closed once the broker leads the partitions of batch i,
	// or the maker has failed.
	ready []chan struct{}
	// created[i] lists the topics of batch i that did not exist before,
	// and ok[i] says the batch was led; both are set before ready[i] is
	// closed, so the loop reads them after it.
	created [][]string
	ok      []bool
	// failed is closed, after err is set, if the maker fails.
	failed chan struct{}
	err    error

	// cl is the maker's own client: its CreateTopics and its polls of the
	// new partitions do not queue behind the loop's transaction requests
	// on the producer's connections, nor these behind them.
	cl *kgo.Client

	// taken counts the batches the loop has taken in: primed the producer
	// with them and marked them known. Loop goroutine only.
	taken    []bool
	nTaken   int
	finished chan struct{}
	cancel   context.CancelFunc
}

// startTopicMaker starts creating the missing topics of tables on a
// client of its own. It returns nil when every topic is known already.
func (s *stream) startTopicMaker(ctx context.Context, tables []change.TableID) (*topicMaker, error) {
	var topics []string
	seen := map[string]bool{}
	for _, t := range tables {
		topic := s.enc.Topic(t)
		if !s.known[topic] && !seen[topic] {
			seen[topic] = true
			topics = append(topics, topic)
		}
	}
	if len(topics) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(s.r.cfg.Kafka...)
	if err != nil {
		return nil, sources.Fatal(fmt.Errorf("relay: kafka client: %w", err))
	}
	m := &topicMaker{cl: cl, batchOf: make(map[string]int, len(topics)), failed: make(chan struct{}), finished: make(chan struct{})}
	for len(topics) > 0 {
		size := topicsPerRequest
		if len(m.batches) == 0 {
			size = firstBatch
		}
		batch := topics[:min(len(topics), size)]
		topics = topics[len(batch):]
		for _, t := range batch {
			m.batchOf[t] = len(m.batches)
		}
		m.batches = append(m.batches, batch)
	}
	n := len(m.batches)
	m.ready = make([]chan struct{}, n)
	for i := range m.ready {
		m.ready[i] = make(chan struct{})
	}
	m.created = make([][]string, n)
	m.ok = make([]bool, n)
	m.taken = make([]bool, n)
	ctx, m.cancel = context.WithCancel(ctx)
	go m.run(ctx, s)
	return m, nil
}

// stop ends the maker and waits for it.
func (m *topicMaker) stop() {
	if m == nil {
		return
	}
	m.cancel()
	<-m.finished
}

func (m *topicMaker) run(ctx context.Context, s *stream) {
	defer close(m.finished)
	defer m.cl.Close()
	started := time.Now()
	build := func(ctx context.Context, i int) error {
		t0 := time.Now()
		created, err := s.createTopics(ctx, m, m.batches[i])
		if err != nil {
			return err
		}
		s.r.log.Debug("topics ready", "batch", i, "of", len(m.batches), "topics", len(m.batches[i]), "created", len(created),
			"took", time.Since(t0).Round(time.Millisecond), "since_start", time.Since(started).Round(time.Millisecond))
		m.created[i] = created
		m.ok[i] = true
		close(m.ready[i])
		return nil
	}
	// The first batch alone, then the others createsInFlight at a time;
	// Go blocks while that many are on their way, so they start in order.
	err := build(ctx, 0)
	if err == nil {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(createsInFlight)
		for i := 1; i < len(m.batches) && gctx.Err() == nil; i++ {
			g.Go(func() error { return build(gctx, i) })
		}
		err = g.Wait()
	}
	switch {
	case err != nil && ctx.Err() == nil:
		m.err = err
		close(m.failed)
	case err != nil:
		// The session is ending; its loop is not waiting for the topics.
		m.err = ctx.Err()
	}
	for i := range m.ready {
		if !m.ok[i] {
			close(m.ready[i])
		}
	}
	if err == nil {
		total := 0
		for _, c := range m.created {
			total += len(c)
		}
		if total > 0 {
			s.r.log.Info("created topics", "count", total, "partitions", s.r.cfg.TopicPartitions,
				"cleanup.policy", s.r.cfg.TopicCleanupPolicy, "took", time.Since(started).Round(time.Millisecond))
		}
	}
}

// createTopics creates the missing ones of topics in one request and waits
// until the broker leads their partitions. It returns the topics it
// created. Topics that already existed are waited for too: a session that
// stopped while the broker was still taking the lead of the partitions it
// created leaves them to the next one.
func (s *stream) createTopics(ctx context.Context, m *topicMaker, topics []string) ([]string, error) {
	resps, err := kadm.NewClient(m.cl).CreateTopics(ctx, s.r.cfg.TopicPartitions, s.r.cfg.TopicReplication, s.topicConfigs(), topics...)
	if err != nil {
		return nil, fmt.Errorf("relay: create %d topics: %w", len(topics), err)
	}
	var created []string
	fresh := make(map[string]bool)
	for _, topic := range topics {
		resp, ok := resps[topic]
		switch {
		case !ok:
			return nil, fmt.Errorf("relay: create topic %q: no answer from the broker", topic)
		case resp.Err == nil:
			created = append(created, topic)
			fresh[topic] = true
		case !errors.Is(resp.Err, kerr.TopicAlreadyExists):
			return nil, fmt.Errorf("relay: create topic %q: %w", topic, resp.Err)
		}
	}
	if err := s.awaitLeaders(ctx, m.cl, topics, fresh); err != nil {
		return nil, err
	}
	return created, nil
}

// failedCh is closed if the maker fails, after err is set; it is nil (never
// ready) without a maker.
func (m *topicMaker) failedCh() <-chan struct{} {
	if m == nil {
		return nil
	}
	return m.failed
}

// pending reports whether topic is one the maker has still to hand over.
func (m *topicMaker) pending(topic string) bool {
	if m == nil {
		return false
	}
	i, ok := m.batchOf[topic]
	return ok && !m.taken[i]
}

// readyFor reports whether the batch of a pending topic is done, without
// waiting.
func (m *topicMaker) readyFor(topic string) bool {
	select {
	case <-m.ready[m.batchOf[topic]]:
		return true
	default:
		return false
	}
}

// awaitTopic makes a topic of the maker's writable before the loop
// produces to it: it waits for the topic's batch, primes the producer with
// the batch's topics in the open transaction, and marks them known. A
// change to a table whose batch comes late waits for the batches before
// it, which the broker creates in order; creating its topic on its own
// would only add a request to the broker's queue.
func (s *stream) awaitTopic(ctx context.Context, topic string) error {
	m := s.maker
	i := m.batchOf[topic]
	select {
	case <-m.ready[i]:
	case <-ctx.Done():
		return ctx.Err()
	}
	if !m.ok[i] {
		// The maker failed (or is stopping) before this batch was led;
		// err was set before ready[i] was closed. A later batch's failure
		// cannot touch a batch that was led, so err is not read then.
		return m.err
	}
	if s.txn.phase != txnBegun {
		// Priming produces into the Kafka transaction; the records held
		// while a commit is in flight go first.
		if err := s.awaitCommit(ctx); err != nil {
			return err
		}
	}
	var prime []string
	for _, t := range m.batches[i] {
		if !s.known[t] {
			prime = append(prime, t)
		}
	}
	if err := s.primeProducer(ctx, prime); err != nil {
		return err
	}
	for _, t := range m.created[i] {
		if s.r.used[t] {
			s.r.log.Warn("topic was deleted while the relay wrote to it; created it again. It holds only changes from now on: to put the table's rows back, run cdcrelay snapshot for it",
				"topic", t)
		}
	}
	for _, t := range m.batches[i] {
		s.known[t] = true
		s.r.used[t] = true
	}
	m.taken[i] = true
	if m.nTaken++; m.nTaken == len(m.batches) {
		s.maker = nil // every topic is known: nothing left to look up
	}
	return nil
}

// awaitMessageTopics waits, before a message opens a transaction, for the
// maker's batches its events need, so that the wait holds no Kafka
// transaction open. A transaction already open at its checkpoint is
// committed first. The loop checks again event by event (awaitTopic);
// this only moves the wait to where it costs nothing.
func (s *stream) awaitMessageTopics(ctx context.Context, msg change.Message) error {
	var last change.TableID
	check := func(ev *change.Event) error {
		if ev.Table == last {
			return nil
		}
		last = ev.Table
		topic := s.enc.Topic(ev.Table)
		if !s.maker.pending(topic) || s.maker.readyFor(topic) {
			return nil
		}
		if s.txn.endsAtCheckpoint() {
			if err := s.commit(ctx); err != nil {
				return err
			}
		}
		i := s.maker.batchOf[topic]
		select {
		case <-s.maker.ready[i]:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if msg.Event != nil {
		return check(msg.Event)
	}
	for _, ev := range msg.Events {
		if err := check(ev); err != nil {
			return err
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
