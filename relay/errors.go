package relay

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// This file classifies what goes wrong: which errors stop the relay,
// which restart its session from the offsets topic, and under which cause
// the restart is counted.

// ErrFenced means a newer relay with the same source id took over the
// transactional id; this one must stop.
var ErrFenced = errors.New("relay: producer fenced by a newer instance with the same id; this instance stops")

// ErrTxnTimedOut means the broker aborted an open transaction because it
// outlasted kafka.transaction_timeout.
var ErrTxnTimedOut = errors.New("relay: transaction timed out")

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
// transactional id: Apache Kafka answers PRODUCER_FENCED to the EndTxn and
// INVALID_PRODUCER_EPOCH to the produce of a producer whose epoch a newer
// InitProducerID has bumped (TestFencedErrorsOnBroker).
//
// INVALID_TXN_STATE counts too: when the takeover lands while our EndTxn is
// on its way, Apache Kafka 4.2 answers it with INVALID_TXN_STATE, because
// the new producer's InitProducerID has already aborted the transaction
// (seen in e2e TestFencing). In an undisturbed session the coordinator then
// no longer has our transaction, and restarting would fence the newer
// instance in turn, so the relay stops. In a session that saw a broker
// fault any of these is retried instead (see connWatch).
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.InvalidTxnState)
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

// A takeover is how a transaction coordinator's description of our
// transactional id reads after a commit with an unclear answer.
type takeover int

const (
	notTakenOver takeover = iota // the id is still ours: restart as usual
	takenOver                    // a newer producer initialised the id
	unsettled                    // a transaction is still ending: ask again
)

// judgeTakeover reads the coordinator's description of our transactional
// id against the producer id and epoch our transaction ran under.
//
// Every InitProducerID bumps the epoch, and a transaction's end bumps it by
// at most one (transactions v2 bump it at each commit and abort, v1 only
// when the coordinator aborts on a timeout or a fence). A newer instance
// taking the id over while our transaction was open therefore leaves it at
// least two above ours once its InitProducerID is through: the fence's
// abort is one, its own initialisation the other. A producer id other than
// ours means the same (a new id replaces an exhausted epoch).
//
// Some takeovers race our EndTxn into answers that name no fencing at all
// (Apache Kafka 4.2 has answered UNKNOWN_SERVER_ERROR); restarting on them
// would fence the newer instance in turn, and the two would take turns.
func judgeTakeover(d kadm.DescribedTransaction, id int64, epoch int16) takeover {
	switch {
	case d.ProducerID != id, d.State == "PrepareEpochFence", int(d.ProducerEpoch) >= int(epoch)+2:
		return takenOver
	case (d.State == "Ongoing" || d.State == "Empty") && d.ProducerEpoch > epoch:
		// Our transaction ends in CompleteCommit or CompleteAbort; a newer
		// epoch that is empty or has a transaction open was initialised
		// by someone else.
		return takenOver
	case d.State == "PrepareCommit", d.State == "PrepareAbort":
		return unsettled
	}
	return notTakenOver
}

// probeTakeover asks the transaction coordinator, for up to wait, whether a
// newer producer took our transactional id over while a commit's answer was
// unclear. Any doubt (the broker cannot describe transactions, the end is
// still pending when wait runs out) answers false: the relay then restarts
// as it would without asking, and a newer instance that initialises after
// that restart still fences it.
func probeTakeover(ctx context.Context, adm *kadm.Client, txnID string, id int64, epoch int16, wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		ds, err := adm.DescribeTransactions(ctx, txnID)
		if err == nil {
			if d, ok := ds[txnID]; ok && d.Err == nil {
				switch judgeTakeover(d, id, epoch) {
				case takenOver:
					return true
				case notTakenOver:
					return false
				}
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}
