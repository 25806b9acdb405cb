package kafkaclient_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
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
		// A failed handshake wraps the x509 error in tls's: the host
		// mismatch must still name server_name, not the CA.
		{fmt.Errorf("dial: %w", &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "h"}}), "check kafka.tls.server_name"},
		{fmt.Errorf("dial: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), "check kafka.tls.ca_file"},
		{kerr.InvalidTransactionTimeout, "lower kafka.transaction_timeout or raise transaction.max.timeout.ms"},
		{errors.New("EOF"), ""},
		{kerr.CoordinatorNotAvailable, ""},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			got := kafkaclient.ConnectFatal(c.err)
			if c.want == "" {
				if got != nil {
					t.Fatalf("retryable error treated as fatal: %v", got)
				}
				return
			}
			if got == nil || !strings.Contains(got.Error(), c.want) {
				t.Fatalf("ConnectFatal = %v, want %q", got, c.want)
			}
		})
	}
}
