package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerReady starts the line cdcrelay-devbroker prints once it accepts
// connections.
const brokerReady = "dev-broker listening on "

// brokerKindEnv names the variable that picks the broker StartBroker runs:
// "apache" (the default) or "dev".
const brokerKindEnv = "CDCRELAY_TEST_KAFKA"

// The kinds of broker.
const (
	KindApache = "apache" // Apache Kafka from Maven Central's jars (kafka.go)
	KindDev    = "dev"    // cdcrelay-devbroker, franz-go's kfake
)

// BrokerKind returns the kind of broker StartBroker runs, from
// CDCRELAY_TEST_KAFKA (default apache). An unknown value panics: a typo
// must not quietly test the other broker.
func BrokerKind() string {
	switch k := os.Getenv(brokerKindEnv); k {
	case "", KindApache:
		return KindApache
	case KindDev:
		return KindDev
	default:
		panic(fmt.Sprintf("testenv: %s=%q: want %s or %s", brokerKindEnv, k, KindApache, KindDev))
	}
}

// Broker is a Kafka broker running as a separate process, so that tests
// can kill it: Apache Kafka or the dev broker. Stop is a clean shutdown
// (SIGTERM), Kill a SIGKILL, Start starts it again on the same port and
// data.
type Broker struct {
	server
	Kind    string // KindApache or KindDev
	Version string // the broker's version, such as "4.2.0"; "dev" for the dev broker
	Addr    string // what the broker advertises: 127.0.0.1:port
	DataDir string

	// For Apache Kafka: its cluster, its node id and the address of its
	// plaintext inter-broker listener.
	cluster  *KafkaCluster
	node     int
	internal string
}

type brokerOptions struct {
	args []string // dev broker only
	env  []string // dev broker only

	tlsCert, tlsKey string
	sasl            []saslUser
	conf            []string // Apache Kafka only: server.properties lines
	heap            string   // Apache Kafka only: -Xmx
	txnMaxTimeout   time.Duration
}

type saslUser struct{ mech, user, password string }

// BrokerOption changes how a broker is run.
type BrokerOption func(*brokerOptions)

// BrokerArgs adds flags to the dev-broker command line. Only the dev broker
// takes them: a test that uses them tests the dev broker itself and starts
// it with StartDevBroker.
func BrokerArgs(args ...string) BrokerOption {
	return func(o *brokerOptions) { o.args = append(o.args, args...) }
}

// BrokerEnv adds KEY=VALUE pairs to the dev broker's environment, such as
// the CDCRELAY_DEV_BROKER_PASSWORD_<NAME> variables. Dev broker only.
func BrokerEnv(kv ...string) BrokerOption {
	return func(o *brokerOptions) { o.env = append(o.env, kv...) }
}

// BrokerTLS makes the broker's client listener speak TLS with this
// certificate and key. Either kind.
func BrokerTLS(certFile, keyFile string) BrokerOption {
	return func(o *brokerOptions) { o.tlsCert, o.tlsKey = certFile, keyFile }
}

// BrokerSASL makes the client listener require SASL and adds a user with
// this password for each mechanism named (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512). Either kind.
func BrokerSASL(user, password string, mechs ...string) BrokerOption {
	return func(o *brokerOptions) {
		for _, m := range mechs {
			o.sasl = append(o.sasl, saslUser{mech: m, user: user, password: password})
		}
	}
}

// StartBroker starts the broker that CDCRELAY_TEST_KAFKA names (Apache
// Kafka by default; see BrokerKind) and waits until it serves clients. The
// broker is killed and its directory removed when the test ends.
func StartBroker(t testing.TB, opts ...BrokerOption) *Broker {
	t.Helper()
	if BrokerKind() == KindDev {
		return StartDevBroker(t, opts...)
	}
	return StartKafka(t, opts...)
}

// StartDevBroker runs `cdcrelay-devbroker --listen 127.0.0.1:<free port>
// --data-dir <temp dir>` (built by DevBrokerBinary) and waits until it
// prints that it is listening. The broker is killed and its directory
// removed when the test ends.
func StartDevBroker(t testing.TB, opts ...BrokerOption) *Broker {
	t.Helper()
	return must(NewDevBroker(t, opts...))(t)
}

// NewDevBroker is StartDevBroker for any Env: it returns what went wrong.
func NewDevBroker(e Env, opts ...BrokerOption) (*Broker, error) {
	var o brokerOptions
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.conf) > 0 || o.txnMaxTimeout > 0 {
		return nil, fmt.Errorf("dev-broker: KafkaConf and KafkaTxnMaxTimeout are for Apache Kafka")
	}
	args := append([]string(nil), o.args...)
	env := append([]string(nil), o.env...)
	if o.tlsCert != "" {
		args = append(args, "--tls-cert", o.tlsCert, "--tls-key", o.tlsKey)
	}
	for _, u := range o.sasl {
		args = append(args, "--sasl-user", u.mech+":"+u.user)
		env = append(env, "CDCRELAY_DEV_BROKER_PASSWORD_"+strings.ToUpper(u.user)+"="+u.password)
	}
	bin, err := devBrokerPath()
	if err != nil {
		return nil, err
	}
	dir, err := serverDir(e, "broker", false)
	if err != nil {
		return nil, err
	}
	b := &Broker{Kind: KindDev, Version: "dev", DataDir: filepath.Join(dir, "data")}
	b.server = server{kind: "dev-broker", dir: dir, logFile: filepath.Join(dir, "broker.log"), stopSig: syscall.SIGTERM}
	var ready chan string
	b.spec = func() procSpec {
		ready = make(chan string, 1)
		w, err := newLineWatcher(b.logFile, func(line string) bool {
			addr, ok := strings.CutPrefix(line, brokerReady)
			if ok {
				ready <- strings.TrimSpace(addr)
			}
			return ok
		})
		if err != nil {
			return procSpec{err: err}
		}
		return procSpec{
			name: "dev-broker",
			argv: append(append([]string{bin}, args...),
				"--listen", "127.0.0.1:"+strconv.Itoa(b.Port), "--data-dir", b.DataDir),
			dir:    dir,
			log:    b.logFile,
			stdout: w,
			env:    env,
		}
	}
	b.ready = func(*proc) error {
		select {
		case addr := <-ready:
			b.Addr = addr
			return nil
		default:
			return errNotYet
		}
	}
	if err := b.startFirst(e); err != nil {
		return nil, err
	}
	return b, nil
}

// Stop shuts the broker down cleanly (SIGTERM) and fails the test unless it
// exited with status 0: the dev broker saves its state then, and Apache
// Kafka shuts down in a controlled way.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	b.server.Stop(t)
	if err := b.proc.err; err != nil && b.Kind == KindDev {
		t.Fatalf("testenv: dev-broker exited with %v after SIGTERM\n%s", err, tail(b.logFile))
	}
}

type notYet struct{}

func (notYet) Error() string { return "no ready line yet" }

var errNotYet error = notYet{}

// lineWatcher copies a process's stdout into its log and hands each whole
// line to onLine until onLine reports it has seen what it waited for;
// startProc closes it once the process has ended.
type lineWatcher struct {
	mu     sync.Mutex
	dst    *os.File
	buf    []byte
	done   bool
	onLine func(line string) (done bool)
}

func newLineWatcher(log string, onLine func(string) bool) (*lineWatcher, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &lineWatcher{dst: f, onLine: onLine}, nil
}

func (w *lineWatcher) Close() error { return w.dst.Close() }

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dst.Write(p)
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for !w.done {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		w.done = w.onLine(line)
	}
	if w.done {
		w.buf = nil
	}
	return len(p), nil
}

// Client returns a client seeded with Addr, closed when the test ends. opts
// come after the seed, so they may add TLS, SASL or anything else.
func (b *Broker) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr)}, opts...)...)
	if err != nil {
		t.Fatalf("testenv: kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Log returns the broker's whole log (stderr and stdout) so far, across
// restarts.
func (b *Broker) Log(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(b.logFile)
	if err != nil {
		t.Fatalf("testenv: dev-broker log: %v", err)
	}
	return string(data)
}

// Kcat runs kcat with args and returns its stdout. It fails the test if kcat
// fails or runs for more than a minute; see Require for a missing kcat.
func Kcat(t testing.TB, args ...string) string {
	t.Helper()
	bin := Require(t, "kcat")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testenv: kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}
