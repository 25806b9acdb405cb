package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// relayProc is one `cdcrelay run` process.
type relayProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRelay runs `cdcrelay run --config cfg` with extra environment.
func startRelay(t *testing.T, cfg string, env ...string) *relayProc {
	t.Helper()
	bin := testenv.Binary(t)
	p := &relayProc{out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "--config", cfg)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start relay: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("relay output:\n%s", p.out.String())
		}
	})
	return p
}

func (p *relayProc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *relayProc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("relay did not stop within 30s of SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

// wait waits for the process to exit by itself.
func (p *relayProc) wait(t *testing.T, d time.Duration) *os.ProcessState {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState
	case <-time.After(d):
		t.Fatalf("relay still running after %s", d)
		return nil
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cdcrelay.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// record is one record read back from Kafka.
type record struct {
	Key       string
	Value     []byte
	Partition int32
	Offset    int64
}

// readAll reads every record of topic read_committed, from the start to the
// last stable offset.
func readAll(t *testing.T, b *testenv.Broker, topic string) []record {
	t.Helper()
	cl := b.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []record
	idle := 0
	for idle < 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			out = append(out, record{Key: string(r.Key), Value: r.Value, Partition: r.Partition, Offset: r.Offset})
		})
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return out
}

// offsetsState runs `cdcrelay offsets show` and returns the state JSON.
func offsetsState(t *testing.T, cfg string) string {
	t.Helper()
	out, err := exec.Command(testenv.Binary(t), "offsets", "show", "--json", "--config", cfg).Output()
	if err != nil {
		t.Fatalf("offsets show: %v\n%s", err, out)
	}
	var rec struct{ State json.RawMessage }
	mustJSON(t, out, &rec)
	if string(rec.State) == "null" {
		return ""
	}
	return string(rec.State)
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func fmtCounts(m map[string]int) string {
	var b strings.Builder
	for k, v := range m {
		fmt.Fprintf(&b, "%s=%d ", k, v)
	}
	return b.String()
}
