package relay

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestConnectFatal(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("init: %w", kerr.SaslAuthenticationFailed), "SASL authentication failed; check kafka.sasl.mechanism"},
		{fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), "check kafka.tls.ca_file"},
		{fmt.Errorf("dial: %w", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "h"}), "check kafka.tls.server_name"},
		{kerr.TransactionalIDAuthorizationFailed, "grant the relay's user WRITE and DESCRIBE on transactional id"},
		{errors.New("EOF"), ""},
		{kerr.CoordinatorNotAvailable, ""},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			got := connectFatal(c.err)
			if c.want == "" {
				if got != nil {
					t.Fatalf("retryable error treated as fatal: %v", got)
				}
				return
			}
			if got == nil || !strings.Contains(got.Error(), c.want) {
				t.Fatalf("connectFatal = %v, want %q", got, c.want)
			}
		})
	}
}

func TestIsFenced(t *testing.T) {
	for _, err := range []error{kerr.ProducerFenced, fmt.Errorf("x: %w", kerr.InvalidProducerEpoch)} {
		if !isFenced(err) {
			t.Errorf("%v not seen as fenced", err)
		}
	}
	for _, err := range []error{kerr.InvalidTxnState, kerr.InvalidProducerIDMapping, kerr.RequestTimedOut, errors.New("EOF")} {
		if isFenced(err) {
			t.Errorf("%v seen as fenced", err)
		}
	}
}
