package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/sources"
)

func init() {
	register(&command{
		name:    "check",
		summary: "run the read-only preflight against the source and Kafka and print one line per check; exits 1 on a blocking problem",
		usage:   "--config F",
		flags: func(fs *flag.FlagSet) func(context.Context, *cliEnv) error {
			path := fs.String("config", "", "path of the YAML config `file` (required)")
			timeout := fs.Duration("timeout", time.Minute, "give up on a database or broker that does not answer after this long")
			return func(ctx context.Context, env *cliEnv) error {
				ctx, cancel := context.WithTimeout(ctx, *timeout)
				defer cancel()
				cfg, err := loadConfig(*path)
				if err != nil {
					return err
				}
				log := newLogger(cfg, env.stderr)
				src, err := openSource(cfg, log, metrics.Discard())
				if err != nil {
					return err
				}
				defer src.Close()
				rep, err := checkSource(ctx, cfg, src)
				if err != nil {
					return err
				}
				if cfg.Kafka.Embedded.Enabled {
					rep = append(rep, sources.Finding{Level: sources.OK, Subject: "kafka",
						Detail: "kafka.embedded is on: the development broker starts with run, so there is nothing to check yet"})
				} else {
					rep = append(rep, kafkaconfig.Check(ctx, &cfg.Kafka, kafkaTarget(ctx, cfg, src), log)...)
				}
				rep.Print(env.stdout)
				if n := len(rep.Blocking()); n > 0 {
					return errors.New(fmt.Sprint(n, " blocking problem(s); run refuses to start until they are fixed"))
				}
				return nil
			}
		},
	})
}

// kafkaTarget names what the relay will use in Kafka. The table topics
// come from source.tables; a schema.* entry adds the topics of the tables
// the database has for it, when it answers.
func kafkaTarget(ctx context.Context, cfg *config.Config, src sources.Source) kafkaconfig.Target {
	t := kafkaconfig.Target{
		TransactionalID:    relay.TransactionalID(cfg.ID),
		OffsetsTopic:       cfg.Kafka.OffsetsTopic,
		TopicPrefix:        cfg.Kafka.TopicPrefix,
		Partitions:         cfg.Kafka.TopicPartitions,
		Replication:        cfg.Kafka.TopicReplicationFactor,
		CleanupPolicy:      cfg.Kafka.TopicCleanupPolicy,
		TransactionTimeout: cfg.Kafka.TransactionTimeout,
	}
	add := func(id change.TableID) {
		if topic := format.Topic(cfg.Kafka.TopicPrefix, id); !slices.Contains(t.Topics, topic) {
			t.Topics = append(t.Topics, topic)
		}
	}
	wildcard := false
	for _, r := range cfg.Source.TableRefs() {
		if r.Name == "*" {
			wildcard = true
			continue
		}
		add(change.TableID{Namespace: r.Namespace, Name: r.Name})
	}
	if wildcard {
		if schemas, err := src.Describe(ctx); err == nil {
			for _, s := range schemas {
				add(s.ID)
			}
		}
	}
	return t
}
