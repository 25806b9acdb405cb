package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

const (
	checkAdminPassword = "admin-Pw-5521"
	checkRelayPassword = "relay-Pw-8830"
)

// `cdcrelay check` and `cdcrelay run` against Apache Kafka with SASL/SCRAM
// and the StandardAuthorizer, whose transaction.max.timeout.ms is 30s: a
// missing ACL or a bad setting is one FAIL line and exit 1, check creates
// no topic, and run refuses an offsets topic that deletes.
func TestCheckKafka(t *testing.T) {
	if testenv.BrokerKind() != testenv.KindApache {
		t.Skip("ACLs and broker settings need Apache Kafka")
	}
	b := testenv.StartKafka(t,
		testenv.BrokerSASL("admin", checkAdminPassword, "SCRAM-SHA-256"),
		testenv.BrokerSASL("relay", checkRelayPassword, "SCRAM-SHA-256"),
		testenv.KafkaACLs("admin"),
		testenv.KafkaTxnMaxTimeout(30*time.Second))
	adm := kadm.NewClient(b.Client(t, kgo.SASL(scram.Auth{User: "admin", Pass: checkAdminPassword}.AsSha256Mechanism())))

	t.Run("no ACLs", func(t *testing.T) {
		cfg := checkConfig(t, b, "cknone", "")
		before := adminTopics(t, adm)
		out, code := runCheck(t, cfg)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		for _, want := range []string{
			"FAIL  kafka acl transactional-id cdcrelay-cknone: Write and Describe denied; grant them: kafka-acls.sh --bootstrap-server " + b.Addr,
			"--allow-principal User:relay --operation Write --operation Describe --transactional-id cdcrelay-cknone\n",
			"FAIL  kafka acl topic cknone_offsets: Create, Describe, Read, Write denied",
			"--operation Create --operation Describe --operation DescribeConfigs --operation Read --operation Write --topic cknone_offsets\n",
			"FAIL  kafka acl topics cknone.*: 1 of 1 topic(s) (cknone.gen.items) lack",
			"--operation Create --operation Describe --operation Write --resource-pattern-type prefixed --topic cknone.\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, checkRelayPassword) {
			t.Fatalf("the password is printed")
		}
		if after := adminTopics(t, adm); !slices.Equal(before, after) {
			t.Fatalf("check created topics: before %v, after %v", before, after)
		}
	})

	t.Run("full ACLs", func(t *testing.T) {
		cfg := checkConfig(t, b, "ckfull", "")
		grantRelay(t, adm, "ckfull")
		before := adminTopics(t, adm)
		out, code := runCheck(t, cfg)
		if code != 0 {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 8 {
			t.Fatalf("want at least 8 Kafka lines:\n%s", out)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, "ok    kafka ") {
				t.Errorf("not an ok Kafka line: %s", l)
			}
		}
		if after := adminTopics(t, adm); !slices.Equal(before, after) {
			t.Fatalf("check created topics: before %v, after %v", before, after)
		}

		// The ACLs that pass check are enough to run.
		env := "CDCRELAY_KAFKA_SASL_PASSWORD=" + checkRelayPassword
		p := startRelay(t, cfg, env)
		eventually(t, time.Minute, "5 transactions committed", func() bool {
			cmd := exec.Command(testenv.Binary(t), "offsets", "show", "--json", "--config", cfg)
			cmd.Env = append(cmd.Environ(), env)
			out, err := cmd.Output()
			return err == nil && strings.Contains(string(out), `"state":{"txn":5}`)
		})
		if code := p.stop(t); code != 0 {
			t.Fatalf("relay exit %d", code)
		}
		out, code = runCheck(t, cfg)
		if code != 0 {
			t.Fatalf("check after run: exit %d:\n%s", code, out)
		}
	})

	t.Run("offsets topic with cleanup.policy=delete", func(t *testing.T) {
		cfg := checkConfig(t, b, "ckdel", "")
		grantRelay(t, adm, "ckdel")
		ctx := context.Background()
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, "ckdel_offsets"); err != nil {
			t.Fatal(err)
		}
		before := adminTopics(t, adm)
		out, code := runCheck(t, cfg)
		const want = "FAIL  kafka offsets topic ckdel_offsets cleanup.policy: is delete, needs exactly compact"
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, want 1 and %q:\n%s", code, want, out)
		}

		p := startRelay(t, cfg, "CDCRELAY_KAFKA_SASL_PASSWORD="+checkRelayPassword)
		st := p.wait(t, time.Minute)
		out = p.out.String()
		var refusal []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "refusing to start") {
				refusal = append(refusal, l)
			}
		}
		if st.Success() || len(refusal) != 1 || !strings.Contains(refusal[0], `topic "ckdel_offsets" (kafka.offsets_topic) has cleanup.policy=delete, needs exactly compact`) {
			t.Fatalf("want one refusal line naming cleanup.policy, got %v:\n%s", st, out)
		}
		t.Logf("run: %s", refusal[0])
		if after := adminTopics(t, adm); !slices.Equal(before, after) {
			t.Fatalf("run created topics: before %v, after %v", before, after)
		}
		// No InitProducerId either: the coordinator has never heard of the
		// transactional id.
		d, err := adm.DescribeTransactions(ctx, "cdcrelay-ckdel")
		if err == nil {
			err = d["cdcrelay-ckdel"].Err
		}
		if !errors.Is(err, kerr.TransactionalIDNotFound) {
			t.Fatalf("describe the transactional id: %v, want TRANSACTIONAL_ID_NOT_FOUND", err)
		}
	})

	t.Run("transaction timeout above the broker's maximum", func(t *testing.T) {
		cfg := checkConfig(t, b, "ckfull", "  transaction_timeout: 60s\n")
		out, code := runCheck(t, cfg)
		const want = "FAIL  kafka transaction.max.timeout.ms: 30000 (30s) is below kafka.transaction_timeout (1m0s)"
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, want 1 and %q:\n%s", code, want, out)
		}
	})

	t.Run("replication factor 3 on one broker", func(t *testing.T) {
		cfg := checkConfig(t, b, "ckfull", "  topic_replication_factor: 3\n")
		out, code := runCheck(t, cfg)
		const want = "FAIL  kafka replication factor: kafka.topic_replication_factor 3 exceeds the 1 broker(s)"
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, want 1 and %q:\n%s", code, want, out)
		}
	})
}

// checkConfig writes a testgen config for source id, with the relay's SASL
// user, offsets topic <id>_offsets and extra lines in the kafka section.
func checkConfig(t *testing.T, b *testenv.Broker, id, extra string) string {
	return writeConfig(t, fmt.Sprintf(`id: %s
source:
  type: testgen
  dsn: testgen://gen@local/gen?txns=5&per_txn=%d&keys=7
  tables: [gen.items]
kafka:
  brokers: [%s]
  offsets_topic: %s_offsets
  transaction_timeout: 20s
%s  sasl:
    mechanism: SCRAM-SHA-256
    username: relay
metrics:
  listen: "off"
`, id, perTxn, b.Addr, id, extra))
}

// runCheck runs `cdcrelay check` and returns its stdout and exit code.
func runCheck(t *testing.T, cfg string) (string, int) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), "check", "--config", cfg)
	cmd.Env = append(cmd.Environ(), "CDCRELAY_KAFKA_SASL_PASSWORD="+checkRelayPassword)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("check: %v", err)
	}
	if strings.Contains(stderr.String(), checkRelayPassword) {
		t.Fatalf("the password is printed on stderr")
	}
	t.Logf("check (exit %d):\n%s%s", code, out, stderr.String())
	return string(out), code
}

// grantRelay gives the relay's user the ACLs the README lists for source
// id, and DescribeConfigs on the cluster, which only check uses.
func grantRelay(t *testing.T, adm *kadm.Client, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range []*kadm.ACLBuilder{
		kadm.NewACLs().TransactionalIDs("cdcrelay-"+id).Operations(kadm.OpWrite, kadm.OpDescribe),
		kadm.NewACLs().Topics(id+"_offsets").Operations(kadm.OpCreate, kadm.OpDescribe, kadm.OpDescribeConfigs, kadm.OpRead, kadm.OpWrite),
		kadm.NewACLs().Topics(id+".").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpCreate, kadm.OpDescribe, kadm.OpWrite),
		kadm.NewACLs().Clusters().Operations(kadm.OpDescribeConfigs),
	} {
		res, err := adm.CreateACLs(ctx, b.Allow("User:relay").AllowHosts())
		for _, r := range res {
			err = errors.Join(err, r.Err)
		}
		if err != nil {
			t.Fatalf("create ACLs: %v", err)
		}
	}
}

func adminTopics(t *testing.T, adm *kadm.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	return td.Names()
}

// With a PostgreSQL source, check prints the database's lines and then
// Kafka's; a schema.* entry checks the topics of the tables the database
// has. Nothing is created in either.
func TestCheckPostgresAndKafka(t *testing.T) {
	b := testenv.StartBroker(t)
	pg := pgShop(t)
	cfg := pgRelayConfig(t, pg, b, "pgcheck", "public.*")
	adm := kadm.NewClient(b.Client(t))
	before := adminTopics(t, adm)

	cmd := exec.Command(testenv.Binary(t), "check", "--config", cfg)
	cmd.Env = append(cmd.Environ(), "CDCRELAY_SOURCE_PASSWORD=relay-pw")
	out, err := cmd.CombinedOutput()
	t.Logf("check:\n%s", out)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, want := range []string{
		"ok    wal_level",
		"ok    kafka brokers",
		"ok    kafka acl topics pgcheck.*: Create, Describe, Write allowed on 1 topic(s) (pgcheck.public.items)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Index(string(out), "wal_level") > strings.Index(string(out), "kafka brokers") {
		t.Errorf("the database's lines do not come first")
	}
	if after := adminTopics(t, adm); !slices.Equal(before, after) {
		t.Fatalf("check created topics: before %v, after %v", before, after)
	}
	if n := pg.Exec(t, "shop", "SELECT 1 FROM pg_replication_slots").RowsAffected(); n != 0 {
		t.Fatalf("check created %d replication slot(s)", n)
	}
	if n := pg.Exec(t, "shop", "SELECT 1 FROM pg_publication").RowsAffected(); n != 0 {
		t.Fatalf("check created %d publication(s)", n)
	}
}
