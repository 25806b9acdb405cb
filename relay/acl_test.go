package relay_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/internal/gensource"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/relay"
)

// A relay that may create its tables' topics but not describe them (an ACL
// with CREATE alone) cannot tell when the broker leads them. Its session
// ends at the topic maker's first look, naming the missing operation,
// rather than after the maker's two-minute wait for leaders; nothing is
// acked.
func TestLoopTopicsWithoutDescribeEndSession(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	if testenv.BrokerKind() != testenv.KindApache {
		t.Skip("ACLs need Apache Kafka")
	}
	const adminPw, relayPw = "admin-Pw-41", "relay-Pw-58"
	b := testenv.StartKafka(t,
		testenv.BrokerSASL("admin", adminPw, "SCRAM-SHA-256"),
		testenv.BrokerSASL("relay", relayPw, "SCRAM-SHA-256"),
		testenv.KafkaACLs("admin"))
	adm := kadm.NewClient(b.Client(t, kgo.SASL(scram.Auth{User: "admin", Pass: adminPw}.AsSha256Mechanism())))
	allow := func(acl *kadm.ACLBuilder, ops ...kadm.ACLOperation) {
		testenv.AllowACLs(t, adm, "User:relay", acl, ops...)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(b.Addr), kgo.SASL(scram.Auth{User: "relay", Pass: relayPw}.AsSha256Mechanism())}
	cfg := loopConfig(opts)
	cfg.TopicPartitions = 1
	allow(kadm.NewACLs().TransactionalIDs(relay.TransactionalID(cfg.ID)), kadm.OpWrite, kadm.OpDescribe)
	allow(kadm.NewACLs().Topics(cfg.OffsetsTopic), kadm.OpCreate, kadm.OpDescribe, kadm.OpDescribeConfigs, kadm.OpRead, kadm.OpWrite)
	allow(kadm.NewACLs().Topics("loop.").ResourcePatternType(kadm.ACLPatternPrefixed), kadm.OpCreate)

	src := withTables{Source: gensource.New(gensource.Params{Txns: 5, PerTxn: 2, Keys: 7, Payload: 10}),
		tables: []change.TableID{{Namespace: "gen", Name: "items"}}}
	var buf syncBuffer
	m := metrics.New(prometheus.NewRegistry())
	cause := m.Restarts.WithLabelValues("kafka_TOPIC_AUTHORIZATION_FAILED")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- relay.New(cfg, src, slog.New(slog.NewTextHandler(&buf, nil)), m, nil).Run(ctx) }()
	for testutil.ToFloat64(cause) < 1 && time.Since(started) < 90*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(started)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if testutil.ToFloat64(cause) < 1 {
		t.Fatalf("no session ended on the topics it may not describe; log:\n%s", buf.String())
	}
	t.Logf("the first session ended after %v", took.Round(time.Millisecond))
	if took > time.Minute {
		t.Errorf("the session ended after %v: the maker waited for leaders it cannot see", took)
	}
	if !strings.Contains(buf.String(), "DESCRIBE") || !strings.Contains(buf.String(), "loop.gen.items") {
		t.Errorf("the log does not name the topic and the operation to grant:\n%s", buf.String())
	}
	if n := src.Acked.Load(); n != 0 {
		t.Errorf("%d transactions acked with their topic never described", n)
	}
}
