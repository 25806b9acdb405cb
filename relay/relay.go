package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/offsets"
	"github.com/cdcrelay/cdcrelay/sources"
)

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
	// MaxRecordBytes bounds a record batch, and so a record, before
	// compression (kafka.max_record_bytes); 0 means franz-go's default,
	// DefaultMaxRecordBytes. A larger bound also goes into the
	// max.message.bytes of the topics the relay creates.
	MaxRecordBytes int32
	// Format encodes events into records.
	Format format.Options
	// Columns leaves out and masks columns (source.column_*) before an
	// event is encoded; nil changes nothing.
	Columns ColumnRules
	// Version is the relay version written into each offsets record.
	Version string
	// Hooks are fault-injection points, nil outside tests.
	Hooks *Hooks
	// ShutdownGrace bounds the final commit after the context is done.
	// Default 10s.
	ShutdownGrace time.Duration
}

// DefaultMaxRecordBytes is the record batch bound of franz-go and of
// Kafka's own producer, which a zero Config.MaxRecordBytes keeps.
const DefaultMaxRecordBytes = 1000012

// ColumnRules rewrites an event before it is encoded: it leaves out or
// masks columns. Apply is called from one goroutine. An error from it stops
// the relay, since the same event would fail again after a restart.
type ColumnRules interface {
	Apply(ev *change.Event) (*change.Event, error)
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
// transaction timeout: partitioner, buffer bounds, batch bound, linger and
// retries. Acks (all) are franz-go's default; compression
// (kafka.compression) comes with the connection options (kafkaconfig.Opts).
// They are exported so that whoever measures the relay's producer uses the
// same settings. maxRecordBytes is kafka.max_record_bytes; 0 keeps
// franz-go's default.
func ProducerOpts(maxRecordBytes int32) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.RecordPartitioner(keyPartitioner()),
		kgo.MaxBufferedBytes(16 << 20),
		kgo.MaxBufferedRecords(10000),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.RecordRetries(10),
		kgo.UnknownTopicRetries(3),
	}
	if maxRecordBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(maxRecordBytes))
	}
	return opts
}

// TransactionalID is the transactional.id the relay uses for source id.
func TransactionalID(id string) string { return "cdcrelay-" + id }

// Relay moves one source's changes into Kafka.
type Relay struct {
	cfg    Config
	src    sources.Stream
	log    *slog.Logger
	m      *metrics.Metrics
	health *metrics.Health
	// used holds the topics an earlier session of this process wrote to:
	// one that has to be created again was deleted under the relay.
	// Sessions run one after another, so it needs no lock.
	used map[string]bool
}

// New returns a relay for src. health may be nil.
func New(cfg Config, src sources.Stream, log *slog.Logger, m *metrics.Metrics, health *metrics.Health) *Relay {
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if health == nil {
		health = &metrics.Health{}
	}
	return &Relay{cfg: cfg, src: src, log: log, m: m, health: health, used: map[string]bool{}}
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
		if sources.IsFatal(err) || (errors.Is(err, ErrFenced) && !errors.Is(err, errFencedAfterFault)) {
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
	cl, err := kgo.NewClient(append(opts, ProducerOpts(r.cfg.MaxRecordBytes)...)...)
	if err != nil {
		return sources.Fatal(fmt.Errorf("relay: kafka client: %w", err))
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
		if fatal := kafkaclient.ConnectFatal(err); fatal != nil {
			return sources.Fatal(fatal)
		}
		return fmt.Errorf("relay: init producer id: %w", err)
	}
	adm := kadm.NewClient(cl)
	if err := offsets.EnsureTopic(ctx, cl, r.cfg.OffsetsTopic, r.cfg.TopicReplication); err != nil {
		if errors.Is(err, offsets.ErrTopicLayout) {
			return sources.Fatal(err)
		}
		return err
	}
	rec, err := offsets.Load(ctx, r.cfg.Kafka, r.cfg.OffsetsTopic, r.cfg.ID)
	if err != nil {
		var newer bool
		if errors.Is(err, offsets.ErrNewerVersion) {
			newer = true
		}
		if newer {
			return sources.Fatal(err)
		}
		return err
	}
	var resume *change.Resume
	if rec != nil {
		resume = &change.Resume{State: rec.State, Parts: rec.Parts}
		r.log.Info("resuming from the offsets topic", "position", rec.Position, "written", rec.Written().UTC().Format(time.RFC3339))
	} else {
		r.log.Info("no stored position; starting fresh", "offsets_topic", r.cfg.OffsetsTopic, "key", r.cfg.ID)
	}

	s := &stream{
		r:     r,
		cl:    cl,
		adm:   adm,
		enc:   format.NewEncoder(r.cfg.Format),
		known: make(map[string]bool),
		txn:   openTxn{counts: make(map[countKey]int)},
	}
	if l, ok := r.src.(sources.TableLister); ok {
		tables, err := l.Tables(ctx)
		if err != nil {
			return err
		}
		m, err := s.startTopicMaker(ctx, tables)
		if err != nil {
			return err
		}
		if m != nil {
			defer m.stop()
			s.made, s.maker = m, m
		}
	}
	return s.run(ctx, resume)
}
