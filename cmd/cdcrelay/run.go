package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/cdcrelay/cdcrelay/columns"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/offsets"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/sources"
)

func init() {
	register(&command{
		name:    "run",
		summary: "stream the source's changes into Kafka until stopped (SIGTERM commits or aborts the open transaction and exits 0)",
		usage:   "--config F",
		flags: func(fs *flag.FlagSet) func(context.Context, *cliEnv) error {
			path := fs.String("config", "", "path of the YAML config `file` (required)")
			return func(ctx context.Context, env *cliEnv) error {
				cfg, err := loadConfig(*path)
				if err != nil {
					return err
				}
				return runRelay(ctx, cfg, newLogger(cfg, env.stderr))
			}
		},
	})
}

// testHooks is set by a build with the cdcrelay_testing tag, to inject
// crashes; nil in release builds.
var testHooks func(log *slog.Logger) *relay.Hooks

func runRelay(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	m.LimitTables(cfg.Metrics.TableLimit)
	health := &metrics.Health{}

	// The metrics port is taken first: a clash (a second relay on this host
	// with the default metrics.listen) then stops the relay before it has
	// started a broker, touched the database or created a topic.
	var metricsLn net.Listener
	if cfg.Metrics.Listen != "off" {
		ln, err := metrics.Listen(cfg.Metrics.Listen)
		if err != nil {
			return err
		}
		defer ln.Close() // Serve closes it too; this covers an early return
		metricsLn = ln
	}

	g, ctx := errgroup.WithContext(ctx)
	if cfg.Kafka.Embedded.Enabled {
		b, err := startEmbeddedBroker(&cfg.Kafka, log.With("component", "embedded-broker"))
		if err != nil {
			return err
		}
		defer b.Close()
	}
	if metricsLn != nil {
		g.Go(func() error { return metrics.Serve(ctx, metricsLn, reg, health, log) })
	}

	src, err := openSource(cfg, log.With("component", "source"), m)
	if err != nil {
		return err
	}
	defer src.Close()
	// SIGTERM while starting up is a clean stop too: nothing was streamed.
	stoppedEarly := func(err error) error {
		if ctx.Err() != nil {
			log.Info("stopped before streaming")
			return nil
		}
		return err
	}
	if err := preflight(ctx, cfg, src, log); err != nil {
		return stoppedEarly(err)
	}
	kopts, err := kafkaconfig.Opts(&cfg.Kafka, log)
	if err != nil {
		return err
	}
	if err := checkOffsetsTopic(ctx, kopts, cfg.Kafka.OffsetsTopic); err != nil {
		return stoppedEarly(err)
	}
	// Setup is told whether a position is stored: a source that keeps
	// server-side state (a replication slot) must not recreate it then, as
	// a missing slot means lost changes, which Run reports instead of
	// papering over.
	stored, err := loadStored(ctx, cfg, kopts, log)
	if err != nil {
		return stoppedEarly(err)
	}
	if err := src.Setup(ctx, stored != nil); err != nil {
		return stoppedEarly(err)
	}

	rcfg := relayConfig(cfg, kopts)
	if testHooks != nil {
		rcfg.Hooks = testHooks(log)
	}
	log.Info("relay starting", "source", cfg.Source.Type, "tables", strings.Join(cfg.Source.Tables, ","),
		"brokers", strings.Join(cfg.Kafka.Brokers, ","), "transactional_id", relay.TransactionalID(cfg.ID))
	r := relay.New(rcfg, src, log.With("component", "relay"), m, health)
	g.Go(func() error {
		err := r.Run(ctx)
		if err != nil {
			health.SetFailed(err.Error())
		}
		// Returning stops the metrics server too.
		if err == nil {
			return errStopped
		}
		return err
	})
	err = g.Wait()
	if errors.Is(err, errStopped) {
		log.Info("relay stopped")
		return nil
	}
	if errors.Is(err, relay.ErrFenced) {
		return fmt.Errorf("fenced: another cdcrelay with id %q started (transactional.id %s); this one stops: %w",
			cfg.ID, relay.TransactionalID(cfg.ID), err)
	}
	return err
}

var errStopped = errors.New("stopped")

// relayConfig is the relay loop's configuration, from the config file and
// the Kafka client options built from it.
func relayConfig(cfg *config.Config, kopts []kgo.Opt) relay.Config {
	rc := relay.Config{
		ID:                 cfg.ID,
		Kafka:              kopts,
		OffsetsTopic:       cfg.Kafka.OffsetsTopic,
		TopicPartitions:    cfg.Kafka.TopicPartitions,
		TopicReplication:   cfg.Kafka.TopicReplicationFactor,
		TopicCleanupPolicy: cfg.Kafka.TopicCleanupPolicy,
		TransactionTimeout: cfg.Kafka.TransactionTimeout,
		BatchMaxEvents:     cfg.Kafka.BatchMaxEvents,
		BatchLinger:        cfg.Kafka.BatchLinger,
		MaxRecordBytes:     cfg.Kafka.MaxRecordBytes,
		Format: format.Options{
			Value:       cfg.Format.Value,
			Tombstones:  *cfg.Format.Tombstones,
			Headers:     *cfg.Format.Headers,
			TopicPrefix: cfg.Kafka.TopicPrefix,
			Version:     version,
		},
		Version: version,
	}
	// A nil *columns.Rules would make a non-nil relay.ColumnRules.
	if rules := columns.New(&cfg.Source); rules != nil {
		rc.Columns = rules
	}
	return rc
}

// loadStored reads the stored position. Brokers that cannot be reached yet
// (Kafka still starting, a network fault) are waited for with backoff, as
// the relay's own loop does; bad credentials, certificates or permissions
// stop it at once.
func loadStored(ctx context.Context, cfg *config.Config, kopts []kgo.Opt, log *slog.Logger) (*offsets.Record, error) {
	backoff := 500 * time.Millisecond
	for {
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		stored, err := offsets.Load(lctx, kopts, cfg.Kafka.OffsetsTopic, cfg.ID)
		cancel()
		if err == nil {
			return stored, nil
		}
		if fatal := kafkaclient.ConnectFatal(err); fatal != nil {
			err = fatal
		}
		err = fmt.Errorf("read the stored position from %s: %w", cfg.Kafka.OffsetsTopic, err)
		if ctx.Err() != nil || kafkaclient.Permanent(err) {
			return nil, err
		}
		log.Warn("kafka: cannot read the stored position yet; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// checkOffsetsTopic refuses an existing offsets topic with the wrong layout
// before anything is created, in the database or in Kafka. Any other answer
// (a broker not up yet, a missing ACL) is left to the relay, which retries
// or reports it.
func checkOffsetsTopic(ctx context.Context, kopts []kgo.Opt, topic string) error {
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := offsets.CheckTopic(cctx, cl, topic); errors.Is(err, offsets.ErrTopicLayout) {
		return fmt.Errorf("refusing to start: %w", err)
	}
	return nil
}

// preflight runs the source's checks and refuses to start on a blocking one.
// checkSource is the source's preflight followed by the checks of the
// column rules against the captured tables.
func checkSource(ctx context.Context, cfg *config.Config, src sources.Source) (sources.Report, error) {
	rep, err := src.Check(ctx)
	if err != nil {
		return nil, err
	}
	rules := columns.New(&cfg.Source)
	if rules == nil {
		return rep, nil
	}
	tables, err := src.Describe(ctx)
	if err != nil {
		return nil, err
	}
	return append(rep, rules.Check(tables)...), nil
}

func preflight(ctx context.Context, cfg *config.Config, src sources.Source, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rep, err := checkSource(cctx, cfg, src)
	if err != nil {
		return err
	}
	warned := 0
	for _, f := range rep {
		if f.Level == 0 {
			continue
		}
		if warned++; warned <= preflightShown {
			log.Warn("preflight", "level", f.Level.String(), "subject", f.Subject, "detail", f.Detail)
		}
	}
	if warned > preflightShown {
		log.Warn("preflight: more findings not shown; cdcrelay check --config F lists every one", "shown", preflightShown, "findings", warned)
	}
	if bad := rep.Blocking(); len(bad) > 0 {
		var lines []string
		for _, f := range bad[:min(len(bad), preflightShown)] {
			lines = append(lines, f.Subject+": "+f.Detail)
		}
		if len(bad) > preflightShown {
			lines = append(lines, fmt.Sprintf("... and %d more", len(bad)-preflightShown))
		}
		return fmt.Errorf("refusing to start; fix these first (cdcrelay check --config F lists every check):\n%s", strings.Join(lines, "\n"))
	}
	return nil
}

// preflightShown bounds the preflight findings that run logs: with
// thousands of tables, one finding per table would bury the log.
const preflightShown = 20
