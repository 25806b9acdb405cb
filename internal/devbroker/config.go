package devbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// SASL mechanisms a User may use.
const (
	MechPlain       = "PLAIN"
	MechScramSHA256 = "SCRAM-SHA-256"
	MechScramSHA512 = "SCRAM-SHA-512"
)

// Config describes one broker. The zero value is not usable: Listen is
// required.
type Config struct {
	// Listen is the host:port to accept connections on. Port 0 picks a free
	// port; Broker.Addr reports the one chosen. Required.
	Listen string

	// Advertise is the host:port the broker tells clients to connect to in
	// metadata responses. Default: the listen address, with an unspecified
	// host (0.0.0.0, ::, or empty) replaced by 127.0.0.1 and port 0 replaced
	// by the bound port.
	Advertise string

	// DataDir, when set, keeps the broker's state in this directory and
	// reloads it at start; see the package doc for what survives a crash.
	// Default "": memory only, everything is lost at Close.
	DataDir string

	// SyncWrites fsyncs every append before it is acknowledged. Requires
	// DataDir. Default false: appends reach the page cache only.
	SyncWrites bool

	// AutoCreateTopics creates a topic the first time a client asks for its
	// metadata. Default false: unknown topics are errors, as the relay
	// expects.
	AutoCreateTopics bool

	// DefaultPartitions is the partition count of auto-created topics and of
	// CreateTopics requests that ask for the broker default. Default 0
	// means 1, as in Kafka.
	DefaultPartitions int

	// TLSCertFile and TLSKeyFile, both set, make the listener TLS only.
	// Default: plaintext.
	TLSCertFile, TLSKeyFile string

	// TLSClientCAFile, when set, requires every client to present a
	// certificate signed by one of the PEM certificates in this file.
	// Requires TLSCertFile. Default: client certificates are not asked for.
	TLSClientCAFile string

	// CompactInterval is how often the broker compacts cleanup.policy=compact
	// topics and applies retention.ms and retention.bytes. Default 0: never.
	// kfake's compaction does not stop at the last stable offset, so a key
	// written by a transaction that is still open can replace the committed
	// value, which is lost if that transaction then aborts: with the relay's
	// offsets topic, the stored position. Turn it on only to try compaction.
	CompactInterval time.Duration

	// SASL, when not empty, requires every connection to authenticate as one
	// of these users. Every user may do everything: there are no ACLs.
	// Default: no authentication.
	SASL []User
}

// User is a SASL login. Its String, GoString and LogValue never show the
// password.
type User struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	Name      string
	Password  string
}

const redacted = "[redacted]"

// String returns MECHANISM:NAME.
func (u User) String() string { return u.Mechanism + ":" + u.Name }

// GoString keeps %#v from printing the password.
func (u User) GoString() string {
	return fmt.Sprintf("devbroker.User{Mechanism:%q, Name:%q, Password:%q}", u.Mechanism, u.Name, redacted)
}

// LogValue logs the mechanism and name only.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("mechanism", u.Mechanism), slog.String("name", u.Name))
}

// MarshalJSON keeps JSON log handlers and encoders from writing the password.
func (u User) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct{ Mechanism, Name, Password string }{u.Mechanism, u.Name, redacted})
}

// Format makes every fmt verb, %+v included, go through String or GoString.
func (u User) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, u.GoString())
		return
	}
	fmt.Fprint(f, u.String())
}

// canonicalMechanism returns the upper-case mechanism name, or "" if the
// mechanism is not supported.
func canonicalMechanism(m string) string {
	switch u := strings.ToUpper(m); u {
	case MechPlain, MechScramSHA256, MechScramSHA512:
		return u
	}
	return ""
}

// ParseUser parses MECHANISM:NAME, the form of the --sasl-user flag. The
// mechanism is case-insensitive; the password is left empty.
func ParseUser(s string) (User, error) {
	mech, name, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return User{}, fmt.Errorf("devbroker: sasl user %q: want MECHANISM:NAME", s)
	}
	c := canonicalMechanism(mech)
	if c == "" {
		return User{}, fmt.Errorf("devbroker: sasl user %q: mechanism %q is not one of %s, %s, %s", s, mech, MechPlain, MechScramSHA256, MechScramSHA512)
	}
	return User{Mechanism: c, Name: name}, nil
}

// validate returns every problem of c at once, each naming its field.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.Listen == "" {
		bad("listen: required")
	} else if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen: %q: %v", c.Listen, err)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		bad("listen: %q: port must be 0..65535", c.Listen)
	}
	if c.Advertise != "" {
		if host, port, err := net.SplitHostPort(c.Advertise); err != nil {
			bad("advertise: %q: %v", c.Advertise, err)
		} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || host == "" {
			bad("advertise: %q: want host:port with a port of 1..65535", c.Advertise)
		}
	}
	if c.SyncWrites && c.DataDir == "" {
		bad("sync_writes: needs data_dir")
	}
	if c.CompactInterval < 0 || (c.CompactInterval > 0 && c.CompactInterval < time.Millisecond) {
		bad("compact_interval: %v: want 0 (never) or at least 1ms", c.CompactInterval)
	}
	if c.DefaultPartitions < 0 {
		bad("default_partitions: %d is negative", c.DefaultPartitions)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("tls: cert file and key file go together")
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		bad("tls_client_ca_file: needs tls_cert_file and tls_key_file")
	}
	seen := map[[2]string]bool{}
	for i, u := range c.SASL {
		switch {
		case canonicalMechanism(u.Mechanism) == "":
			bad("sasl[%d]: mechanism %q is not one of %s, %s, %s", i, u.Mechanism, MechPlain, MechScramSHA256, MechScramSHA512)
		case u.Name == "":
			bad("sasl[%d]: name: required", i)
		case u.Password == "":
			bad("sasl[%d] (%s): password: required", i, u)
		}
		k := [2]string{canonicalMechanism(u.Mechanism), u.Name}
		if seen[k] {
			bad("sasl[%d] (%s): listed twice", i, u)
		}
		seen[k] = true
	}
	return errors.Join(errs...)
}
