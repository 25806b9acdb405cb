package devbroker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Config{Listen: "127.0.0.1:0"}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error; none means valid
	}{
		{"minimal", func(*Config) {}, nil},
		{"everything", func(c *Config) {
			c.Advertise, c.DataDir, c.SyncWrites, c.AutoCreateTopics, c.DefaultPartitions = "kafka:9092", "/tmp/x", true, true, 3
			c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = "c", "k", "ca"
			c.SASL = []User{{"plain", "a", "p"}, {"SCRAM-SHA-256", "a", "p"}, {"SCRAM-SHA-512", "b", "p"}}
		}, nil},
		{"no-listen", func(c *Config) { c.Listen = "" }, []string{"listen: required"}},
		{"listen-no-port", func(c *Config) { c.Listen = "127.0.0.1" }, []string{"listen:"}},
		{"listen-bad-port", func(c *Config) { c.Listen = "127.0.0.1:70000" }, []string{"listen:", "0..65535"}},
		{"advertise-port-0", func(c *Config) { c.Advertise = "h:0" }, []string{"advertise:"}},
		{"advertise-no-host", func(c *Config) { c.Advertise = ":9092" }, []string{"advertise:"}},
		{"sync-without-dir", func(c *Config) { c.SyncWrites = true }, []string{"sync_writes: needs data_dir"}},
		{"negative-compact-interval", func(c *Config) { c.CompactInterval = -time.Second }, []string{"compact_interval"}},
		{"tiny-compact-interval", func(c *Config) { c.CompactInterval = time.Microsecond }, []string{"compact_interval"}},
		{"negative-partitions", func(c *Config) { c.DefaultPartitions = -1 }, []string{"default_partitions"}},
		{"cert-without-key", func(c *Config) { c.TLSCertFile = "c" }, []string{"tls: cert file and key file"}},
		{"ca-without-cert", func(c *Config) { c.TLSClientCAFile = "ca" }, []string{"tls_client_ca_file"}},
		{"bad-mechanism", func(c *Config) { c.SASL = []User{{"GSSAPI", "a", "p"}} }, []string{"sasl[0]: mechanism"}},
		{"no-name", func(c *Config) { c.SASL = []User{{"PLAIN", "", "p"}} }, []string{"sasl[0]: name"}},
		{"no-password", func(c *Config) { c.SASL = []User{{"PLAIN", "a", ""}} }, []string{"sasl[0] (PLAIN:a): password"}},
		{"duplicate", func(c *Config) { c.SASL = []User{{"PLAIN", "a", "p"}, {"plain", "a", "q"}} }, []string{"sasl[1]", "listed twice"}},
		{"all-at-once", func(c *Config) { c.Listen = ""; c.SyncWrites = true; c.TLSKeyFile = "k" },
			[]string{"listen: required", "sync_writes", "tls: cert"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), `"p"`) || strings.Contains(err.Error(), `"q"`) {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}

func TestParseUser(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    User
		wantErr string
	}{
		{"PLAIN:alice", User{Mechanism: MechPlain, Name: "alice"}, ""},
		{"scram-sha-256:bob", User{Mechanism: MechScramSHA256, Name: "bob"}, ""},
		{"SCRAM-SHA-512:a:b", User{Mechanism: MechScramSHA512, Name: "a:b"}, ""},
		{"alice", User{}, "want MECHANISM:NAME"},
		{"PLAIN:", User{}, "want MECHANISM:NAME"},
		{"OAUTHBEARER:x", User{}, "is not one of"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseUser(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %#v, %v; want %#v", got, err, tc.want)
			}
		})
	}
}

// TestUserHidesPassword renders a User every way code is likely to and
// checks that the password never shows.
func TestUserHidesPassword(t *testing.T) {
	const secret = "hunter2-secret"
	u := User{Mechanism: MechScramSHA256, Name: "alice", Password: secret}
	cfg := Config{Listen: "127.0.0.1:0", SASL: []User{u}}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, u), fmt.Sprintf(verb, []User{u}), fmt.Sprintf(verb, cfg))
	}
	outputs = append(outputs, u.String(), u.GoString())
	for _, b := range [][]byte{must(json.Marshal(u)), must(json.Marshal(cfg))} {
		outputs = append(outputs, string(b))
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("user", "user", u, "users", []User{u}, "config", cfg)
	}
	outputs = append(outputs, buf.String())

	for _, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("password shown: %s", out)
		}
	}
	if !strings.Contains(buf.String(), "alice") {
		t.Errorf("the logs lost the user name: %s", buf.String())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
