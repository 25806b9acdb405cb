package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/offsets"
)

// ErrFenced means a newer relay with the same source id took over the
// transactional id; this one must stop.
var ErrFenced = errors.New("relay: producer fenced by a newer instance with the same id; this instance stops")

// Config is what the relay needs besides its source.
type Config struct {
	// ID is the source id: the offsets key and the transactional.id suffix.
	ID string
	// Kafka holds the connection options (brokers, TLS, SASL) shared by
	// every client the relay makes.
	Kafka []kgo.Opt
	// OffsetsTopic is the compacted offsets topic.
	OffsetsTopic string
	// Topic settings for the topics the relay creates.
	TopicPartitions    int32
	TopicReplication   int16
	TopicCleanupPolicy string
	// TransactionTimeout is the Kafka transaction timeout.
	TransactionTimeout time.Duration
	// BatchMaxEvents and BatchLinger decide when to end a Kafka transaction:
	// at the first checkpoint after either is reached.
	BatchMaxEvents int
	BatchLinger    time.Duration
	// Format encodes events into records.
	Format format.Options
	// Version is the relay version written into each offsets record.
	Version string
	// Hooks are fault-injection points, nil outside tests.
	Hooks *Hooks
	// ShutdownGrace bounds the final commit after the context is done.
	// Default 10s.
	ShutdownGrace time.Duration
}

// Hooks are called at the points where a crash is most telling. They exist
// for fault-injection tests and are nil in production.
type Hooks struct {
	// AfterProduce runs after a batch's records and offsets record are
	// flushed to the broker, before EndTransaction.
	AfterProduce func()
	// AfterCommit runs after EndTransaction succeeded, before the ack.
	AfterCommit func()
}

// ProducerOpts are the producer settings of the relay's transactional
// client, besides the connection options, the transactional id and the
// transaction timeout: partitioner, buffer bounds, linger and retries.
// Batch size, acks (all) and compression are franz-go's defaults. The bench
// uses the same options for its produce limit, so that the limit measures
// the producer the relay runs.
func ProducerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.MaxBufferedBytes(16 << 20),
		kgo.MaxBufferedRecords(10000),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.RecordRetries(10),
		kgo.UnknownTopicRetries(3),
	}
}

// TransactionalID is the transactional.id the relay uses for source id.
func TransactionalID(id string) string { return "cdcrelay-" + id }

// Relay moves one source's changes into Kafka.
type Relay struct {
	cfg    Config
	src    Source
	log    *slog.Logger
	m      *metrics.Metrics
	health *metrics.Health
}

// New returns a relay for src. health may be nil.
func New(cfg Config, src Source, log *slog.Logger, m *metrics.Metrics, health *metrics.Health) *Relay {
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if health == nil {
		health = &metrics.Health{}
	}
	return &Relay{cfg: cfg, src: src, log: log, m: m, health: health}
}

// Run streams until ctx is done (then it finishes or aborts the open
// transaction and returns nil) or a fatal error occurs. Errors that a fresh
// start can fix (a broker restart, an outcome-unknown commit, a source
// reconnect) restart the session from the offsets topic, with backoff.
func (r *Relay) Run(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for {
		started := time.Now()
		err := r.session(ctx)
		r.health.SetReady(false)
		r.m.Up.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			return nil
		}
		var fatal *FatalError
		if errors.As(err, &fatal) || (errors.Is(err, ErrFenced) && !errors.Is(err, errFencedAfterFault)) {
			return err
		}
		cause := restartCause(err)
		r.m.Restarts.WithLabelValues(cause).Inc()
		if time.Since(started) > time.Minute {
			backoff = 500 * time.Millisecond
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		r.log.Warn("relay restarting from the stored offsets", "cause", cause, "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func restartCause(err error) string {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return "kafka_" + ke.Message
	case errors.Is(err, errFencedAfterFault):
		return "epoch_bumped_after_broker_fault"
	case errors.Is(err, errOutcomeUnknown):
		return "commit_outcome_unknown"
	case errors.Is(err, errSource):
		return "source"
	}
	return "kafka"
}

var (
	errOutcomeUnknown = errors.New("relay: transaction outcome unknown")
	errSource         = errors.New("relay: source stopped")
)

// isFenced reports whether err means another producer took over our
// transactional id.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// connectFatal returns a one-line error for connection failures that no
// retry can fix (bad credentials, an untrusted certificate), nil otherwise.
func connectFatal(err error) error {
	var uae x509.UnknownAuthorityError
	var cve *tls.CertificateVerificationError
	var hne x509.HostnameError
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) || errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("kafka: SASL authentication failed; check kafka.sasl.mechanism, kafka.sasl.username and the password (CDCRELAY_KAFKA_SASL_PASSWORD or kafka.sasl.password_file): %w", err)
	case errors.As(err, &hne):
		return fmt.Errorf("kafka: the broker's TLS certificate does not match the host; check kafka.tls.server_name: %w", err)
	case errors.As(err, &uae) || errors.As(err, &cve):
		return fmt.Errorf("kafka: the broker's TLS certificate is not signed by a trusted CA; check kafka.tls.ca_file: %w", err)
	case errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("kafka: not authorized to use transactional id; grant the relay's user WRITE and DESCRIBE on transactional id cdcrelay-<id>: %w", err)
	}
	return nil
}

// connWatch notes failed broker connections. A broker that crashed and came
// back may have aborted our open transaction and bumped our producer epoch,
// which then looks exactly like being fenced by another instance. A fencing
// error in a session that saw a failed connection is therefore retried (a
// new session fences everyone else and re-reads the offsets); one in an
// undisturbed session means another relay really took over.
type connWatch struct{ failed atomic.Bool }

func (w *connWatch) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		w.failed.Store(true)
	}
}

// errFencedAfterFault is a fencing error seen after a broker fault.
var errFencedAfterFault = errors.New("relay: producer epoch bumped after a broker fault")

// session is one life of the Kafka client: fence, load offsets, stream.
func (r *Relay) session(ctx context.Context) error {
	watch := &connWatch{}
	err := r.sessionWith(ctx, watch)
	if errors.Is(err, ErrFenced) && watch.failed.Load() {
		return fmt.Errorf("%w: %w", errFencedAfterFault, err)
	}
	return err
}

func (r *Relay) sessionWith(ctx context.Context, watch *connWatch) error {
	opts := append([]kgo.Opt{}, r.cfg.Kafka...)
	opts = append(opts,
		kgo.WithHooks(watch),
		kgo.TransactionalID(TransactionalID(r.cfg.ID)),
		kgo.TransactionTimeout(r.cfg.TransactionTimeout),
	)
	cl, err := kgo.NewClient(append(opts, ProducerOpts()...)...)
	if err != nil {
		return Fatal(fmt.Errorf("relay: kafka client: %w", err))
	}
	defer cl.Close()

	// InitProducerID fences every older producer with our transactional id
	// before we read the offsets, so the state we read cannot be moved on
	// by anyone else afterwards.
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, _, err = cl.ProducerID(ictx)
	cancel()
	if err != nil {
		if isFenced(err) {
			return ErrFenced
		}
		if fatal := connectFatal(err); fatal != nil {
			return Fatal(fatal)
		}
		return fmt.Errorf("relay: init producer id: %w", err)
	}
	adm := kadm.NewClient(cl)
	if err := offsets.EnsureTopic(ctx, adm, r.cfg.OffsetsTopic, r.cfg.TopicReplication); err != nil {
		return err
	}
	rec, err := offsets.Load(ctx, r.cfg.Kafka, r.cfg.OffsetsTopic, r.cfg.ID)
	if err != nil {
		var newer bool
		if errors.Is(err, offsets.ErrNewerVersion) {
			newer = true
		}
		if newer {
			return Fatal(err)
		}
		return err
	}
	var resume []byte
	if rec != nil {
		resume = rec.State
		r.log.Info("resuming from the offsets topic", "position", rec.Position, "written", rec.Written().UTC().Format(time.RFC3339))
	} else {
		r.log.Info("no stored position; starting fresh", "offsets_topic", r.cfg.OffsetsTopic, "key", r.cfg.ID)
	}

	s := &stream{
		r:      r,
		cl:     cl,
		adm:    adm,
		enc:    format.NewEncoder(r.cfg.Format),
		known:  make(map[string]bool),
		counts: make(map[countKey]int),
	}
	return s.run(ctx, resume)
}

type countKey struct {
	table change.TableID
	op    change.Op
}

// stream is the transaction loop of one session.
type stream struct {
	r   *Relay
	cl  *kgo.Client
	adm *kadm.Client
	enc *format.Encoder

	in     chan change.Message // the source's output, for its backlog
	known  map[string]bool     // topics known to exist
	counts map[countKey]int

	inTxn    bool
	txnStart time.Time
	events   int
	pending  *change.Checkpoint // last checkpoint in the open transaction
	dirty    bool               // events produced after pending

	errMu   sync.Mutex
	prodErr error
	recs    []*kgo.Record
}

func (s *stream) promise(_ *kgo.Record, err error) {
	if err == nil {
		return
	}
	s.errMu.Lock()
	if s.prodErr == nil {
		s.prodErr = err
	}
	s.errMu.Unlock()
}

func (s *stream) produceErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.prodErr
}

func (s *stream) run(ctx context.Context, resume []byte) error {
	srcCtx, stopSource := context.WithCancel(context.Background())
	in := make(chan change.Message, 1024)
	s.in = in
	srcDone := make(chan error, 1)
	srcExited := make(chan struct{})
	go func() {
		err := s.r.src.Run(srcCtx, resume, in)
		close(srcExited)
		srcDone <- err
	}()
	defer func() {
		stopSource()
		// Drain so a source blocked on send sees the cancel, until its Run
		// has returned.
		for {
			select {
			case <-srcExited:
				return
			case <-in:
			}
		}
	}()

	s.r.health.SetReady(true)
	s.r.m.Up.Set(1)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.shutdown()
		case err := <-srcDone:
			s.abort()
			if err == nil {
				err = errors.New("source stopped without an error")
			}
			var fatal *FatalError
			if errors.As(err, &fatal) {
				return err
			}
			return fmt.Errorf("%w: %w", errSource, err)
		case <-linger.C:
			if s.inTxn && s.pending != nil && !s.dirty {
				if err := s.commit(ctx); err != nil {
					return err
				}
			}
		case msg := <-in:
			if err := s.handle(ctx, msg, linger); err != nil {
				s.abort()
				return err
			}
		}
	}
}

func (s *stream) handle(ctx context.Context, msg change.Message, linger *time.Timer) error {
	if !s.inTxn {
		if err := s.cl.BeginTransaction(); err != nil {
			return fmt.Errorf("relay: begin transaction: %w", err)
		}
		s.inTxn, s.txnStart, s.events = true, time.Now(), 0
		s.pending, s.dirty = nil, false
		linger.Reset(s.r.cfg.BatchLinger)
	}
	if ev := msg.Event; ev != nil {
		topic := s.enc.Topic(ev.Table)
		if !s.known[topic] {
			if err := s.ensureTopic(ctx, topic); err != nil {
				return err
			}
		}
		s.recs = s.enc.Append(s.recs[:0], ev)
		for _, rec := range s.recs {
			s.cl.Produce(ctx, rec, s.promise)
		}
		s.events++
		s.counts[countKey{ev.Table, ev.Op}]++
		s.dirty = true
		return nil
	}
	if cp := msg.Checkpoint; cp != nil {
		s.pending, s.dirty = cp, false
		// Commit at once when the source has nothing more queued: waiting
		// for the linger then only adds latency. With a backlog, batch up to
		// the linger or the size limit, for fewer commits.
		if len(s.in) == 0 || s.events >= s.r.cfg.BatchMaxEvents || time.Since(s.txnStart) >= s.r.cfg.BatchLinger {
			return s.commit(ctx)
		}
	}
	return nil
}

func (s *stream) ensureTopic(ctx context.Context, topic string) error {
	policy := s.r.cfg.TopicCleanupPolicy
	resp, err := s.adm.CreateTopic(ctx, s.r.cfg.TopicPartitions, s.r.cfg.TopicReplication,
		map[string]*string{"cleanup.policy": &policy}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("relay: create topic %q: %w", topic, err)
	}
	if err == nil {
		s.r.log.Info("created topic", "topic", topic, "partitions", s.r.cfg.TopicPartitions, "cleanup.policy", policy)
	}
	s.known[topic] = true
	return nil
}

// commit writes the offsets record for the pending checkpoint, flushes and
// commits, then acks the source.
func (s *stream) commit(ctx context.Context) error {
	cp := s.pending
	off := offsets.NewRecord(s.r.cfg.ID, cp, s.r.cfg.Version, time.Now())
	s.cl.Produce(ctx, off.KafkaRecord(s.r.cfg.OffsetsTopic), s.promise)
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("relay: flush: %w", err)
	}
	if err := s.produceErr(); err != nil {
		if isFenced(err) {
			return ErrFenced
		}
		return fmt.Errorf("relay: produce: %w", err)
	}
	if h := s.r.cfg.Hooks; h != nil && h.AfterProduce != nil {
		h.AfterProduce()
	}
	// EndTransaction gets its own context: cancelling it mid-request would
	// leave the outcome unknown.
	ectx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := s.cl.EndTransaction(ectx, kgo.TryCommit)
	cancel()
	s.inTxn = false
	elapsed := time.Since(s.txnStart)
	if err != nil {
		s.r.m.Transactions.WithLabelValues("abort").Inc()
		if isFenced(err) {
			return ErrFenced
		}
		// Maybe committed, maybe not: never ack; restart from the offsets.
		return fmt.Errorf("%w: %w", errOutcomeUnknown, err)
	}
	if h := s.r.cfg.Hooks; h != nil && h.AfterCommit != nil {
		h.AfterCommit()
	}
	s.r.src.Ack(cp)

	m := s.r.m
	m.Transactions.WithLabelValues("commit").Inc()
	m.TransactionSeconds.Observe(elapsed.Seconds())
	m.BatchEvents.Observe(float64(s.events))
	for k, n := range s.counts {
		m.Events.WithLabelValues(k.table.String(), k.op.String()).Add(float64(n))
		delete(s.counts, k)
	}
	if cp.LSN != 0 {
		m.CommittedLSN.Set(float64(cp.LSN))
	}
	if !cp.CommitTime.IsZero() {
		m.CommittedTimestamp.Set(float64(cp.CommitTime.UnixMilli()) / 1000)
		m.SourceLagSeconds.Set(max(0, time.Since(cp.CommitTime).Seconds()))
	}
	s.r.log.Debug("committed", "events", s.events, "position", cp.Label, "took", elapsed)
	s.pending, s.events = nil, 0
	return nil
}

// abort ends an open transaction without committing. Its outcome does not
// matter: the next session re-reads the offsets either way.
func (s *stream) abort() {
	if !s.inTxn {
		return
	}
	s.inTxn = false
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.cl.AbortBufferedRecords(ctx)
	if err := s.cl.EndTransaction(ctx, kgo.TryAbort); err == nil {
		s.r.m.Transactions.WithLabelValues("abort").Inc()
	}
	for k := range s.counts {
		delete(s.counts, k)
	}
}

// shutdown ends the open transaction on SIGTERM: commit it when it ends at
// a checkpoint, abort it when it holds part of a source transaction.
func (s *stream) shutdown() error {
	if s.inTxn && s.pending != nil && !s.dirty {
		label := s.pending.Label
		ctx, cancel := context.WithTimeout(context.Background(), s.r.cfg.ShutdownGrace)
		defer cancel()
		if err := s.commit(ctx); err != nil {
			s.r.log.Warn("final commit failed; the next start resumes from the last committed position", "err", err)
			s.abort()
			return nil
		}
		s.r.log.Info("stopped after committing", "position", label)
		return nil
	}
	s.abort()
	s.r.log.Info("stopped")
	return nil
}
