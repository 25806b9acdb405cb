package devbroker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// reachable reports whether a client with opts can fetch metadata from b.
func reachable(t *testing.T, b *testenv.Broker, opts ...kgo.Opt) error {
	t.Helper()
	cl := b.Client(t, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// roundTrip produces one record with opts and reads it back.
func roundTrip(t *testing.T, b *testenv.Broker, topic string, opts ...kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := b.Client(t, append([]kgo.Opt{kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic)}, opts...)...)
	if err := p.ProduceSync(ctx, kgo.StringRecord("hello")).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v\n%s", topic, err, b.LogTail())
	}
	c := b.Client(t, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	fs := c.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatalf("consume %s: %v", topic, err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "hello" {
		t.Fatalf("consumed %d records from %s, want the one produced", len(recs), topic)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	certs := testenv.NewTLSFiles(t)

	t.Run("server-only", func(t *testing.T) {
		t.Parallel()
		b := testenv.StartDevBroker(t, testenv.BrokerArgs("--auto-create-topics",
			"--tls-cert", certs.CertFile, "--tls-key", certs.KeyFile))
		if err := reachable(t, b); err == nil {
			t.Fatal("a plaintext client reached the TLS listener")
		}
		roundTrip(t, b, "tls", kgo.DialTLSConfig(certs.ClientConfig(false)))
		out := testenv.Kcat(t, "-b", b.Addr, "-C", "-t", "tls", "-e", "-q", "-f", "%s\n",
			"-X", "security.protocol=ssl", "-X", "ssl.ca.location="+certs.CAFile)
		if out != "hello\n" {
			t.Fatalf("kcat over TLS read %q", out)
		}
	})

	t.Run("client-certificates", func(t *testing.T) {
		t.Parallel()
		b := testenv.StartDevBroker(t, testenv.BrokerArgs("--auto-create-topics",
			"--tls-cert", certs.CertFile, "--tls-key", certs.KeyFile, "--tls-client-ca", certs.CAFile))
		if err := reachable(t, b, kgo.DialTLSConfig(certs.ClientConfig(false))); err == nil {
			t.Fatal("a client without a certificate was let in")
		}
		roundTrip(t, b, "mtls", kgo.DialTLSConfig(certs.ClientConfig(true)))
	})
}

func TestSASL(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "dave.pw")
	if err := os.WriteFile(pwFile, []byte("dave-file-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := []string{"alice-env-pw", "bob-env-pw", "carol-env-pw", "dave-file-pw"}
	b := testenv.StartDevBroker(t,
		testenv.BrokerArgs("--auto-create-topics",
			"--sasl-user", "PLAIN:alice",
			"--sasl-user", "scram-sha-256:bob",
			"--sasl-user", "SCRAM-SHA-512:carol",
			"--sasl-user", "SCRAM-SHA-256:dave", "--sasl-password-file", "dave="+pwFile,
		),
		testenv.BrokerEnv(
			"CDCRELAY_DEV_BROKER_PASSWORD_ALICE="+secrets[0],
			"CDCRELAY_DEV_BROKER_PASSWORD_BOB="+secrets[1],
			"CDCRELAY_DEV_BROKER_PASSWORD_CAROL="+secrets[2],
			"CDCRELAY_DEV_BROKER_PASSWORD_DAVE=not-this-one", // the file wins
		),
	)

	plainAuth := func(u, p string) sasl.Mechanism { return plain.Auth{User: u, Pass: p}.AsMechanism() }
	scram256 := func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha256Mechanism() }
	scram512 := func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha512Mechanism() }

	for _, tc := range []struct {
		name string
		mech sasl.Mechanism
		ok   bool
	}{
		{"plain", plainAuth("alice", secrets[0]), true},
		{"scram-256", scram256("bob", secrets[1]), true},
		{"scram-512", scram512("carol", secrets[2]), true},
		{"password-file", scram256("dave", secrets[3]), true},
		{"plain-wrong-password", plainAuth("alice", "nope"), false},
		{"scram-256-wrong-password", scram256("bob", "nope"), false},
		{"scram-512-wrong-password", scram512("carol", "nope"), false},
		{"env-ignored-when-file-given", scram256("dave", "not-this-one"), false},
		{"wrong-mechanism", scram512("bob", secrets[1]), false},
		{"unknown-user", plainAuth("mallory", secrets[0]), false},
		{"no-sasl", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []kgo.Opt
			if tc.mech != nil {
				opts = append(opts, kgo.SASL(tc.mech))
			}
			err := reachable(t, b, opts...)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v\n%s", err, b.LogTail())
			case !tc.ok && err == nil:
				t.Fatal("let in")
			case tc.ok:
				roundTrip(t, b, "sasl-"+tc.name, opts...)
			}
		})
	}

	// The passwords appear nowhere in the broker's log, which lists the
	// users.
	log := b.Log(t)
	for _, s := range append(secrets, "nope", "not-this-one") {
		if strings.Contains(log, s) {
			t.Errorf("the broker log shows the password %q", s)
		}
	}
	if !strings.Contains(log, "PLAIN:alice") {
		t.Errorf("the broker log does not list its users:\n%s", log)
	}
}

// TestSASLUsersFromFlagsOnly checks that a restart with another password
// replaces the stored one.
func TestSASLUsersFromFlagsOnly(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "pw")
	write := func(pw string) {
		if err := os.WriteFile(pwFile, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old-pw")
	b := testenv.StartDevBroker(t, testenv.BrokerArgs("--sasl-user", "SCRAM-SHA-256:erin", "--sasl-password-file", "erin="+pwFile))
	as := func(pw string) kgo.Opt { return kgo.SASL(scram.Auth{User: "erin", Pass: pw}.AsSha256Mechanism()) }
	if err := reachable(t, b, as("old-pw")); err != nil {
		t.Fatal(err)
	}
	b.Stop(t)
	write("new-pw")
	b.Start(t)
	if err := reachable(t, b, as("old-pw")); err == nil {
		t.Error("the old password still works after a restart with a new one")
	}
	if err := reachable(t, b, as("new-pw")); err != nil {
		t.Errorf("the new password: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.DataDir, "sasl.json")); !os.IsNotExist(err) {
		t.Errorf("SASL store in the data dir of a running broker: %v", err)
	}
	b.Stop(t)
	if _, err := os.Stat(filepath.Join(b.DataDir, "sasl.json")); !os.IsNotExist(err) {
		t.Errorf("SASL store left in the data dir after a clean stop: %v", err)
	}
}
