package kafkaclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ConnectFatal returns a one-line error naming the setting to fix for a
// failure to connect that no retry can fix (bad credentials, an untrusted
// certificate, a missing grant, a transaction timeout the brokers refuse),
// and nil for anything a retry may fix. The returned error wraps err.
func ConnectFatal(err error) error {
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
	case errors.Is(err, kerr.InvalidTransactionTimeout):
		return fmt.Errorf("kafka: the brokers refuse kafka.transaction_timeout as longer than their transaction.max.timeout.ms; lower kafka.transaction_timeout or raise transaction.max.timeout.ms: %w", err)
	}
	return nil
}

// Permanent reports whether a failure to talk to the brokers is one that
// waiting cannot fix: credentials, certificates or permissions. Anything
// else (a broker that is down or still starting, a network fault) is worth
// retrying.
func Permanent(err error) bool {
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	return errors.As(err, &uae) || errors.As(err, &cve) || errors.As(err, &hne) ||
		errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) || errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.Is(err, kerr.GroupAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}
