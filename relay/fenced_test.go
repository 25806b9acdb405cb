package relay

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestFencedErrorsOnBroker takes a transactional id over with a second
// producer at each point of the first one's transaction and checks that
// whatever error the first producer then gets from the broker isFenced
// classifies as fenced, and that its commit never succeeds. It runs on the
// broker CDCRELAY_TEST_KAFKA names, so the rule is judged on Apache Kafka.
func TestFencedErrorsOnBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	b := testenv.StartBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(b.Client(t))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "fence"); err != nil {
		t.Fatal(err)
	}
	newProducer := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.TransactionalID(id), kgo.DefaultProduceTopic("fence"),
			kgo.RecordRetries(3), kgo.RequestRetries(3))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	produce := func(cl *kgo.Client) error {
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		return cl.ProduceSync(ctx, kgo.StringRecord("x")).FirstErr()
	}
	// takeOver initialises a second producer on id and writes in a
	// transaction with it, which it commits unless keepOpen.
	takeOver := func(id string, keepOpen bool) {
		cl := newProducer(id)
		if err := produce(cl); err != nil {
			t.Fatalf("the new producer: %v", err)
		}
		if keepOpen {
			return
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("the new producer's commit: %v", err)
		}
	}
	for _, tc := range []struct {
		name     string
		keepOpen bool // the new producer's transaction stays open
		// open runs the old producer up to the takeover; after runs the
		// rest of its transaction and returns the first error.
		open, after func(cl *kgo.Client) error
	}{
		{"open transaction, then commit", false,
			produce,
			func(cl *kgo.Client) error { return cl.EndTransaction(ctx, kgo.TryCommit) }},
		{"open transaction, then commit while the new one is open", true,
			produce,
			func(cl *kgo.Client) error { return cl.EndTransaction(ctx, kgo.TryCommit) }},
		{"open transaction, then produce", false,
			produce,
			func(cl *kgo.Client) error {
				if err := cl.ProduceSync(ctx, kgo.StringRecord("y")).FirstErr(); err != nil {
					return err
				}
				return cl.EndTransaction(ctx, kgo.TryCommit)
			}},
		{"between transactions, then a new one", false,
			func(cl *kgo.Client) error {
				if err := produce(cl); err != nil {
					return err
				}
				return cl.EndTransaction(ctx, kgo.TryCommit)
			},
			func(cl *kgo.Client) error {
				if err := produce(cl); err != nil {
					return err
				}
				return cl.EndTransaction(ctx, kgo.TryCommit)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "fence-" + t.Name()
			old := newProducer(id)
			if err := tc.open(old); err != nil {
				t.Fatalf("before the takeover: %v", err)
			}
			pid, epoch, err := old.ProducerID(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if probeTakeover(ctx, adm, id, pid, epoch, 5*time.Second) {
				t.Fatal("probeTakeover saw a takeover before there was one")
			}
			takeOver(id, tc.keepOpen)
			// The probe the relay runs after an unclear commit answer must
			// see the newer producer, whatever the old one hears next.
			if !probeTakeover(ctx, adm, id, pid, epoch, 5*time.Second) {
				t.Error("probeTakeover missed the takeover")
			}
			err = tc.after(old)
			t.Logf("%s on %s: %v", tc.name, b.Kind, err)
			if err == nil {
				t.Fatal("the old producer committed after the takeover")
			}
			if !isFenced(err) {
				t.Errorf("isFenced(%v) = false", err)
			}
		})
	}
}

// TestJudgeTakeover: the coordinator's descriptions a commit with an
// unclear answer can meet, for a transaction that ran at producer 7,
// epoch 3.
func TestJudgeTakeover(t *testing.T) {
	for _, tc := range []struct {
		state string
		id    int64
		epoch int16
		want  takeover
	}{
		{"CompleteCommit", 7, 3, notTakenOver}, // v1: our commit went through
		{"CompleteCommit", 7, 4, notTakenOver}, // v2: our commit bumped the epoch
		{"CompleteAbort", 7, 4, notTakenOver},  // aborted, nobody else came
		{"Ongoing", 7, 3, notTakenOver},        // our EndTxn never arrived
		{"PrepareCommit", 7, 3, unsettled},
		{"PrepareAbort", 7, 4, unsettled},
		{"PrepareEpochFence", 7, 4, takenOver},
		{"CompleteAbort", 7, 5, takenOver}, // fence abort, then a new InitProducerID
		{"Ongoing", 7, 5, takenOver},
		{"Ongoing", 7, 4, takenOver},        // a transaction newer than ours
		{"Empty", 7, 4, takenOver},          // initialised after our commit (v1)
		{"CompleteCommit", 8, 0, takenOver}, // a new producer id
	} {
		d := kadm.DescribedTransaction{State: tc.state, ProducerID: tc.id, ProducerEpoch: tc.epoch}
		if got := judgeTakeover(d, 7, 3); got != tc.want {
			t.Errorf("%s at producer %d epoch %d: got %d, want %d", tc.state, tc.id, tc.epoch, got, tc.want)
		}
	}
}
