package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// kafkaNode is one Apache Kafka process (a KRaft broker and controller in
// one) for the Flink tests: Flink's Kafka client needs a broker that
// answers every request it sends, and the dev broker does not.
type kafkaNode struct {
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func startKafka(t *testing.T) *kafkaNode {
	t.Helper()
	java := testenv.Java(t)
	cp := testenv.Jars(t, "kafka")
	dir := t.TempDir()
	port, cport := testenv.FreePort(t), testenv.FreePort(t)
	k := &kafkaNode{Addr: fmt.Sprintf("127.0.0.1:%d", port), log: filepath.Join(dir, "kafka.log")}
	props := filepath.Join(dir, "server.properties")
	conf := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=%[3]s
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.partitions=1
`, port, cport, filepath.Join(dir, "data"))
	if err := os.WriteFile(props, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	format := exec.Command(java, "-cp", cp, "kafka.tools.StorageTool", "format", "-t", "vJkAoiuSSveH2LcC2HQdYg", "-c", props)
	if out, err := format.CombinedOutput(); err != nil {
		t.Fatalf("kafka storage format: %v\n%s", err, out)
	}
	logf, err := os.Create(k.log)
	if err != nil {
		t.Fatal(err)
	}
	k.cmd = exec.Command(java, "-Xmx512m", "-cp", cp, "kafka.Kafka", props)
	k.cmd.Dir = dir
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k.done = make(chan struct{})
	go func() { k.cmd.Wait(); logf.Close(); close(k.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		<-k.done
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = cl.Ping(ctx)
			cancel()
			cl.Close()
			if err == nil {
				return k
			}
		}
		select {
		case <-k.done:
			t.Fatalf("kafka exited:\n%s", k.tail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kafka not up after 2 minutes: %v\n%s", err, k.tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (k *kafkaNode) tail() string {
	b, _ := os.ReadFile(k.log)
	s := string(b)
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return strings.TrimSpace(s)
}

// Client returns a client of the node, closed when the test ends.
func (k *kafkaNode) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// flinkKafka is the Kafka the Flink tests run against.
type flinkKafka interface {
	Client(t testing.TB, opts ...kgo.Opt) *kgo.Client
}

// readTopic reads every record of topic read_committed, from the start to
// the last stable offset.
func readTopic(t *testing.T, k flinkKafka, topic string) []record {
	t.Helper()
	cl := k.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
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
