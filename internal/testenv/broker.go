package testenv

import (
	"bytes"
	"context"
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

// brokerReady starts the line the dev-broker prints once it accepts
// connections.
const brokerReady = "dev-broker listening on "

// Broker is a `cdcrelay dev-broker` running as a separate process, so that
// tests can kill it.
type Broker struct {
	Addr    string // what the broker advertises: 127.0.0.1:port
	DataDir string
	Port    int

	dir     string
	logFile string
	args    []string
	env     []string
	proc    *proc
}

type brokerOptions struct {
	args []string
	env  []string
}

// BrokerOption changes how StartBroker runs the broker.
type BrokerOption func(*brokerOptions)

// BrokerArgs adds flags to the dev-broker command line, such as --tls-cert or
// --sasl-user.
func BrokerArgs(args ...string) BrokerOption {
	return func(o *brokerOptions) { o.args = append(o.args, args...) }
}

// BrokerEnv adds KEY=VALUE pairs to the broker's environment, such as the
// CDCRELAY_DEV_BROKER_PASSWORD_<NAME> variables.
func BrokerEnv(kv ...string) BrokerOption {
	return func(o *brokerOptions) { o.env = append(o.env, kv...) }
}

// StartBroker runs `cdcrelay dev-broker --listen 127.0.0.1:<free port>
// --data-dir <temp dir>` (built by Binary) and waits until it prints that it
// is listening. The broker is killed and its directory removed when the test
// ends.
func StartBroker(t testing.TB, opts ...BrokerOption) *Broker {
	t.Helper()
	var o brokerOptions
	for _, opt := range opts {
		opt(&o)
	}
	bin := Binary(t)
	dir := serverDir(t, "broker", false)
	b := &Broker{
		DataDir: filepath.Join(dir, "data"),
		dir:     dir,
		logFile: filepath.Join(dir, "broker.log"),
		args:    append([]string{bin, "dev-broker"}, o.args...),
		env:     o.env,
	}
	t.Cleanup(b.cleanup)
	for attempt := 1; ; attempt++ {
		b.Port = FreePort(t)
		err := b.start()
		if err == nil {
			return b
		}
		if attempt < 3 && portTaken(tail(b.logFile)) {
			continue
		}
		t.Fatalf("testenv: start dev-broker: %v\n%s", err, tail(b.logFile))
	}
}

func (b *Broker) start() error {
	b.proc = nil
	argv := append(append([]string(nil), b.args...),
		"--listen", "127.0.0.1:"+strconv.Itoa(b.Port), "--data-dir", b.DataDir)
	logf, err := os.OpenFile(b.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	ready := make(chan string, 1)
	w := &readyWriter{dst: logf, ready: ready}
	pr, err := startProc(procSpec{
		name:   "dev-broker",
		argv:   argv,
		dir:    b.dir,
		log:    b.logFile,
		stdout: w,
		env:    b.env,
	})
	if err != nil {
		logf.Close()
		return err
	}
	b.proc = pr
	go func() { <-pr.done; logf.Close() }()
	err = waitFor(pr, startTimeout, func() error {
		select {
		case addr := <-ready:
			b.Addr = addr
			return nil
		default:
			return errNotYet
		}
	})
	if err != nil {
		pr.kill()
		return err
	}
	return nil
}

type notYet struct{}

func (notYet) Error() string { return "no ready line yet" }

var errNotYet error = notYet{}

// readyWriter copies the broker's stdout into its log and reports the
// address from the ready line.
type readyWriter struct {
	mu    sync.Mutex
	dst   *os.File
	buf   []byte
	seen  bool
	ready chan<- string
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dst.Write(p)
	if w.seen {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if addr, ok := strings.CutPrefix(line, brokerReady); ok {
			w.seen = true
			w.buf = nil
			w.ready <- strings.TrimSpace(addr)
			break
		}
	}
	return len(p), nil
}

func (b *Broker) cleanup() {
	if b.proc != nil {
		b.proc.kill()
	}
}

// Kill sends SIGKILL to the broker and waits for it to exit.
func (b *Broker) Kill(t testing.TB) {
	t.Helper()
	if b.proc == nil || b.proc.exited() {
		t.Fatalf("testenv: dev-broker: Kill: not running")
	}
	b.proc.kill()
}

// Stop sends SIGTERM, waits for the broker to save its state and exit, and
// fails the test unless it exited with status 0.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	if b.proc == nil || b.proc.exited() {
		t.Fatalf("testenv: dev-broker: Stop: not running")
	}
	if !b.proc.stop(syscall.SIGTERM, startTimeout) {
		t.Fatalf("testenv: dev-broker did not stop within %v; killed it\n%s", startTimeout, tail(b.logFile))
	}
	if b.proc.err != nil {
		t.Fatalf("testenv: dev-broker exited with %v after SIGTERM\n%s", b.proc.err, tail(b.logFile))
	}
}

// Exited reports whether the broker process has exited.
func (b *Broker) Exited() bool { return b.proc == nil || b.proc.exited() }

// Start starts a stopped or killed broker again, on the same port and data
// directory, with the same flags and environment.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	if b.proc != nil && !b.proc.exited() {
		t.Fatalf("testenv: dev-broker: Start: already running")
	}
	if err := b.start(); err != nil {
		t.Fatalf("testenv: restart dev-broker on port %d: %v\n%s", b.Port, err, tail(b.logFile))
	}
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

// LogTail returns the end of the broker's log, for failure messages.
func (b *Broker) LogTail() string { return tail(b.logFile) }

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
