package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

const brokerPassword = "s3cret-Broker-pw-4711"

// The relay talks to a broker that requires TLS and SASL, with the settings
// from the config file and the password from the environment; the password
// appears nowhere in its output.
func TestKafkaTLSAndSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			tf := testenv.NewTLSFiles(t)
			b := testenv.StartBroker(t, testenv.BrokerTLS(tf.CertFile, tf.KeyFile),
				testenv.BrokerSASL("relay", brokerPassword, mech))
			id := "sec_" + strings.ToLower(strings.ReplaceAll(mech, "-", "_"))
			cfg := securedConfig(t, b, id, mech, tf.CAFile, "localhost")
			env := "CDCRELAY_KAFKA_SASL_PASSWORD=" + brokerPassword
			p := startRelay(t, cfg, env, "CDCRELAY_LOG_LEVEL=debug")
			eventually(t, time.Minute, "20 transactions committed", func() bool {
				cmd := exec.Command(testenv.Binary(t), "offsets", "show", "--json", "--config", cfg)
				cmd.Env = append(cmd.Environ(), env)
				out, err := cmd.Output()
				return err == nil && strings.Contains(string(out), `"state":{"txn":20}`)
			})
			if code := p.stop(t); code != 0 {
				t.Fatalf("exit %d", code)
			}
			if strings.Contains(p.out.String(), brokerPassword) {
				t.Fatalf("the SASL password appears in the relay's output")
			}

			// An independent client with the same credentials reads it all.
			cl := b.Client(t, kgo.DialTLSConfig(tf.ClientConfig(false)), kgo.SASL(saslFor(mech)),
				kgo.ConsumeTopics(id+".gen.items"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			n := 0
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for n < 20*perTxn && ctx.Err() == nil {
				cl.PollFetches(ctx).EachRecord(func(*kgo.Record) { n++ })
			}
			if n != 20*perTxn {
				t.Fatalf("read %d records, want %d", n, 20*perTxn)
			}
		})
	}
}

func saslFor(mech string) sasl.Mechanism {
	switch mech {
	case "PLAIN":
		return plain.Auth{User: "relay", Pass: brokerPassword}.AsMechanism()
	case "SCRAM-SHA-256":
		return scram.Auth{User: "relay", Pass: brokerPassword}.AsSha256Mechanism()
	}
	return scram.Auth{User: "relay", Pass: brokerPassword}.AsSha512Mechanism()
}

// An untrusted CA stops the relay at once with one clear line. A wrong
// password never gets it streaming; the dev broker (kfake) drops the
// connection instead of answering SASL_AUTHENTICATION_FAILED as Kafka does,
// so the relay keeps retrying with backoff here, while against Kafka the
// answer is fatal (see kafkaclient's TestConnectFatal). The password never
// shows.
func TestKafkaAuthFailures(t *testing.T) {
	tf := testenv.NewTLSFiles(t)
	other := testenv.NewTLSFiles(t)
	b := testenv.StartBroker(t, testenv.BrokerTLS(tf.CertFile, tf.KeyFile),
		testenv.BrokerSASL("relay", brokerPassword, "SCRAM-SHA-256"))

	t.Run("wrong CA", func(t *testing.T) {
		cfg := securedConfig(t, b, "authfail", "SCRAM-SHA-256", other.CAFile, "localhost")
		p := startRelay(t, cfg, "CDCRELAY_KAFKA_SASL_PASSWORD="+brokerPassword)
		st := p.wait(t, time.Minute)
		out := p.out.String()
		const want = "not signed by a trusted CA; check kafka.tls.ca_file"
		if st.Success() || !strings.Contains(out, want) {
			t.Fatalf("want a failure saying %q, got %v:\n%s", want, st, out)
		}
		if strings.Contains(out, brokerPassword) {
			t.Fatalf("password printed:\n%s", out)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		wrong := "not-the-" + brokerPassword
		cfg := securedConfig(t, b, "authfail", "SCRAM-SHA-256", tf.CAFile, "localhost")
		p := startRelay(t, cfg, "CDCRELAY_KAFKA_SASL_PASSWORD="+wrong)
		time.Sleep(5 * time.Second)
		p.kill()
		out := p.out.String()
		if strings.Contains(out, "created topic") || strings.Contains(out, "starting fresh") {
			t.Fatalf("the relay got in with a wrong password:\n%s", out)
		}
		if strings.Contains(out, wrong) || strings.Contains(out, brokerPassword) {
			t.Fatalf("password printed:\n%s", out)
		}
	})
}

func securedConfig(t *testing.T, b *testenv.Broker, id, mech, ca, serverName string) string {
	return writeConfig(t, fmt.Sprintf(`id: %s
source:
  type: testgen
  dsn: testgen://gen@local/gen?txns=20&per_txn=%d&keys=7
  tables: [gen.items]
kafka:
  brokers: [%s]
  tls:
    enabled: true
    ca_file: %s
    server_name: %s
  sasl:
    mechanism: %s
    username: relay
metrics:
  listen: "off"
`, id, perTxn, b.Addr, ca, serverName, mech))
}
