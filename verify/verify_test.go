package verify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/sources"
	"github.com/cdcrelay/cdcrelay/sources/mysql"
	"github.com/cdcrelay/cdcrelay/sources/postgres"
	"github.com/cdcrelay/cdcrelay/verify"
)

// verifyEnv is a database and topics written the way the relay writes
// them: op=r records built from the tables' rows by the source's reader
// and the relay's encoder, in one Kafka transaction.
type verifyEnv struct {
	exec  func(sql string)
	b     *testenv.Broker
	cfg   *config.Config
	txnCl *kgo.Client
}

func writeConfig(t testing.TB, kind, dsn, tables, broker string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cdcrelay.yaml")
	yaml := fmt.Sprintf(`id: shop
source:
  type: %s
  dsn: %s
  tables: [%s]
  snapshot_chunk_size: 40
kafka:
  brokers: [%s]
  topic_prefix: shop
metrics:
  listen: "off"
`, kind, dsn, tables, broker)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// openReader opens the source's row reader for cfg.
func openReader(t testing.TB, cfg *config.Config) sources.RowReader {
	t.Helper()
	ctx := context.Background()
	var rr sources.RowReader
	var err error
	switch cfg.Source.Type {
	case "postgres":
		var s *postgres.Source
		if s, err = postgres.New(cfg, nil, nil); err == nil {
			t.Cleanup(func() { s.Close() })
			rr, err = s.OpenRowReader(ctx)
		}
	case "mysql":
		var s *mysql.Source
		if s, err = mysql.New(cfg, nil, nil); err == nil {
			t.Cleanup(func() { s.Close() })
			rr, err = s.OpenRowReader(ctx)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rr.Close() })
	return rr
}

func startVerifyEnv(t *testing.T, kind string) *verifyEnv {
	t.Helper()
	b := testenv.StartBroker(t)
	e := &verifyEnv{b: b}
	var dsn, ns, env string
	switch kind {
	case "postgres":
		pg := testenv.StartPostgres(t)
		pg.CreateDB(t, "shop")
		e.exec = func(q string) { pg.Exec(t, "shop", q) }
		e.exec(`CREATE TABLE public.orders (id bigint PRIMARY KEY, name text, paid boolean, doc jsonb, amount numeric(10,2))`)
		e.exec(`INSERT INTO public.orders SELECT g, 'order ' || g, g % 2 = 0, jsonb_build_object('n', g, 'tag', 'x'), g * 1.5 FROM generate_series(1, 250) g`)
		e.exec(`CREATE TABLE public."Odd Name" (k text PRIMARY KEY, v int)`)
		e.exec(`INSERT INTO public."Odd Name" VALUES ('a', 1), ('B', 2), ('é', 3)`)
		dsn, ns = pg.DSN("postgres", "shop"), "public"
	case "mysql":
		my := testenv.StartMariaDB(t)
		e.exec = func(q string) { my.Exec(t, q) }
		e.exec("CREATE DATABASE shop")
		e.exec("CREATE USER 'cdc'@'%' IDENTIFIED BY 'pw'")
		e.exec("GRANT SELECT ON shop.* TO 'cdc'@'%'")
		e.exec(`CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, name TEXT, paid TINYINT, amount DECIMAL(10,2))`)
		e.exec(`INSERT INTO shop.orders SELECT seq, CONCAT('order ', seq), seq % 2, seq * 1.5 FROM shop.seq_1_to_250`)
		e.exec("CREATE TABLE shop.`Odd Name` (k VARCHAR(10) PRIMARY KEY, v INT)")
		e.exec("INSERT INTO shop.`Odd Name` VALUES ('a', 1), ('B', 2), ('é', 3)")
		dsn, ns, env = my.DSN("cdc", "shop"), "shop", "pw"
	}
	t.Setenv("CDCRELAY_SOURCE_PASSWORD", env)
	e.cfg = writeConfig(t, kind, dsn, ns+".*", b.Addr)
	e.txnCl = b.Client(t, kgo.TransactionalID("verify-test"), kgo.DefaultProduceTopic("unused"))
	e.snapshotToTopics(t)
	return e
}

// snapshotToTopics writes every row of the captured tables into their
// topics, as op=r records.
func (e *verifyEnv) snapshotToTopics(t *testing.T) {
	t.Helper()
	rr := openReader(t, e.cfg)
	enc := format.NewEncoder(format.Options{Value: format.DebeziumJSON, Tombstones: true, TopicPrefix: "shop"})
	ctx := context.Background()
	tables, err := rr.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(e.b.Client(t))
	var recs []*kgo.Record
	for _, ts := range tables {
		if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, format.Topic("shop", ts.ID)); err != nil {
			t.Fatal(err)
		}
		rows, err := rr.ReadChunk(ctx, ts.ID, nil, 100000)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			recs = enc.Append(recs, row.Event)
		}
	}
	e.produce(t, recs...)
}

// produce writes records in one committed transaction.
func (e *verifyEnv) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.txnCl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := e.txnCl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := e.txnCl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

// run verifies with a fresh reader and returns the report and progress
// output.
func (e *verifyEnv) run(t *testing.T, vc verify.Config) (string, error) {
	t.Helper()
	kopts, err := kafkaconfig.Opts(&e.cfg.Kafka, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out, progress bytes.Buffer
	vc.Reader, vc.Kafka = openReader(t, e.cfg), kopts
	vc.OffsetsTopic, vc.SourceID, vc.TopicPrefix = e.cfg.Kafka.OffsetsTopic, e.cfg.ID, e.cfg.Kafka.TopicPrefix
	vc.ChunkSize = e.cfg.Source.SnapshotChunkSize
	vc.Out, vc.Progress = &out, &progress
	if vc.Settle == 0 {
		vc.Settle = time.Second
	}
	err = verify.Run(context.Background(), vc)
	return out.String() + progress.String(), err
}

// verify passes on a faithful topic, and catches a deleted key, a wrong
// value in the topic and a row changed behind the relay's back, naming the
// column that differs; a jsonb document that differs only in whitespace
// and member order is no difference.
func TestVerifyPostgres(t *testing.T) { testVerify(t, "postgres", "public") }
func TestVerifyMariaDB(t *testing.T)  { testVerify(t, "mysql", "shop") }

func testVerify(t *testing.T, kind, ns string) {
	if testing.Short() {
		t.Skip("integration test")
	}
	e := startVerifyEnv(t, kind)
	out, err := e.run(t, verify.Config{})
	if err != nil || !strings.Contains(out, "2 table(s) match") || !strings.Contains(out, "250 rows in the database, 250 keys") {
		t.Fatalf("faithful topic: %v\n%s", err, out)
	}
	if !strings.Contains(out, "verify: "+ns+".orders: 250 rows read from the database") {
		t.Errorf("no progress line:\n%s", out)
	}

	topic := "shop." + ns + ".orders"
	forged := `{"before":null,"after":{"id":8,"name":"forged","paid":true,"doc":"{\"n\":8,\"tag\":\"x\"}","amount":12.00},"op":"u"}`
	reordered := `{"before":null,"after":{"id":10,"name":"order 10","paid":true,"doc":"{ \"tag\" : \"x\",\n \"n\" : 10 }","amount":15.00},"op":"u"}`
	if kind == "mysql" {
		forged = `{"before":null,"after":{"id":8,"name":"forged","paid":0,"amount":12.00},"op":"u"}`
		reordered = `{"before":null,"after":{"amount":15.00,"paid":0,"name":"order 10","id":10},"op":"u"}`
	}
	// Corrupt the topic: a tombstone for key 7, a wrong name for key 8.
	// Key 10 is rewritten with its members, and its jsonb document's, in
	// another order and spacing: the same row.
	e.produce(t,
		&kgo.Record{Topic: topic, Key: []byte(`{"id":7}`)},
		&kgo.Record{Topic: topic, Key: []byte(`{"id":8}`), Value: []byte(forged)},
		&kgo.Record{Topic: topic, Key: []byte(`{"id":10}`), Value: []byte(reordered)},
	)
	// Change a row without the relay: the topic still has the old one.
	e.exec(`UPDATE ` + ns + `.orders SET name = 'changed' WHERE id = 9`)
	// A row the topic never saw, and a topic key the table does not have.
	e.exec(`INSERT INTO ` + ns + `.orders (id, name) VALUES (1000, 'new')`)
	e.produce(t, &kgo.Record{Topic: topic, Key: []byte(`{"id":2000}`), Value: []byte(`{"before":null,"after":{"id":2000},"op":"c"}`)})

	only := func(id change.TableID) bool { return id.Name == "orders" }
	out, err = e.run(t, verify.Config{Only: only, Examples: 3})
	if !errors.Is(err, verify.ErrDifferent) {
		t.Fatalf("verify passed a corrupted topic (%v):\n%s", err, out)
	}
	for _, want := range []string{
		"missing 2, extra 1, differing 2",
		`missing in Kafka: {"id":7}`,
		`missing in Kafka: {"id":1000}`,
		`extra in Kafka:   {"id":2000}`,
		`differing:        {"id":8}: name` + "\n",
		`name: database "order 8"`,
		`Kafka    "forged"`,
		`differing:        {"id":9}: name` + "\n",
		`name: database "changed"`,
		`Kafka    "order 9"`,
		"stored position at start:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `{"id":10}`) || strings.Contains(out, "not compared") {
		t.Errorf("false difference:\n%s", out)
	}
	t.Logf("verify output:\n%s", out)

	// The same through sort files: a tiny memory bound spills every few
	// entries, and the report is the same.
	out2, err := e.run(t, verify.Config{Only: only, Examples: 3, SortMemory: 2048, TempDir: t.TempDir()})
	if !errors.Is(err, verify.ErrDifferent) || !strings.Contains(out2, "missing 2, extra 1, differing 2") {
		t.Errorf("with sort files: %v\n%s", err, out2)
	}
}
