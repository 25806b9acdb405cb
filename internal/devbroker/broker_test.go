package devbroker

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestStartInMemory(t *testing.T) {
	b, err := Start(Config{Listen: "127.0.0.1:0", AutoCreateTopics: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	host, port, _ := net.SplitHostPort(b.Addr())
	if host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr %s", b.Addr())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newClient(t, b.Addr(), kgo.TransactionalID("mem"), kgo.DefaultProduceTopic("t"), kgo.AllowAutoTopicCreation())
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, kgo.StringRecord("v")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	details, err := kadm.NewClient(p).ListTopics(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details["t"].Partitions); n != 1 {
		t.Errorf("auto-created topic has %d partitions, want the default 1", n)
	}
	b.Close()
	b.Close() // a second Close does nothing
}

func TestAdvertise(t *testing.T) {
	for _, tc := range []struct {
		name, listen, advertise, wantHost string
	}{
		{"loopback", "127.0.0.1:0", "", "127.0.0.1"},
		{"wildcard", "0.0.0.0:0", "", "127.0.0.1"},
		{"empty-host", ":0", "", "127.0.0.1"},
		{"explicit", "127.0.0.1:0", "localhost:PORT", "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Listen: tc.listen}
			if tc.advertise != "" {
				// Advertise the port the broker will get: take a free one.
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
				ln.Close()
				cfg.Listen = "127.0.0.1:" + port
				cfg.Advertise = "localhost:" + port
			}
			b, err := Start(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, port, _ := net.SplitHostPort(b.Addr())
			md, err := kadm.NewClient(newClient(t, "127.0.0.1:"+port)).BrokerMetadata(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(md.Brokers) != 1 {
				t.Fatalf("%d brokers", len(md.Brokers))
			}
			got := net.JoinHostPort(md.Brokers[0].Host, strconv.Itoa(int(md.Brokers[0].Port)))
			if got != b.Addr() || md.Brokers[0].Host != tc.wantHost {
				t.Fatalf("metadata advertises %s, Addr is %s, want host %s", got, b.Addr(), tc.wantHost)
			}
		})
	}
}

// TestRunPersists runs a broker with a data dir, cancels it, and finds the
// data again in a second one.
func TestRunPersists(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Listen: "127.0.0.1:0", DataDir: dir, SyncWrites: true, DefaultPartitions: 2}

	ctx, cancel := context.WithCancel(context.Background())
	addrCh := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, nil, func(a string) { addrCh <- a }) }()
	var addr string
	select {
	case addr = <-addrCh:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}

	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	adm := kadm.NewClient(newClient(t, addr))
	if _, err := adm.CreateTopic(pctx, -1, -1, nil, "kept"); err != nil {
		t.Fatal(err)
	}
	p := newClient(t, addr, kgo.DefaultProduceTopic("kept"))
	if err := p.ProduceSync(pctx, kgo.StringRecord("v1")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}

	b, err := Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := newClient(t, b.Addr(), kgo.ConsumeTopics("kept"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs := c.PollFetches(pctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "v1" {
		t.Fatalf("after the restart: %d records", len(recs))
	}
	details, err := kadm.NewClient(c).ListTopics(pctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details["kept"].Partitions); n != 2 {
		t.Errorf("topic has %d partitions, want 2 (DefaultPartitions)", n)
	}
}

func TestStartErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	if _, err := Start(Config{}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("empty config: %v, want ErrInvalidConfig", err)
	}
	if _, err := Start(Config{Listen: taken.Addr().String()}, nil); err == nil || errors.Is(err, ErrInvalidConfig) {
		t.Errorf("port in use: %v", err)
	}
	if _, err := Start(Config{Listen: "127.0.0.1:0", TLSCertFile: "/nonexistent", TLSKeyFile: "/nonexistent"}, nil); err == nil {
		t.Error("missing TLS files: no error")
	}
}

// TestCompaction checks that compaction is off by default, so that a
// transaction that aborts cannot take the last committed value of a key
// with it, and that CompactInterval turns it on.
func TestCompaction(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		want     string // the committed values of key k, in order
	}{
		{"off", 0, "v1 v2"},
		// kfake's cleaner keeps only the newest value of k, and here the
		// newest is the open transaction's, which then aborts.
		{"on", 20 * time.Millisecond, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Start(Config{Listen: "127.0.0.1:0", CompactInterval: tc.interval}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			compact := map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
			if _, err := kadm.NewClient(newClient(t, b.Addr())).CreateTopic(ctx, 1, 1, compact, "offsets"); err != nil {
				t.Fatal(err)
			}
			p := newClient(t, b.Addr(), kgo.TransactionalID("c"), kgo.DefaultProduceTopic("offsets"))
			write := func(v string, end *kgo.TransactionEndTry) {
				t.Helper()
				if err := p.BeginTransaction(); err != nil {
					t.Fatal(err)
				}
				if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(v)}).FirstErr(); err != nil {
					t.Fatal(err)
				}
				if end != nil {
					if err := p.EndTransaction(ctx, *end); err != nil {
						t.Fatal(err)
					}
				}
			}
			commit, abort := kgo.TryCommit, kgo.TryAbort
			write("v1", &commit)
			write("v2", &commit)
			write("v3", nil) // open while the cleaner runs
			other := newClient(t, b.Addr(), kgo.DefaultProduceTopic("offsets"))
			if err := other.ProduceSync(ctx, &kgo.Record{Key: []byte("other"), Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if err := p.EndTransaction(ctx, abort); err != nil {
				t.Fatal(err)
			}

			c := newClient(t, b.Addr(), kgo.ConsumeTopics("offsets"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			var got []string
			for sawOther := false; !sawOther; {
				fs := c.PollFetches(ctx)
				if err := fs.Err(); err != nil {
					t.Fatal(err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if string(r.Key) == "k" {
						got = append(got, string(r.Value))
					}
					sawOther = sawOther || string(r.Key) == "other"
				})
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Fatalf("committed values of k: %q, want %q", g, tc.want)
			}
		})
	}
}
