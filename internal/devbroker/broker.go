package devbroker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// transactionMaxTimeout is generous so that a relay streaming one large
// source transaction is not cut off by the broker.
const transactionMaxTimeout = "900000" // 15 minutes, in ms

// saslStoreFile is where kfake keeps SASL users in its data directory.
const saslStoreFile = "sasl.json"

// ErrInvalidConfig wraps every error Start returns for a Config that fails
// validation.
var ErrInvalidConfig = errors.New("devbroker: invalid config")

// Broker is a running development broker. Its methods are safe for
// concurrent use.
type Broker struct {
	cluster   *kfake.Cluster
	decisions *decisionLog // nil without a DataDir
	addr      string
	dataDir   string
	log       *slog.Logger
	klog      *kfakeLogger
	closeOnce sync.Once
}

// Start validates cfg, reloads the state in cfg.DataDir if there is any, and
// starts serving. log may be nil to discard the logs.
func Start(cfg Config, log *slog.Logger) (*Broker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w:\n%w", ErrInvalidConfig, err)
	}
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.DataDir != "" {
		if err := prepareDataDir(cfg.DataDir, log); err != nil {
			return nil, err
		}
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("devbroker: listen on %s: %w", cfg.Listen, err)
	}
	adv := advertisedAddr(cfg, ln.Addr())
	port := ln.Addr().(*net.TCPAddr).Port

	klog := &kfakeLogger{log: log}
	gate := make(chan struct{})
	parts := cfg.DefaultPartitions
	if parts == 0 {
		parts = 1
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		// kfake always asks for 127.0.0.1:<port>; hand it the listener
		// bound above, reporting the advertised address as its own.
		kfake.ListenFn(func(string, string) (net.Listener, error) {
			return advertisingListener{Listener: ln, addr: advAddr(adv), gate: gate}, nil
		}),
		kfake.WithLogger(klog),
		kfake.ClusterID("cdcrelay-dev"),
		kfake.DefaultNumPartitions(parts),
		kfake.BrokerConfigs(map[string]string{
			"transaction.max.timeout.ms": transactionMaxTimeout,
			"log.cleaner.backoff.ms":     strconv.FormatInt(compactMillis(cfg.CompactInterval), 10),
		}),
	}
	if cfg.AutoCreateTopics {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	if tlsCfg != nil {
		opts = append(opts, kfake.TLS(tlsCfg))
	}
	if len(cfg.SASL) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range cfg.SASL {
			opts = append(opts, kfake.Superuser(canonicalMechanism(u.Mechanism), u.Name, u.Password))
		}
	}

	var decisions *decisionLog
	if cfg.DataDir != "" {
		if decisions, err = openDecisionLog(cfg.DataDir, cfg.SyncWrites); err != nil {
			ln.Close()
			return nil, err
		}
		decisions.afterDecide = testAfterDecide
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		ln.Close()
		if decisions != nil {
			decisions.Close()
		}
		return nil, fmt.Errorf("devbroker: start: %w", err)
	}
	if decisions != nil {
		decisions.install(cluster, log)
	}
	close(gate) // serve only once the decision log is hooked in
	b := &Broker{cluster: cluster, decisions: decisions, addr: adv, dataDir: cfg.DataDir, log: log, klog: klog}
	log.Info("dev-broker started",
		"listen", ln.Addr().String(),
		"advertise", adv,
		"data_dir", cfg.DataDir,
		"sync_writes", cfg.SyncWrites,
		"tls", tlsCfg != nil,
		"client_certs", cfg.TLSClientCAFile != "",
		"sasl_users", userNames(cfg.SASL),
		"compact_interval", cfg.CompactInterval,
	)
	return b, nil
}

// Addr returns the address clients should dial: the advertised address.
func (b *Broker) Addr() string { return b.addr }

// Close stops accepting connections and, with a DataDir, saves the state a
// clean shutdown keeps (see the package doc). Calls after the first do
// nothing.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		b.cluster.Close()
		if b.decisions != nil {
			if err := b.decisions.Close(); err != nil {
				b.log.Warn("dev-broker: close the transaction decision log", "err", err)
			}
		}
		if b.dataDir != "" {
			if err := removeSASLStore(b.dataDir); err != nil {
				b.log.Warn("dev-broker: remove stored SASL users", "err", err)
			}
		}
		b.log.Info("dev-broker stopped", "addr", b.addr)
	})
}

// Run starts a broker, calls ready with its address, serves until ctx is
// done, and then closes it. It returns an error if the broker could not start
// or if saving its state at shutdown failed.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	b, err := Start(cfg, log)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(b.Addr())
	}
	<-ctx.Done()
	before := b.klog.errors.Load()
	b.Close()
	if n := b.klog.errors.Load() - before; n > 0 {
		return fmt.Errorf("devbroker: %d error(s) while saving state at shutdown; see the log", n)
	}
	return nil
}

// neverMillis is about 285 years: kfake's cleaner never runs.
const neverMillis = 9_000_000_000_000

func compactMillis(d time.Duration) int64 {
	if d <= 0 {
		return neverMillis
	}
	return d.Milliseconds()
}

func userNames(us []User) []string {
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = u.String()
	}
	return names
}

// prepareDataDir creates the data directory, repairs what a crash left
// half written, completes the transactions a crash left without a marker
// (committing the one the decision log says was committing, aborting the
// others), and drops the stored SASL users.
func prepareDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("devbroker: data dir: %w", err)
	}
	if err := removeSASLStore(dir); err != nil {
		return fmt.Errorf("devbroker: data dir: drop stored SASL users: %w", err)
	}
	parts, err := filepath.Glob(filepath.Join(dir, "partitions", "*"))
	if err != nil {
		return fmt.Errorf("devbroker: data dir: %w", err)
	}
	for _, p := range parts {
		if err := repairIndexes(p, log); err != nil {
			return fmt.Errorf("devbroker: data dir: repair %s after a crash: %w", p, err)
		}
	}
	committed, err := completeDecision(dir, log)
	if err != nil {
		return fmt.Errorf("devbroker: data dir: complete a commit interrupted by a crash: %w", err)
	}
	if _, err := repairCrash(dir, committed, log); err != nil {
		return fmt.Errorf("devbroker: data dir: complete transactions aborted by a crash: %w", err)
	}
	// The repair ran a cluster without users, which stored an empty set.
	if err := removeSASLStore(dir); err != nil {
		return fmt.Errorf("devbroker: data dir: drop stored SASL users: %w", err)
	}
	return nil
}

func removeSASLStore(dir string) error {
	err := os.Remove(filepath.Join(dir, saslStoreFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("devbroker: tls: load %s and %s: %w", cfg.TLSCertFile, cfg.TLSKeyFile, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("devbroker: tls client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("devbroker: tls client CA: no PEM certificate in %s", cfg.TLSClientCAFile)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// advertisedAddr is cfg.Advertise, or else the listen address with an
// unspecified host made loopback and the bound port filled in.
func advertisedAddr(cfg Config, bound net.Addr) string {
	if cfg.Advertise != "" {
		return cfg.Advertise
	}
	host, _, _ := net.SplitHostPort(cfg.Listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	_, port, _ := net.SplitHostPort(bound.String())
	return net.JoinHostPort(host, port)
}

// advertisingListener reports the advertised address as its own: kfake puts
// its listener's address into metadata responses. It accepts no connection
// before gate is closed.
type advertisingListener struct {
	net.Listener
	addr net.Addr
	gate <-chan struct{}
}

func (l advertisingListener) Accept() (net.Conn, error) {
	<-l.gate
	return l.Listener.Accept()
}

func (l advertisingListener) Addr() net.Addr { return l.addr }

type advAddr string

func (advAddr) Network() string  { return "tcp" }
func (a advAddr) String() string { return string(a) }

// kfakeLogger forwards kfake's logs to slog and counts its errors.
type kfakeLogger struct {
	log    *slog.Logger
	errors atomic.Int64
}

func (l *kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lv slog.Level
	switch level {
	case kfake.LogLevelError:
		l.errors.Add(1)
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	case kfake.LogLevelInfo:
		lv = slog.LevelInfo
	default:
		lv = slog.LevelDebug
	}
	ctx := context.Background()
	if !l.log.Enabled(ctx, lv) {
		return
	}
	l.log.Log(ctx, lv, "kfake: "+fmt.Sprintf(format, args...))
}
