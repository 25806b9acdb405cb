package relay

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestIsFenced(t *testing.T) {
	for _, err := range []error{kerr.ProducerFenced, fmt.Errorf("x: %w", kerr.InvalidProducerEpoch), kerr.InvalidTxnState} {
		if !isFenced(err) {
			t.Errorf("%v not seen as fenced", err)
		}
	}
	for _, err := range []error{kerr.InvalidProducerIDMapping, kerr.RequestTimedOut, errors.New("EOF")} {
		if isFenced(err) {
			t.Errorf("%v seen as fenced", err)
		}
	}
}
