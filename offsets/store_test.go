package offsets_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/offsets"
)

// Against a dev broker process: the topic is created compacted with one
// partition; Load returns the last committed value for the key, skipping
// aborted transactions, other keys and non-transactional noise; a
// tombstone resets.
func TestLoadLastCommittedWins(t *testing.T) {
	b := testenv.StartBroker(t)
	ctx := context.Background()
	opts := []kgo.Opt{kgo.SeedBrokers(b.Addr)}
	cl := b.Client(t)
	const topic = "offs"
	if err := offsets.EnsureTopic(ctx, cl, topic, 1); err != nil {
		t.Fatal(err)
	}
	if err := offsets.EnsureTopic(ctx, cl, topic, 1); err != nil {
		t.Fatalf("second EnsureTopic: %v", err)
	}
	if rec, err := offsets.Load(ctx, opts, topic, "shop"); err != nil || rec != nil {
		t.Fatalf("empty topic: %+v, %v", rec, err)
	}

	txn := b.Client(t, kgo.TransactionalID("t-shop"))
	write := func(id, label string, commit bool) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		rec := offsets.NewRecord(id, &change.Checkpoint{State: []byte(`{"p":"` + label + `"}`), Label: label}, "test", time.Now())
		if err := txn.ProduceSync(ctx, rec.KafkaRecord(topic)).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	write("shop", "1", true)
	write("other", "x", true)
	write("shop", "2", true)
	write("shop", "3-aborted", false)

	rec, err := offsets.Load(ctx, opts, topic, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if rec == nil || rec.Position != "2" {
		t.Fatalf("loaded %+v, want position 2", rec)
	}
	if rec, _ := offsets.Load(ctx, opts, topic, "other"); rec == nil || rec.Position != "x" {
		t.Fatalf("other key: %+v", rec)
	}

	// A tombstone (what `cdcrelay offsets reset` writes) resets the key.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("shop")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if rec, err := offsets.Load(ctx, opts, topic, "shop"); err != nil || rec != nil {
		t.Fatalf("after tombstone: %+v, %v", rec, err)
	}

	// An open transaction is not read: Load stops at the last stable offset.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	rec4 := offsets.NewRecord("shop", &change.Checkpoint{State: []byte(`{}`), Label: "4-open"}, "test", time.Now())
	if err := txn.ProduceSync(ctx, rec4.KafkaRecord(topic)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if rec, err := offsets.Load(lctx, opts, topic, "shop"); err != nil || rec != nil {
		t.Fatalf("with an open transaction: %+v, %v", rec, err)
	}
	_ = txn.EndTransaction(ctx, kgo.TryAbort)
}

func TestEnsureTopicRefusesWrongShape(t *testing.T) {
	b := testenv.StartBroker(t)
	ctx := context.Background()
	cl := b.Client(t)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "three"); err != nil {
		t.Fatal(err)
	}
	err := offsets.EnsureTopic(ctx, cl, "three", 1)
	if err == nil || !strings.Contains(err.Error(), "has 3 partitions, needs exactly 1") {
		t.Fatalf("err = %v", err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, "deleting"); err != nil {
		t.Fatal(err)
	}
	err = offsets.EnsureTopic(ctx, cl, "deleting", 1)
	if err == nil || !strings.Contains(err.Error(), "cleanup.policy=delete, needs exactly compact") || !errors.Is(err, offsets.ErrTopicLayout) {
		t.Fatalf("err = %v", err)
	}
	// Retention would delete the position of a relay stopped for longer
	// than retention.ms.
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact,delete")}, "both"); err != nil {
		t.Fatal(err)
	}
	if _, err := offsets.CheckTopic(ctx, cl, "both"); !errors.Is(err, offsets.ErrTopicLayout) {
		t.Fatalf("compact,delete: err = %v", err)
	}
	if exists, err := offsets.CheckTopic(ctx, cl, "missing"); exists || err != nil {
		t.Fatalf("missing topic: exists=%v err=%v", exists, err)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil || topics.Has("missing") {
		t.Fatalf("CheckTopic created the topic it checked (err %v)", err)
	}
}

// A source's parts load with its record: the last value of each part wins,
// a tombstone deletes one, the parts of a source whose id starts like
// another's are not mixed up, and parts without a record load as nothing.
func TestLoadParts(t *testing.T) {
	b := testenv.StartBroker(t)
	ctx := context.Background()
	opts := []kgo.Opt{kgo.SeedBrokers(b.Addr)}
	const topic = "offs"
	if err := offsets.EnsureTopic(ctx, b.Client(t), topic, 1); err != nil {
		t.Fatal(err)
	}
	txn := b.Client(t, kgo.TransactionalID("t-parts"))
	write := func(commit bool, id string, cp *change.Checkpoint) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for _, p := range cp.Parts {
			recs = append(recs, offsets.PartRecord(topic, id, p))
		}
		if cp.State != nil {
			recs = append(recs, offsets.NewRecord(id, cp, "test", time.Now()).KafkaRecord(topic))
		}
		if err := txn.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	part := func(name, v string) change.Part {
		if v == "" {
			return change.Part{Name: name}
		}
		return change.Part{Name: name, Value: []byte(v)}
	}
	write(true, "shop", &change.Checkpoint{State: []byte(`{"p":1}`), Parts: []change.Part{part("table/a", `1`), part("table/b", `1`), part("table/c", `1`)}})
	write(true, "shop_eu", &change.Checkpoint{State: []byte(`{"p":1}`), Parts: []change.Part{part("table/a", `9`)}})
	write(true, "shop", &change.Checkpoint{State: []byte(`{"p":2}`), Parts: []change.Part{part("table/a", `2`), part("table/c", "")}})
	write(false, "shop", &change.Checkpoint{State: []byte(`{"p":3}`), Parts: []change.Part{part("table/b", `3`)}})
	write(true, "lonely", &change.Checkpoint{Parts: []change.Part{part("table/x", `1`)}})

	rec, err := offsets.Load(ctx, opts, topic, "shop")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"table/a": "2", "table/b": "1"}
	if rec == nil || string(rec.State) != `{"p":2}` || len(rec.Parts) != len(want) {
		t.Fatalf("loaded %+v", rec)
	}
	for n, v := range want {
		if string(rec.Parts[n]) != v {
			t.Fatalf("part %s = %q, want %q", n, rec.Parts[n], v)
		}
	}
	if rec, err := offsets.Load(ctx, opts, topic, "lonely"); err != nil || rec != nil {
		t.Fatalf("parts without a record: %+v, %v", rec, err)
	}
	names, err := offsets.PartNames(ctx, opts, topic, "shop")
	if err != nil || strings.Join(names, ",") != "table/a,table/b" {
		t.Fatalf("PartNames = %v, %v", names, err)
	}
}
