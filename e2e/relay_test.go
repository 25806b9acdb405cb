package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// The generator source numbers its transactions; each holds perTxn events
// spread over the keys. These tests run the real binary (built with the
// cdcrelay_testing tag, which adds the generator and the crash points)
// against a broker in its own process (Apache Kafka unless
// CDCRELAY_TEST_KAFKA=dev).

const perTxn = 10

func genConfig(t *testing.T, b *testenv.Broker, id string, txns int, interval string) string {
	return writeConfig(t, fmt.Sprintf(`id: %s
source:
  type: testgen
  dsn: testgen://gen@local/gen?txns=%d&per_txn=%d&keys=37&interval=%s&payload=100
  tables: [gen.items]
kafka:
  brokers: [%s]
  topic_prefix: %s
  batch_linger: 20ms
  batch_max_events: 50
metrics:
  listen: "off"
`, id, txns, perTxn, interval, b.Addr, id))
}

type genValue struct {
	After struct {
		ID  int `json:"id"`
		Txn int `json:"txn"`
		I   int `json:"i"`
	} `json:"after"`
}

// checkExactlyOnce checks the topic holds each event of transactions
// 1..upTo exactly once, nothing beyond upTo, and per key increasing order.
func checkExactlyOnce(t *testing.T, b *testenv.Broker, topic string, upTo int) {
	t.Helper()
	recs := readAll(t, b, topic)
	seen := map[[2]int]int{}
	lastTxn := map[string]int{}
	dups := 0
	for _, r := range recs {
		var v genValue
		mustJSON(t, r.Value, &v)
		k := [2]int{v.After.Txn, v.After.I}
		seen[k]++
		if seen[k] > 1 {
			dups++
			t.Errorf("duplicate: txn %d event %d", k[0], k[1])
		}
		if v.After.Txn > upTo {
			t.Errorf("txn %d is visible but the stored position is %d", v.After.Txn, upTo)
		}
		if prev := lastTxn[r.Key]; v.After.Txn < prev {
			t.Errorf("key %s: txn %d after txn %d (order broken)", r.Key, v.After.Txn, prev)
		}
		lastTxn[r.Key] = v.After.Txn
	}
	missing := 0
	var partial []string
	for n := 1; n <= upTo; n++ {
		m := 0
		for i := 0; i < perTxn; i++ {
			if seen[[2]int{n, i}] == 0 {
				m++
			}
		}
		if m > 0 {
			partial = append(partial, fmt.Sprintf("txn %d: %d of %d missing", n, m, perTxn))
		}
		missing += m
	}
	if missing > 0 {
		if len(partial) > 20 {
			partial = append(partial[:10], append([]string{"..."}, partial[len(partial)-10:]...)...)
		}
		t.Errorf("%d committed events missing:\n%s", missing, strings.Join(partial, "\n"))
	}
	if len(recs) != upTo*perTxn {
		t.Errorf("read %d records (%d duplicates), want %d", len(recs), dups, upTo*perTxn)
	}
	if !t.Failed() {
		t.Logf("%s: %d records checked: no loss, no duplicate, per-key order kept", topic, len(recs))
	}
}

func storedTxn(t *testing.T, cfg string) int {
	s := offsetsState(t, cfg)
	if s == "" {
		return 0
	}
	var st struct{ Txn int }
	mustJSON(t, []byte(s), &st)
	return st.Txn
}

// A crash between produce and commit leaves no visible record of the open
// batch; a crash between commit and ack loses nothing; the restart resumes
// exactly after the stored position.
func TestCrashPoints(t *testing.T) {
	for _, point := range []string{"after-produce", "after-commit"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			b := testenv.StartBroker(t)
			id := strings.ReplaceAll(point, "-", "_")
			cfg := genConfig(t, b, id, 120, "1ms")
			p := startRelay(t, cfg, "CDCRELAY_TEST_CRASH="+point+":4")
			st := p.wait(t, time.Minute)
			if st.Success() || !strings.Contains(p.out.String(), "test crash point reached") {
				t.Fatalf("relay did not crash at %s: %v\n%s", point, st, p.out.String())
			}
			at := storedTxn(t, cfg)
			if at == 0 {
				t.Fatalf("nothing committed before the crash")
			}
			// Only what the offsets topic covers is visible, to franz-go and
			// to kcat (librdkafka) alike: the batch open at the crash is not.
			checkExactlyOnce(t, b, id+".gen.items", at)
			testenv.Require(t, "kcat")
			out := testenv.Kcat(t, "-b", b.Addr, "-C", "-t", id+".gen.items", "-e", "-q",
				"-X", "isolation.level=read_committed", "-f", "%s\n")
			if n := strings.Count(out, "\n"); n != at*perTxn {
				t.Fatalf("kcat read %d records read_committed after the crash, want %d", n, at*perTxn)
			}

			p = startRelay(t, cfg)
			eventually(t, time.Minute, "all 120 transactions committed", func() bool { return storedTxn(t, cfg) == 120 })
			if code := p.stop(t); code != 0 {
				t.Fatalf("SIGTERM exit code %d, want 0", code)
			}
			checkExactlyOnce(t, b, id+".gen.items", 120)
		})
	}
}

// kill -9 at random moments, five times, then a clean finish: no loss, no
// duplicates, order kept. kcat, an independent client, confirms the count.
func TestRandomKills(t *testing.T) {
	b := testenv.StartBroker(t)
	cfg := genConfig(t, b, "kills", 3000, "1ms")
	for i := 0; i < 5; i++ {
		p := startRelay(t, cfg)
		time.Sleep(time.Duration(300+rand.IntN(900)) * time.Millisecond)
		p.kill()
		t.Logf("kill %d: stored position txn %d", i+1, storedTxn(t, cfg))
	}
	p := startRelay(t, cfg)
	eventually(t, 2*time.Minute, "all 3000 transactions committed", func() bool { return storedTxn(t, cfg) == 3000 })
	if code := p.stop(t); code != 0 {
		t.Fatalf("SIGTERM exit code %d", code)
	}
	checkExactlyOnce(t, b, "kills.gen.items", 3000)

	testenv.Require(t, "kcat")
	out := testenv.Kcat(t, "-b", b.Addr, "-C", "-t", "kills.gen.items", "-e", "-q",
		"-X", "isolation.level=read_committed", "-f", "%k %s\n")
	if n := strings.Count(out, "\n"); n != 3000*perTxn {
		t.Fatalf("kcat read %d records read_committed, want %d", n, 3000*perTxn)
	}
}

// A second relay with the same id fences the first, which exits non-zero
// saying so; the output holds no duplicates.
func TestFencing(t *testing.T) {
	b := testenv.StartBroker(t)
	cfg := genConfig(t, b, "fence", 0, "5ms")
	first := startRelay(t, cfg)
	eventually(t, 30*time.Second, "first relay commits", func() bool { return storedTxn(t, cfg) > 5 })
	second := startRelay(t, cfg)
	st := first.wait(t, time.Minute)
	if st.Success() {
		t.Fatalf("fenced relay exited 0:\n%s", first.out.String())
	}
	if !strings.Contains(first.out.String(), "fenced") {
		t.Fatalf("fenced relay did not say so:\n%s", first.out.String())
	}
	before := storedTxn(t, cfg)
	eventually(t, 30*time.Second, "second relay commits", func() bool { return storedTxn(t, cfg) > before+5 })
	if code := second.stop(t); code != 0 {
		t.Fatalf("second relay exit %d", code)
	}
	checkExactlyOnce(t, b, "fence.gen.items", storedTxn(t, cfg))
	t.Logf("first relay's last words: %s", lastLine(first.out.String()))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

var _ = strconv.Itoa

// The broker is killed with kill -9 twice while the relay streams and
// restarted on its data directory. The relay treats the failed commits as
// outcome unknown, re-reads the offsets topic and goes on: no loss, no
// duplicates.
func TestBrokerKill(t *testing.T) {
	b := testenv.StartBroker(t)
	cfg := genConfig(t, b, "brokerkill", 0, "2ms")
	p := startRelay(t, cfg)
	for i := 0; i < 2; i++ {
		before := storedTxn(t, cfg)
		eventually(t, time.Minute, "commits before the broker kill", func() bool { return storedTxn(t, cfg) > before+20 })
		b.Kill(t)
		time.Sleep(time.Second)
		b.Start(t)
		at := storedTxn(t, cfg)
		eventually(t, 2*time.Minute, "commits after the broker restart", func() bool { return storedTxn(t, cfg) > at+20 })
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	t.Logf("session restarts: %d", strings.Count(p.out.String(), "relay restarting from the stored offsets"))
	checkExactlyOnce(t, b, "brokerkill.gen.items", storedTxn(t, cfg))
}

// A topic deleted under a running relay: the relay does not stop. It
// creates the topic again, says loudly that the topic now holds only the
// changes from then on and how to refill it, and the stored position goes
// on to the end.
func TestTopicDeletedWhileRunning(t *testing.T) {
	b := testenv.StartBroker(t)
	cfg := genConfig(t, b, "deleted", 600, "20ms")
	p := startRelay(t, cfg)
	eventually(t, time.Minute, "100 transactions committed", func() bool { return storedTxn(t, cfg) >= 100 })
	adm := kadm.NewClient(b.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := adm.DeleteTopic(ctx, "deleted.gen.items"); err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	eventually(t, 3*time.Minute, "all 600 transactions committed", func() bool { return storedTxn(t, cfg) == 600 })
	if code := p.stop(t); code != 0 {
		t.Fatalf("SIGTERM exit code %d\n%s", code, p.out.String())
	}
	out := p.out.String()
	if !strings.Contains(out, "topic was deleted while the relay wrote to it") || !strings.Contains(out, "cdcrelay snapshot") {
		t.Fatalf("no warning that the topic was deleted and how to refill it:\n%s", out)
	}
	ends, err := adm.ListEndOffsets(ctx, "deleted.gen.items")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	if n == 0 {
		t.Fatalf("the topic created again holds nothing")
	}
}
