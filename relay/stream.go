package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/offsets"
	"github.com/cdcrelay/cdcrelay/sources"
)

// This file is the transaction loop of one session: events in, records
// produced into the open Kafka transaction, the offsets record with it,
// the commit on its own goroutine, and the ack once Kafka has it.

type countKey struct {
	table change.TableID
	op    change.Op
}

// maxHeld bounds the encoded records the loop holds while a commit is in
// flight, in bytes of keys and values. When it is reached the loop waits for
// the commit.
const maxHeld = 1 << 20

// stream is the transaction loop of one session.
//
// A commit does not stall the loop. When a Kafka transaction ends at a
// checkpoint, the loop produces its offsets record and hands the transaction
// to a commit goroutine (Flush, EndTransaction, ack), then goes on receiving
// and encoding the next messages. Their records are held in memory, not
// produced, until the commit has succeeded: only then does the loop begin the
// next Kafka transaction and produce them. At most one commit is in flight;
// the loop waits for it when it needs the client (the next commit, a full
// hold buffer, shutdown, an abort).
type stream struct {
	r   *Relay
	cl  *kgo.Client
	adm *kadm.Client
	enc *format.Encoder

	in    chan change.Message // the source's output, for its backlog
	known map[string]bool     // topics known to exist
	// made creates the listed tables' topics in the background for the
	// whole session (nil without listed tables); maker is the same until
	// the loop has taken in every one of its topics, then nil.
	made, maker *topicMaker

	txn openTxn
	// linger ends the batching of the open transaction: it commits at its
	// checkpoint once BatchLinger has passed since it opened.
	linger *time.Timer

	// The commit in flight, nil when there is none.
	inflight *commitJob
	done     chan commitResult
	cctx     context.Context // for Flush in commit goroutines
	ccancel  context.CancelFunc
	// orphan: a failed commit left its Kafka transaction open (it failed
	// before EndTransaction); abort must end it.
	orphan bool

	errMu   sync.Mutex
	prodErr error
	recs    []*kgo.Record

	now       time.Time // when the loop took the messages it is handling
	lastTopic string    // topic of the last event, known to exist
}

// commitJob is one Kafka transaction handed to the commit goroutine, its
// records and offsets record already produced.
type commitJob struct {
	cp      *change.Checkpoint
	started time.Time
	events  int
	counts  map[countKey]int
	// records is the encoder's generation of the records of this
	// transaction, reused once it has committed.
	records format.Generation
}

// commitResult is how a commit ended. ended is false when it failed before
// EndTransaction, leaving the Kafka transaction open.
type commitResult struct {
	err   error
	ended bool
}

func (s *stream) promise(r *kgo.Record, err error) {
	// The record stays in the encoder's pool until its transaction commits
	// (format.Encoder.Recycle); its bytes must not stay with it, or a
	// transaction of a million events would keep every value it had
	// produced so far. franz-go is done with the record once it calls this.
	r.Key, r.Value, r.Headers = nil, nil, nil
	if err == nil {
		return
	}
	s.errMu.Lock()
	if s.prodErr == nil {
		s.prodErr = err
	}
	s.errMu.Unlock()
}

// maxRecordBytes is the record batch bound the producer runs with.
func (s *stream) maxRecordBytes() int32 {
	if n := s.r.cfg.MaxRecordBytes; n > 0 {
		return n
	}
	return DefaultMaxRecordBytes
}

func (s *stream) produceErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.prodErr
}

func (s *stream) run(ctx context.Context, resume *change.Resume) error {
	srcCtx, stopSource := context.WithCancel(context.Background())
	in := make(chan change.Message, 1024)
	s.in = in
	s.done = make(chan commitResult, 1)
	// Commits are not cut short by ctx: shutdown waits for the one in flight
	// for up to the grace period, then cancels it.
	s.cctx, s.ccancel = context.WithCancel(context.WithoutCancel(ctx))
	defer s.ccancel()
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
	s.linger = time.NewTimer(time.Hour)
	s.linger.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.shutdown()
		case err := <-srcDone:
			s.abort()
			if err == nil {
				err = errors.New("source stopped without an error")
			}
			if sources.IsFatal(err) {
				return err
			}
			return fmt.Errorf("%w: %w", errSource, err)
		case res := <-s.done:
			err := s.committed(res)
			if err == nil {
				err = s.release(ctx)
			}
			if err != nil {
				s.abort()
				return err
			}
			// The open transaction may have reached its checkpoint meanwhile.
			if s.txn.endsAtCheckpoint() && s.commitDue() {
				if err := s.commit(ctx); err != nil {
					s.abort()
					return err
				}
			}
		case <-s.made.failedCh():
			s.abort()
			return s.made.err
		case <-s.linger.C:
			if s.txn.endsAtCheckpoint() {
				if err := s.commit(ctx); err != nil {
					s.abort()
					return err
				}
			}
		case msg := <-in:
			// One clock reading for the run of messages drain takes with
			// it: ts_ms and the record timestamps.
			s.now = time.Now()
			if err := s.handle(ctx, msg); err != nil {
				s.abort()
				return err
			}
			if err := s.drain(ctx); err != nil {
				s.abort()
				return err
			}
		}
	}
}

// drainMax bounds the messages drain takes before the loop's select looks
// at the other channels again.
const drainMax = 64

// drain handles the messages already queued, up to drainMax, by receiving
// from the input alone: the loop's select locks all of its channels for
// each message, which costs as much as the hand-off itself under a backlog.
func (s *stream) drain(ctx context.Context) error {
	for range drainMax {
		select {
		case msg := <-s.in:
			if err := s.handle(ctx, msg); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	return nil
}

func (s *stream) handle(ctx context.Context, msg change.Message) error {
	if s.maker != nil {
		if err := s.awaitMessageTopics(ctx, msg); err != nil {
			return err
		}
	}
	if s.txn.phase == txnNone {
		s.txn.open(time.Now())
		s.linger.Reset(s.r.cfg.BatchLinger)
		if s.inflight == nil {
			if err := s.begin(); err != nil {
				return err
			}
		}
	}
	if ev := msg.Event; ev != nil {
		return s.event(ctx, ev)
	}
	for _, ev := range msg.Events {
		if err := s.event(ctx, ev); err != nil {
			return err
		}
	}
	if cp := msg.Checkpoint; cp != nil {
		s.txn.end = cp
		// Only the last checkpoint's record is written; the parts of each
		// are written once, so none may be dropped.
		s.txn.parts = append(s.txn.parts, cp.Parts...)
		if s.commitDue() {
			return s.commit(ctx)
		}
	}
	return nil
}

// event encodes ev and produces its records into the open transaction.
func (s *stream) event(ctx context.Context, ev *change.Event) error {
	if s.r.cfg.Columns != nil {
		var err error
		if ev, err = s.r.cfg.Columns.Apply(ev); err != nil {
			return sources.Fatal(err)
		}
	}
	if topic := s.enc.Topic(ev.Table); topic != s.lastTopic {
		if !s.known[topic] {
			ensure := s.ensureTopic
			if s.maker.pending(topic) {
				ensure = s.awaitTopic
			}
			if err := ensure(ctx, topic); err != nil {
				return err
			}
		}
		s.lastTopic = topic
	}
	s.recs = s.enc.AppendAt(s.recs[:0], ev, s.now)
	if err := s.produce(ctx, s.recs); err != nil {
		return err
	}
	s.txn.count(ev)
	s.txn.end = nil
	return nil
}

// commitDue reports whether the open transaction, which ends at a
// checkpoint, should commit now. It commits at once when the source has
// nothing more queued: waiting for the linger then only adds latency. With a
// backlog it batches up to the linger or the size limit, for fewer commits.
func (s *stream) commitDue() bool {
	return len(s.in) == 0 || s.txn.events >= s.r.cfg.BatchMaxEvents || time.Since(s.txn.start) >= s.r.cfg.BatchLinger
}

// begin begins the Kafka transaction of the open transaction.
func (s *stream) begin() error {
	if err := s.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("relay: begin transaction: %w", err)
	}
	s.txn.phase = txnBegun
	return nil
}

// produce produces recs into the open transaction, or holds them while a
// commit is in flight; a full hold buffer waits for that commit.
func (s *stream) produce(ctx context.Context, recs []*kgo.Record) error {
	if s.txn.phase != txnBegun && s.inflight == nil {
		if err := s.release(ctx); err != nil {
			return err
		}
	}
	if s.txn.phase == txnBegun {
		for _, rec := range recs {
			s.cl.Produce(ctx, rec, s.promise)
		}
		return nil
	}
	s.txn.hold(recs)
	if s.txn.heldSize >= maxHeld {
		return s.awaitCommit(ctx)
	}
	return nil
}

// awaitCommit waits for the commit in flight, if any, and then begins the
// open transaction's Kafka transaction and produces its held records.
func (s *stream) awaitCommit(ctx context.Context) error {
	if s.inflight != nil {
		if err := s.committed(<-s.done); err != nil {
			return err
		}
	}
	return s.release(ctx)
}

// committed takes the result of the commit in flight.
func (s *stream) committed(res commitResult) error {
	job := s.inflight
	s.inflight = nil
	if res.err != nil {
		s.orphan = !res.ended
		return res.err
	}
	// Flush returned before the commit: every record of the transaction
	// has had its promise, and the producer holds none of them.
	s.enc.Recycle(job.records)
	return nil
}

// release begins the open transaction in Kafka, once no commit is in
// flight, and produces the records held for it.
func (s *stream) release(ctx context.Context) error {
	if s.txn.phase != txnHeld || s.inflight != nil {
		return nil
	}
	if err := s.begin(); err != nil {
		return err
	}
	for i, rec := range s.txn.held {
		s.cl.Produce(ctx, rec, s.promise)
		s.txn.held[i] = nil
	}
	s.txn.held, s.txn.heldSize = s.txn.held[:0], 0
	return nil
}

// commit ends the open transaction at its end checkpoint: it waits for
// the commit in flight (and produces the held records), produces the offsets
// record, and hands the transaction to a commit goroutine.
func (s *stream) commit(ctx context.Context) error {
	if err := s.awaitCommit(ctx); err != nil {
		return err
	}
	cp := s.txn.end
	s.txn.countRun()
	for i, p := range s.txn.parts {
		s.cl.Produce(ctx, offsets.PartRecord(s.r.cfg.OffsetsTopic, s.r.cfg.ID, p), s.promise)
		s.txn.parts[i] = change.Part{}
	}
	s.txn.parts = s.txn.parts[:0]
	off := offsets.NewRecord(s.r.cfg.ID, cp, s.r.cfg.Version, time.Now())
	s.cl.Produce(ctx, off.KafkaRecord(s.r.cfg.OffsetsTopic), s.promise)
	job := &commitJob{cp: cp, started: s.txn.start, events: s.txn.events, counts: s.txn.counts, records: s.enc.Cut()}
	s.txn.counts = make(map[countKey]int, len(job.counts))
	s.txn.phase, s.txn.end, s.txn.events = txnNone, nil, 0
	s.inflight = job
	go func() { s.done <- s.finish(s.cctx, job) }()
	return nil
}

// fenced returns the error for a fencing answer to job's transaction. Kafka
// answers a transaction that its coordinator aborted for outlasting the
// transaction timeout just as it answers a newer instance's fencing, so a
// transaction open that long is reported as what it most likely is: a
// source transaction too large for kafka.transaction_timeout. Both stop
// the relay: a restart would replay the same transaction into the same
// timeout, or fence the newer instance in turn.
func (s *stream) fenced(job *commitJob) error {
	if open := time.Since(job.started); open >= s.r.cfg.TransactionTimeout {
		return sources.Fatal(fmt.Errorf("%w: the broker aborted a transaction open for %v, longer than kafka.transaction_timeout (%v); raise kafka.transaction_timeout (and the broker's transaction.max.timeout.ms) above the time the largest source transaction takes to pass",
			ErrTxnTimedOut, open.Round(time.Millisecond), s.r.cfg.TransactionTimeout))
	}
	return ErrFenced
}

// finish flushes and commits job's transaction, then acks the source. It
// runs on the commit goroutine; the loop does not touch the client until it
// has the result.
func (s *stream) finish(ctx context.Context, job *commitJob) commitResult {
	if err := s.cl.Flush(ctx); err != nil {
		return commitResult{err: fmt.Errorf("relay: flush: %w", err)}
	}
	if err := s.produceErr(); err != nil {
		// A produce that failed in a transaction older than the timeout
		// is the coordinator's abort, whatever code the broker gave it
		// (fencing, TRANSACTION_ABORTABLE): replaying it would run into
		// the same timeout.
		if isFenced(err) || time.Since(job.started) >= s.r.cfg.TransactionTimeout {
			return commitResult{err: s.fenced(job)}
		}
		if errors.Is(err, kerr.MessageTooLarge) {
			// The same row comes again after a restart: only a setting
			// can help.
			return commitResult{err: sources.Fatal(fmt.Errorf("relay: an event is larger than kafka.max_record_bytes (%d) or than its topic's max.message.bytes; raise both to more than the largest row's event: %w", s.maxRecordBytes(), err))}
		}
		return commitResult{err: fmt.Errorf("relay: produce: %w", err)}
	}
	if h := s.r.cfg.Hooks; h != nil && h.AfterProduce != nil {
		h.AfterProduce()
	}
	// EndTransaction gets its own context: cancelling it mid-request would
	// leave the outcome unknown.
	// The producer id and epoch are read before EndTransaction: after a
	// failed end, asking the client for them could initialise a new epoch.
	pid, epoch, pidErr := s.cl.ProducerID(ctx)
	ectx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := s.cl.EndTransaction(ectx, kgo.TryCommit)
	cancel()
	elapsed := time.Since(job.started)
	if err != nil {
		s.r.m.Transactions.WithLabelValues("abort").Inc()
		if isFenced(err) {
			return commitResult{err: s.fenced(job), ended: true}
		}
		if pidErr == nil && probeTakeover(ctx, s.adm, TransactionalID(s.r.cfg.ID), pid, epoch, 5*time.Second) {
			s.r.log.Warn("a newer relay took the transactional id over during a commit", "commit_err", err)
			return commitResult{err: ErrFenced, ended: true}
		}
		// Maybe committed, maybe not: never ack; restart from the offsets.
		return commitResult{err: fmt.Errorf("%w: %w", errOutcomeUnknown, err), ended: true}
	}
	if h := s.r.cfg.Hooks; h != nil && h.AfterCommit != nil {
		h.AfterCommit()
	}
	cp := job.cp
	s.r.src.Ack(cp)

	m := s.r.m
	m.Transactions.WithLabelValues("commit").Inc()
	m.TransactionSeconds.Observe(elapsed.Seconds())
	m.BatchEvents.Observe(float64(job.events))
	for k, n := range job.counts {
		m.Events.WithLabelValues(m.Table(k.table.String()), k.op.String()).Add(float64(n))
	}
	if cp.LSN != 0 {
		m.CommittedLSN.Set(float64(cp.LSN))
	}
	if !cp.CommitTime.IsZero() {
		m.CommittedTimestamp.Set(float64(cp.CommitTime.UnixMilli()) / 1000)
		m.SourceLagSeconds.Set(max(0, time.Since(cp.CommitTime).Seconds()))
	}
	s.r.log.Debug("committed", "events", job.events, "position", cp.Label, "took", elapsed)
	return commitResult{ended: true}
}

// abort ends the open transaction without committing, after the commit in
// flight (if any) has been stopped or has finished. Its outcome does not
// matter: the next session re-reads the offsets either way.
func (s *stream) abort() {
	if s.inflight != nil {
		// Its flush is cut short; an EndTransaction already sent completes.
		s.ccancel()
		_ = s.committed(<-s.done)
	}
	open := s.txn.phase == txnBegun || s.orphan
	s.txn.discard()
	s.orphan = false
	if !open {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.cl.AbortBufferedRecords(ctx)
	if err := s.cl.EndTransaction(ctx, kgo.TryAbort); err == nil {
		s.r.m.Transactions.WithLabelValues("abort").Inc()
	}
}

// shutdown ends the open transaction on SIGTERM: it lets the commit in
// flight finish, then commits the open transaction when it ends at a
// checkpoint and aborts it when it holds part of a source transaction. The
// flushes get ShutdownGrace in all.
func (s *stream) shutdown() error {
	grace := time.AfterFunc(s.r.cfg.ShutdownGrace, s.ccancel)
	defer grace.Stop()
	err := s.awaitCommit(s.cctx)
	if err == nil && s.txn.endsAtCheckpoint() {
		label := s.txn.end.Label
		if err = s.commit(s.cctx); err == nil {
			err = s.committed(<-s.done)
		}
		if err == nil {
			s.r.log.Info("stopped after committing", "position", label)
			return nil
		}
	}
	if err != nil {
		s.r.log.Warn("final commit failed; the next start resumes from the last committed position", "err", err)
	}
	s.abort()
	if err == nil {
		s.r.log.Info("stopped")
	}
	return nil
}
