package kafkaconfig_test

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/sources"
)

const (
	adminPassword = "admin-Pw-93"
	relayPassword = "relay-Pw-17"
)

// aclBroker starts Apache Kafka with SASL/SCRAM and the StandardAuthorizer:
// admin is a super user, relay may do only what an ACL allows.
func aclBroker(t *testing.T, opts ...testenv.BrokerOption) (*testenv.Broker, *kadm.Client) {
	t.Helper()
	if testenv.BrokerKind() != testenv.KindApache {
		t.Skip("ACLs need Apache Kafka")
	}
	b := testenv.StartKafka(t, append([]testenv.BrokerOption{
		testenv.BrokerSASL("admin", adminPassword, "SCRAM-SHA-256"),
		testenv.BrokerSASL("relay", relayPassword, "SCRAM-SHA-256"),
		testenv.KafkaACLs("admin"),
	}, opts...)...)
	cl := b.Client(t, kgo.SASL(scram.Auth{User: "admin", Pass: adminPassword}.AsSha256Mechanism()))
	return b, kadm.NewClient(cl)
}

func relayKafka(b *testenv.Broker) *config.Kafka {
	k := &config.Kafka{Brokers: []string{b.Addr}}
	k.SASL.Mechanism = "SCRAM-SHA-256"
	k.SASL.Username = "relay"
	k.SASL.Password = config.Secret(relayPassword)
	return k
}

func target(id string) kafkaconfig.Target {
	return kafkaconfig.Target{
		TransactionalID:    "cdcrelay-" + id,
		OffsetsTopic:       id + "_offsets",
		TopicPrefix:        id,
		Topics:             []string{id + ".public.orders", id + ".public.items"},
		Partitions:         3,
		Replication:        1,
		CleanupPolicy:      "compact",
		TransactionTimeout: 20 * time.Second,
	}
}

func runCheck(t *testing.T, k *config.Kafka, tg kafkaconfig.Target) (sources.Report, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep := kafkaconfig.Check(ctx, k, tg, nil)
	var buf bytes.Buffer
	rep.Print(&buf)
	t.Logf("check:\n%s", buf.String())
	return rep, buf.String()
}

// grant gives the relay's user ops on the resources b names.
func grant(t *testing.T, adm *kadm.Client, b *kadm.ACLBuilder, ops ...kadm.ACLOperation) {
	t.Helper()
	testenv.AllowACLs(t, adm, "User:relay", b, ops...)
}

// grantAll gives the relay everything its README table lists for tg, and
// DescribeConfigs on the cluster so that check can read the broker config.
func grantAll(t *testing.T, adm *kadm.Client, tg kafkaconfig.Target) {
	grant(t, adm, kadm.NewACLs().TransactionalIDs(tg.TransactionalID), kadm.OpWrite, kadm.OpDescribe)
	grant(t, adm, kadm.NewACLs().Topics(tg.OffsetsTopic),
		kadm.OpCreate, kadm.OpDescribe, kadm.OpDescribeConfigs, kadm.OpRead, kadm.OpWrite)
	grant(t, adm, kadm.NewACLs().Topics(tg.TopicPrefix+".").ResourcePatternType(kadm.ACLPatternPrefixed),
		kadm.OpCreate, kadm.OpDescribe, kadm.OpWrite)
	grant(t, adm, kadm.NewACLs().Clusters(), kadm.OpDescribeConfigs)
}

func topicNames(t *testing.T, adm *kadm.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	return td.Names()
}

// line returns the report line whose subject starts with subject.
func line(t *testing.T, rep sources.Report, subject string) sources.Finding {
	t.Helper()
	for _, f := range rep {
		if strings.HasPrefix(f.Subject, subject) {
			return f
		}
	}
	t.Fatalf("no line for %q", subject)
	return sources.Finding{}
}

func wantLine(t *testing.T, rep sources.Report, subject string, level sources.Level, parts ...string) {
	t.Helper()
	f := line(t, rep, subject)
	if f.Level != level {
		t.Errorf("%s: level %v, want %v: %s", f.Subject, f.Level, level, f.Detail)
	}
	for _, p := range parts {
		if !strings.Contains(f.Detail, p) {
			t.Errorf("%s: %q does not say %q", f.Subject, f.Detail, p)
		}
	}
}

// Against Apache Kafka with SASL/SCRAM and ACLs: each missing permission
// or bad setting is one FAIL line naming the fix, and check creates
// nothing and fences nobody.
func TestCheckOnKafkaWithACLs(t *testing.T) {
	b, adm := aclBroker(t, testenv.KafkaTxnMaxTimeout(30*time.Second))
	k := relayKafka(b)

	t.Run("no ACLs", func(t *testing.T) {
		tg := target("none")
		before := topicNames(t, adm)
		rep, out := runCheck(t, k, tg)
		wantLine(t, rep, "kafka brokers", sources.OK)
		wantLine(t, rep, "kafka transactions", sources.OK)
		wantLine(t, rep, "kafka acl transactional-id", sources.Block,
			"Write and Describe denied", "--allow-principal User:relay", "--operation Write --operation Describe --transactional-id cdcrelay-none")
		wantLine(t, rep, "kafka acl topic none_offsets", sources.Block,
			"Create, Describe, Read, Write denied", "--operation Create --operation Describe --operation DescribeConfigs --operation Read --operation Write --topic none_offsets")
		wantLine(t, rep, "kafka acl topics none.*", sources.Block,
			"2 of 2", "none.public.orders", "--operation Create --operation Describe --operation Write --resource-pattern-type prefixed --topic none.")
		wantLine(t, rep, "kafka transaction.max.timeout.ms", sources.Warn, "--operation DescribeConfigs --cluster")
		if strings.Contains(out, relayPassword) {
			t.Fatalf("the password is printed")
		}
		if after := topicNames(t, adm); !slices.Equal(before, after) {
			t.Fatalf("topics before %v, after %v", before, after)
		}
	})

	t.Run("full ACLs", func(t *testing.T) {
		tg := target("full")
		grantAll(t, adm, tg)
		before := topicNames(t, adm)
		rep, _ := runCheck(t, k, tg)
		for _, f := range rep {
			if f.Level != sources.OK {
				t.Errorf("not ok: %s: %s", f.Subject, f.Detail)
			}
		}
		if after := topicNames(t, adm); !slices.Equal(before, after) {
			t.Fatalf("topics before %v, after %v", before, after)
		}

		// The same once the topics exist: their ACLs come from metadata.
		ctx := context.Background()
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, tg.OffsetsTopic); err != nil {
			t.Fatal(err)
		}
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, tg.Topics[0]); err != nil {
			t.Fatal(err)
		}
		rep, _ = runCheck(t, k, tg)
		for _, f := range rep {
			if f.Level != sources.OK {
				t.Errorf("not ok with the topics created: %s: %s", f.Subject, f.Detail)
			}
		}
		wantLine(t, rep, "kafka offsets topic full_offsets cleanup.policy", sources.OK, "compact")
	})

	t.Run("Write missing", func(t *testing.T) {
		tg := target("part")
		grant(t, adm, kadm.NewACLs().TransactionalIDs(tg.TransactionalID), kadm.OpDescribe)
		grant(t, adm, kadm.NewACLs().Topics(tg.OffsetsTopic), kadm.OpCreate, kadm.OpDescribe, kadm.OpRead)
		rep, _ := runCheck(t, k, tg)
		wantLine(t, rep, "kafka acl transactional-id", sources.Block, "Write denied (Describe allowed)")
		wantLine(t, rep, "kafka acl topic part_offsets", sources.Block, "Write denied")
	})

	t.Run("offsets topic with cleanup.policy=delete", func(t *testing.T) {
		tg := target("del")
		grantAll(t, adm, tg)
		if _, err := adm.CreateTopic(context.Background(), 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, tg.OffsetsTopic); err != nil {
			t.Fatal(err)
		}
		rep, _ := runCheck(t, k, tg)
		wantLine(t, rep, "kafka offsets topic del_offsets cleanup.policy", sources.Block,
			"is delete, needs exactly compact", "--entity-name del_offsets --add-config cleanup.policy=compact")
		wantLine(t, rep, "kafka offsets topic del_offsets partitions", sources.OK)
	})

	t.Run("transaction timeout above the broker's maximum", func(t *testing.T) {
		tg := target("full")
		tg.TransactionTimeout = time.Minute
		rep, _ := runCheck(t, k, tg)
		wantLine(t, rep, "kafka transaction.max.timeout.ms", sources.Block,
			"30000 (30s) is below kafka.transaction_timeout (1m0s)", "transaction.max.timeout.ms=60000")
	})

	t.Run("replication factor 3 on one broker", func(t *testing.T) {
		tg := target("full")
		tg.Replication = 3
		rep, _ := runCheck(t, k, tg)
		wantLine(t, rep, "kafka replication factor", sources.Block, "3 exceeds the 1 broker(s)", "at most 1")
	})

	// A producer holding the transactional id with a transaction open is
	// not fenced by check: it commits afterwards.
	t.Run("does not fence", func(t *testing.T) {
		tg := target("full")
		opts, err := kafkaconfig.Opts(k, nil)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(opts, kgo.TransactionalID(tg.TransactionalID), kgo.TransactionTimeout(tg.TransactionTimeout))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: tg.Topics[0], Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		rep, _ := runCheck(t, k, tg)
		wantLine(t, rep, "kafka acl transactional-id", sources.OK, "Write allowed")
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit after check: %v", err)
		}
	})
}

// Without reachable brokers, check says so in one line and stops.
func TestCheckUnreachable(t *testing.T) {
	k := &config.Kafka{Brokers: []string{"127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))}}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	rep := kafkaconfig.Check(ctx, k, target("gone"), nil)
	t.Logf("%+v", rep)
	if len(rep) != 1 || rep[0].Level != sources.Block || !strings.Contains(rep[0].Detail, "cannot reach") {
		t.Fatalf("report: %+v", rep)
	}
}

// On a broker without ACLs, of either kind, a fresh cluster passes.
func TestCheckOpenBroker(t *testing.T) {
	b := testenv.StartBroker(t)
	tg := target("open")
	rep, _ := runCheck(t, &config.Kafka{Brokers: []string{b.Addr}}, tg)
	for _, f := range rep {
		if f.Level == sources.Block {
			t.Errorf("FAIL on %s: %s: %s", b.Kind, f.Subject, f.Detail)
		}
	}
	// Once the topics exist.
	adm := kadm.NewClient(b.Client(t))
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, tg.OffsetsTopic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, tg.Topics[0]); err != nil {
		t.Fatal(err)
	}
	rep, _ = runCheck(t, &config.Kafka{Brokers: []string{b.Addr}}, tg)
	for _, f := range rep {
		if f.Level == sources.Block {
			t.Errorf("FAIL on %s with the topics created: %s: %s", b.Kind, f.Subject, f.Detail)
		}
	}
}
