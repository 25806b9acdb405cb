package relay

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

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
