package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestGoodFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) == 0 {
		t.Fatal("no good fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			env := map[string]string{"CDCRELAY_KAFKA_SASL_PASSWORD": "pw"}
			if _, err := load(f, envOf(env)); err != nil {
				t.Fatalf("unexpected errors:\n%v", err)
			}
		})
	}
}

// Each bad fixture has a .errors file with the exact expected lines.
func TestBadFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) == 0 {
		t.Fatal("no bad fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".errors")
			if err != nil {
				t.Fatal(err)
			}
			_, err = load(f, noEnv)
			if err == nil {
				t.Fatal("loaded without error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors", err)
			}
			if got := err.Error() + "\n"; got != string(want) {
				t.Fatalf("errors differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

func TestThreeMistakesGiveThreeLines(t *testing.T) {
	_, err := load("testdata/three-mistakes.bad.yaml", noEnv)
	if n := len(err.(Errors)); n != 3 {
		t.Fatalf("got %d errors, want 3:\n%v", n, err)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := load("testdata/minimal.good.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"source.snapshot", cfg.Source.Snapshot, "initial"},
		{"source.slot", cfg.Source.Slot, "cdcrelay_shop"},
		{"source.publication", cfg.Source.Publication, "cdcrelay_shop"},
		{"source.failover_slot", cfg.Source.FailoverSlot, false},
		{"source.heartbeat_interval", cfg.Source.HeartbeatInterval, 10 * time.Second},
		{"source.unchanged_toast", cfg.Source.UnchangedToast, "refuse"},
		{"source.snapshot_chunk_size", cfg.Source.SnapshotChunkSize, 10000},
		{"source.snapshot_watermark", cfg.Source.SnapshotWatermark, "auto"},
		{"kafka.topic_prefix", cfg.Kafka.TopicPrefix, "shop"},
		{"kafka.offsets_topic", cfg.Kafka.OffsetsTopic, "cdcrelay_offsets"},
		{"kafka.topic_partitions", cfg.Kafka.TopicPartitions, int32(3)},
		{"kafka.topic_replication_factor", cfg.Kafka.TopicReplicationFactor, int16(1)},
		{"kafka.topic_cleanup_policy", cfg.Kafka.TopicCleanupPolicy, "compact"},
		{"kafka.transaction_timeout", cfg.Kafka.TransactionTimeout, time.Minute},
		{"kafka.batch_max_events", cfg.Kafka.BatchMaxEvents, 2000},
		{"kafka.max_record_bytes", cfg.Kafka.MaxRecordBytes, int32(1000012)},
		{"kafka.client_metrics", cfg.Kafka.ClientMetrics, false},
		{"kafka.compression", cfg.Kafka.Compression, "snappy"},
		{"format.value", cfg.Format.Value, "debezium-json"},
		{"format.tombstones", *cfg.Format.Tombstones, true},
		{"format.truncate", cfg.Format.Truncate, "skip"},
		{"metrics.listen", cfg.Metrics.Listen, "127.0.0.1:9187"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"CDCRELAY_KAFKA_BROKERS":             "a:9092, b:9092",
		"CDCRELAY_KAFKA_TOPIC_PARTITIONS":    "12",
		"CDCRELAY_FORMAT_TOMBSTONES":         "false",
		"CDCRELAY_SOURCE_HEARTBEAT_INTERVAL": "3s",
		"CDCRELAY_SOURCE_TLS_SERVER_NAME":    "db.internal",
		"CDCRELAY_SOURCE_PASSWORD":           "s3cret",
	}
	cfg, err := load("testdata/minimal.good.yaml", envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != "a:9092,b:9092" {
		t.Errorf("brokers = %s", got)
	}
	if cfg.Kafka.TopicPartitions != 12 || *cfg.Format.Tombstones || cfg.Source.HeartbeatInterval != 3*time.Second ||
		cfg.Source.TLS.ServerName != "db.internal" || cfg.Source.Password.Reveal() != "s3cret" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	_, err = load("testdata/minimal.good.yaml", envOf(map[string]string{"CDCRELAY_KAFKA_TOPIC_PARTITIONS": "x"}))
	if err == nil || !strings.Contains(err.Error(), "kafka.topic_partitions (from CDCRELAY_KAFKA_TOPIC_PARTITIONS)") {
		t.Errorf("bad env value error = %v", err)
	}
}

func TestEnvOnlyConfig(t *testing.T) {
	env := map[string]string{
		"CDCRELAY_ID": "envonly", "CDCRELAY_SOURCE_TYPE": "mysql",
		"CDCRELAY_SOURCE_DSN": "mysql://cdc@db:3306/shop", "CDCRELAY_SOURCE_TABLES": "shop.orders",
		"CDCRELAY_KAFKA_BROKERS": "k:9092",
	}
	if _, err := load("", envOf(env)); err != nil {
		t.Fatal(err)
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("from-file\n"), 0o600)
	cfgPath := filepath.Join(dir, "c.yaml")
	data, _ := os.ReadFile("testdata/minimal.good.yaml")
	os.WriteFile(cfgPath, append(data, []byte("  password_file: "+pw+"\n")...), 0o600)
	// password_file lands under kafka (the last section); move it to source.
	os.WriteFile(cfgPath, []byte(strings.Replace(string(data), "  tables:", "  password_file: "+pw+"\n  tables:", 1)), 0o600)
	cfg, err := load(cfgPath, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source.Password.Reveal() != "from-file" {
		t.Fatalf("password = %q", cfg.Source.Password.Reveal())
	}
	_, err = load(cfgPath, envOf(map[string]string{"CDCRELAY_SOURCE_PASSWORD": "x"}))
	if err == nil || !strings.Contains(err.Error(), "source.password_file: both CDCRELAY_SOURCE_PASSWORD and the file are set") {
		t.Fatalf("both set: %v", err)
	}
}

// A secret never shows in %v, %+v, %#v, slog output or errors.
func TestSecretsNeverPrint(t *testing.T) {
	const pw = "hunter2-very-secret"
	const salt = "salty-column-hash-secret"
	cfg, err := load("testdata/minimal.good.yaml", envOf(map[string]string{"CDCRELAY_SOURCE_PASSWORD": pw, "CDCRELAY_SOURCE_COLUMN_HASH_SALT": salt}))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if cfg.Source.ColumnHashSalt.Reveal() != salt {
		t.Fatal("the salt was not read from the environment")
	}
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("cfg", "config", cfg, "pw", cfg.Source.Password)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("cfg", "config", cfg, "pw", cfg.Source.Password)
	outs := []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), logs.String()}
	for _, o := range outs {
		if strings.Contains(o, pw) || strings.Contains(o, salt) {
			t.Fatalf("secret printed: %s", o)
		}
	}
	_, err = load("testdata/password-in-dsn.bad.yaml", noEnv)
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error shows the DSN password: %v", err)
	}
}

func TestParseTable(t *testing.T) {
	cases := []struct {
		in, ns, name string
	}{
		{"public.orders", "public", "orders"},
		{"shop.*", "shop", "*"},
		{`public."Odd.Name"`, "public", "Odd.Name"},
		{`"my schema"."say ""hi"""`, "my schema", `say "hi"`},
		{"Public.Orders", "Public", "Orders"},
	}
	for _, c := range cases {
		r, err := ParseTable(c.in)
		if err != nil || r.Namespace != c.ns || r.Name != c.name {
			t.Errorf("ParseTable(%q) = %+v, %v; want %s / %s", c.in, r, err, c.ns, c.name)
		}
	}
	for _, bad := range []string{"orders", "a.b.c", `"x`, ".t", "s."} {
		if _, err := ParseTable(bad); err == nil {
			t.Errorf("ParseTable(%q) succeeded", bad)
		}
	}
}

// source.key_columns entries hold commas, so the environment separates
// them with ";", and each table gets the columns of the first entry that
// covers it.
func TestKeyColumnsFromEnv(t *testing.T) {
	cfg, err := load("testdata/minimal.good.yaml", envOf(map[string]string{
		"CDCRELAY_SOURCE_KEY_COLUMNS": `public.orders:customer_id, id; "odd:schema".*:k`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns, name string
		want     string
	}{
		{"public", "orders", "customer_id,id"},
		{"odd:schema", "x", "k"},
		{"public", "lines", ""},
	} {
		if got := strings.Join(cfg.Source.KeyColumnsFor(c.ns, c.name), ","); got != c.want {
			t.Errorf("KeyColumnsFor(%s, %s) = %q, want %q", c.ns, c.name, got, c.want)
		}
	}
}

func TestVerifyRefusal(t *testing.T) {
	s := Source{
		KeyColumns:     []string{"public.orders:customer_id,id"},
		ColumnTruncate: []string{"public.notes.body:10"},
	}
	for _, c := range []struct{ ns, name, want string }{
		{"public", "orders", "source.key_columns"},
		{"public", "notes", "source.column_*"},
		{"public", "items", ""},
	} {
		got := s.VerifyRefusal(c.ns, c.name)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("VerifyRefusal(%s.%s) = %q, want one naming %q", c.ns, c.name, got, c.want)
		}
	}
}
