package devbroker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// These tests run cdcrelay-devbroker as a separate process, so that they
// can kill it with SIGKILL.

const (
	dataTopic    = "orders"  // 3 partitions
	offsetsTopic = "offsets" // 1 partition, compacted, as the relay's
)

func createTopics(t *testing.T, b *testenv.Broker, opts ...kgo.Opt) {
	t.Helper()
	adm := kadm.NewClient(b.Client(t, opts...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		parts int32
		cfg   map[string]*string
	}{
		{dataTopic, 3, nil},
		{offsetsTopic, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}},
	} {
		r, err := adm.CreateTopic(ctx, tc.parts, 1, tc.cfg, tc.name)
		if err == nil {
			err = r.Err
		}
		if err != nil {
			t.Fatalf("create topic %s: %v\n%s", tc.name, err, b.LogTail())
		}
	}
}

// txn produces one transaction: n records to each partition of the data
// topic and one to the offsets topic, values prefixed by tag, and ends it.
// It returns the values it produced. A nil end leaves the transaction open.
func txn(ctx context.Context, cl *kgo.Client, tag string, n int, end *kgo.TransactionEndTry) ([]string, error) {
	if err := cl.BeginTransaction(); err != nil {
		return nil, err
	}
	var recs []*kgo.Record
	var vals []string
	for p := range int32(3) {
		for i := range n {
			v := fmt.Sprintf("%s/p%d/%d", tag, p, i)
			recs = append(recs, &kgo.Record{Topic: dataTopic, Partition: p, Key: []byte(v), Value: []byte(v)})
			vals = append(vals, v)
		}
	}
	off := tag + "/offset"
	recs = append(recs, &kgo.Record{Topic: offsetsTopic, Key: []byte("source"), Value: []byte(off)})
	vals = append(vals, off)
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		_ = cl.EndTransaction(ctx, kgo.TryAbort)
		return nil, err
	}
	if end == nil {
		return vals, nil // left open
	}
	return vals, cl.EndTransaction(ctx, *end)
}

var (
	commit = ptr(kgo.TryCommit)
	abort  = ptr(kgo.TryAbort)
)

func ptr[T any](v T) *T { return &v }

func producer(t *testing.T, b *testenv.Broker, txnID string) *kgo.Client {
	return b.Client(t,
		kgo.TransactionalID(txnID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(time.Minute),
		// Bounds how long a produce waits for a broker that is down.
		kgo.RecordDeliveryTimeout(20*time.Second),
	)
}

// readCommitted reads both topics with a read_committed franz-go consumer
// until it has want values, then a little longer to catch extras.
func readCommitted(t *testing.T, b *testenv.Broker, want int) []string {
	t.Helper()
	cl := b.Client(t,
		kgo.ConsumeTopics(dataTopic, offsetsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	settle := time.Time{}
	for {
		if len(got) >= want && settle.IsZero() {
			settle = time.Now().Add(500 * time.Millisecond)
		}
		if !settle.IsZero() && time.Now().After(settle) || time.Now().After(deadline) {
			return got
		}
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("fetch %s/%d: %v", topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
}

// kcatRead reads both topics with kcat at the given isolation level.
func kcatRead(t *testing.T, b *testenv.Broker, isolation string) []string {
	t.Helper()
	var got []string
	for _, topic := range []string{dataTopic, offsetsTopic} {
		out := testenv.Kcat(t, "-b", b.Addr, "-C", "-t", topic, "-e", "-q", "-f", "%s\n",
			"-X", "isolation.level="+isolation)
		got = append(got, strings.Fields(out)...)
	}
	return got
}

func sameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		missing, extra := diff(want, got), diff(got, want)
		t.Errorf("%s: %d values, want %d; missing %d %v; unexpected %d %v",
			what, len(got), len(want), len(missing), head(missing), len(extra), head(extra))
	}
}

func diff(a, b []string) []string {
	in := map[string]int{}
	for _, v := range b {
		in[v]++
	}
	var out []string
	for _, v := range a {
		if in[v] > 0 {
			in[v]--
			continue
		}
		out = append(out, v)
	}
	return out
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

// TestKillKeepsCommittedDropsAborted commits and aborts transactions, leaves
// one open, kills the broker with SIGKILL, and checks after the restart that
// read_committed readers (franz-go and kcat) see every committed record and
// nothing else.
func TestKillKeepsCommittedDropsAborted(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"page-cache", nil},
		{"sync", []string{"--sync"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			b := testenv.StartDevBroker(t, testenv.BrokerArgs(mode.args...))
			createTopics(t, b)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			var committed, aborted []string
			cl := producer(t, b, "tx-main")
			for i := range 10 {
				end, tag := commit, fmt.Sprintf("c%d", i)
				if i%3 == 1 {
					end, tag = abort, fmt.Sprintf("a%d", i)
				}
				vals, err := txn(ctx, cl, tag, 5, end)
				if err != nil {
					t.Fatalf("transaction %s: %v\n%s", tag, err, b.LogTail())
				}
				if end == commit {
					committed = append(committed, vals...)
				} else {
					aborted = append(aborted, vals...)
				}
			}
			open := producer(t, b, "tx-open")
			openVals, err := txn(ctx, open, "open", 2, nil)
			if err != nil {
				t.Fatalf("open transaction: %v", err)
			}

			b.Kill(t)
			b.Start(t)

			// The producer whose transaction was open is fenced by the
			// restart: neither producing more into what it takes for the
			// same transaction nor committing works. A new one with the
			// same id commits.
			endCtx, endCancel := context.WithTimeout(ctx, 20*time.Second)
			late := &kgo.Record{Topic: dataTopic, Partition: 2, Value: []byte("open/late")}
			err = open.ProduceSync(endCtx, late).FirstErr()
			t.Logf("the producer open at the kill, producing again, gets: %v", err)
			err = open.EndTransaction(endCtx, kgo.TryCommit)
			endCancel()
			if err == nil {
				t.Errorf("committing the transaction open at the kill worked; want it aborted")
			} else {
				t.Logf("the producer open at the kill, committing, gets: %v", err)
			}

			again := producer(t, b, "tx-open")
			vals, err := txn(ctx, again, "after-open", 1, commit)
			if err != nil {
				t.Fatalf("new producer with the id of the open transaction: %v", err)
			}
			committed = append(committed, vals...)
			// The producer that ended its transactions cleanly goes on.
			vals, err = txn(ctx, cl, "after-main", 1, commit)
			if err != nil {
				t.Fatalf("producer with ended transactions, after the restart: %v", err)
			}
			committed = append(committed, vals...)

			check := func(when string) {
				t.Helper()
				sameSet(t, when+": franz-go read_committed", readCommitted(t, b, len(committed)), committed)
				sameSet(t, when+": kcat read_committed", kcatRead(t, b, "read_committed"), committed)
				all := slices.Concat(committed, aborted, openVals)
				sameSet(t, when+": kcat read_uncommitted", kcatRead(t, b, "read_uncommitted"), all)
			}
			check("after the kill")
			if !strings.Contains(b.LogTail(), "missing ABORT marker") {
				t.Errorf("the broker did not log that it completed the open transaction\n%s", b.LogTail())
			}

			// The repaired state survives a second kill and a clean stop.
			b.Kill(t)
			b.Start(t)
			check("after a second kill")
			b.Stop(t)
			b.Start(t)
			check("after a clean stop")
		})
	}
}

// TestKillDuringTransactions kills the broker while a producer commits
// transactions as fast as it can. Every transaction whose commit was
// acknowledged must be readable after the restart, and every other one must
// be readable whole or not at all.
func TestKillDuringTransactions(t *testing.T) {
	t.Parallel()
	b := testenv.StartDevBroker(t)
	createTopics(t, b)
	cl := producer(t, b, "tx-busy")

	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex
		acked   [][]string
		unknown [][]string
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			vals, err := txn(ctx, cl, fmt.Sprintf("t%d", i), 2, commit)
			mu.Lock()
			if err == nil {
				acked = append(acked, vals)
			} else {
				unknown = append(unknown, vals)
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 30 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Kill(t)
	cancel()
	b.Start(t)
	<-done // the transaction in flight fails, or commits after the restart

	var want []string
	for _, v := range acked {
		want = append(want, v...)
	}
	got := readCommitted(t, b, len(want))
	gotSet := map[string]bool{}
	for _, v := range got {
		gotSet[v] = true
	}
	for _, v := range want {
		if !gotSet[v] {
			t.Errorf("acknowledged record %s missing after the kill", v)
		}
	}
	extra := len(got) - len(want)
	for _, vals := range unknown {
		n := 0
		for _, v := range vals {
			if gotSet[v] {
				n++
			}
		}
		if n != 0 && n != len(vals) {
			t.Errorf("unacknowledged transaction is partly visible: %d of %d records", n, len(vals))
		}
		extra -= n
	}
	if extra != 0 {
		t.Errorf("%d records visible that no transaction explains", extra)
	}
	t.Logf("%d transactions acknowledged before the kill, %d in flight", len(acked), len(unknown))
}

// TestStopKeepsOpenTransaction checks that a transaction open at a clean
// shutdown (SIGTERM) survives it and can still commit.
func TestStopKeepsOpenTransaction(t *testing.T) {
	t.Parallel()
	b := testenv.StartDevBroker(t)
	createTopics(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := producer(t, b, "tx-stop")
	want, err := txn(ctx, cl, "first", 2, commit)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := txn(ctx, cl, "open", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Stop(t)
	b.Start(t)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit the transaction open at the stop: %v\n%s", err, b.LogTail())
	}
	want = append(want, vals...)
	sameSet(t, "read_committed", readCommitted(t, b, len(want)), want)
}

// TestCrashWhileCommitting kills the broker (a crash point of test builds)
// after it has written its decision to commit a transaction and before it
// has written any of the transaction's markers. After the restart the
// transaction must be committed in every partition it touched: the decision
// is completed, not rolled back, and never half applied.
func TestCrashWhileCommitting(t *testing.T) {
	t.Parallel()
	b := testenv.StartDevBroker(t, testenv.BrokerEnv("CDCRELAY_TEST_BROKER_CRASH=after-decision:3"))
	createTopics(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cl := producer(t, b, "tx-crash")
	var want []string
	for i := range 2 {
		vals, err := txn(ctx, cl, fmt.Sprintf("c%d", i), 3, commit)
		if err != nil {
			t.Fatalf("transaction c%d: %v\n%s", i, err, b.LogTail())
		}
		want = append(want, vals...)
	}
	// The third commit decision is the crash point.
	endCtx, endCancel := context.WithTimeout(ctx, 3*time.Second)
	vals, err := txn(endCtx, cl, "decided", 3, commit)
	endCancel()
	t.Logf("the producer whose commit the crash interrupted gets: %v", err)
	if vals == nil {
		t.Fatalf("the transaction before the crash point failed early: %v", err)
	}
	want = append(want, vals...)
	deadline := time.Now().Add(30 * time.Second)
	for !b.Exited() {
		if time.Now().After(deadline) {
			t.Fatalf("the broker did not reach its crash point\n%s", b.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}

	b.Start(t)
	if n := strings.Count(b.LogTail(), "completed the commit of a transaction a crash interrupted"); n != 4 {
		t.Errorf("the broker completed the commit in %d partitions, want 4 (3 data, 1 offsets)\n%s", n, b.LogTail())
	}
	check := func(when string) {
		t.Helper()
		sameSet(t, when+": franz-go read_committed", readCommitted(t, b, len(want)), want)
		sameSet(t, when+": kcat read_committed", kcatRead(t, b, "read_committed"), want)
		sameSet(t, when+": kcat read_uncommitted", kcatRead(t, b, "read_uncommitted"), want)
	}
	check("after the crash")

	// The producer whose commit was interrupted learns that it is done:
	// retrying the commit either reports it committed or fails, and it does
	// not commit anything twice.
	retryCtx, retryCancel := context.WithTimeout(ctx, 20*time.Second)
	err = cl.EndTransaction(retryCtx, kgo.TryCommit)
	retryCancel()
	t.Logf("the producer retrying its commit after the restart gets: %v", err)
	if !strings.Contains(b.LogTail(), "fenced the producer whose commit a crash interrupted") {
		t.Errorf("the broker did not fence the producer of the completed commit\n%s", b.LogTail())
	}
	check("after the retried commit")

	// A new producer with the same id goes on.
	again := producer(t, b, "tx-crash")
	vals, err = txn(ctx, again, "after", 1, commit)
	if err != nil {
		t.Fatalf("producer after the restart: %v\n%s", err, b.LogTail())
	}
	want = append(want, vals...)
	check("after a new commit")

	// The completed decision is not applied twice.
	b.Kill(t)
	b.Start(t)
	check("after a second kill")
}

// TestKillBetweenSegmentAndIndex kills the broker with a transaction open
// and then removes the index entries of the transaction's batches, as a
// SIGKILL between kfake's segment write and its index write would leave
// them. kfake alone would load those batches as records outside any
// transaction and serve them to read_committed readers; the broker must
// restore the entries and abort the transaction.
func TestKillBetweenSegmentAndIndex(t *testing.T) {
	t.Parallel()
	b := testenv.StartDevBroker(t)
	createTopics(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cl := producer(t, b, "tx-index")
	want, err := txn(ctx, cl, "committed", 2, commit)
	if err != nil {
		t.Fatal(err)
	}
	open, err := txn(ctx, cl, "open", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Kill(t)

	// Each partition's last batch is the open transaction's: drop its index
	// entry.
	idxs, err := filepath.Glob(filepath.Join(b.DataDir, "partitions", "*", "*.idx"))
	if err != nil || len(idxs) == 0 {
		t.Fatalf("no index files under %s: %v", b.DataDir, err)
	}
	cut := 0
	for _, idx := range idxs {
		if !strings.Contains(idx, dataTopic) && !strings.Contains(idx, offsetsTopic) {
			continue
		}
		fi, err := os.Stat(idx)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < 2*15 {
			continue
		}
		if err := os.Truncate(idx, fi.Size()-15); err != nil {
			t.Fatal(err)
		}
		cut++
	}
	if cut != 4 {
		t.Fatalf("cut the last index entry of %d partitions, want 4", cut)
	}

	b.Start(t)
	if !strings.Contains(b.LogTail(), "adding index entries a crash left unwritten") {
		t.Errorf("the broker did not report the index repair\n%s", b.LogTail())
	}
	sameSet(t, "franz-go read_committed", readCommitted(t, b, len(want)), want)
	sameSet(t, "kcat read_committed", kcatRead(t, b, "read_committed"), want)
	sameSet(t, "kcat read_uncommitted", kcatRead(t, b, "read_uncommitted"), slices.Concat(want, open))
}
