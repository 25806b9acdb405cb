package kafkaclient_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// ReadToEnd returns the committed records only, finishes on a partition
// whose last entries are an aborted transaction and its marker, skips an
// empty partition, and stops at the last stable offset taken at the start.
func TestReadToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	b := testenv.StartBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "read.to.end"
	if _, err := kadm.NewClient(b.Client(t)).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	txn := b.Client(t, kgo.TransactionalID("read-to-end"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	write := func(commit bool, part int32, vals ...string) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if err := txn.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: part, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn2 := b.Client(t, kgo.TransactionalID("read-to-end-open"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	write(true, 0, "a", "b")
	write(false, 0, "aborted")
	write(true, 1, "c")
	write(false, 1, "aborted")
	write(false, 1, "aborted again")
	// Partition 2 holds only an open transaction: its last stable offset
	// is 0, so nothing is read there and the read does not wait for it.
	if err := txn2.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn2.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 2, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	defer txn2.EndTransaction(context.Background(), kgo.TryAbort)

	opts := []kgo.Opt{kgo.SeedBrokers(b.Addr)}
	var got []string
	err := kafkaclient.ReadToEnd(ctx, opts, []string{topic, "no.such.topic"}, kafkaclient.ReadOptions{Idle: 20 * time.Second}, func(r *kgo.Record) error {
		got = append(got, fmt.Sprintf("%d:%s", r.Partition, r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[0:a 0:b 1:c]" {
		t.Errorf("read %v, want [0:a 0:b 1:c]", got)
	}

	ends, _, err := kafkaclient.StableEnds(ctx, opts, topic)
	if err != nil {
		t.Fatal(err)
	}
	// Partition 0: two records, a commit marker, one aborted record and
	// its marker.
	if ends[topic][0] != 5 || ends[topic][2] != 0 {
		t.Errorf("stable ends %v", ends[topic])
	}
}
