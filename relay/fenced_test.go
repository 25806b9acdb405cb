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
			takeOver(id, tc.keepOpen)
			err := tc.after(old)
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
