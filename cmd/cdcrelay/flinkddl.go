package main

import (
	"context"
	"flag"

	"github.com/cdcrelay/cdcrelay/columns"
	"github.com/cdcrelay/cdcrelay/flinkddl"
)

func init() {
	register(&command{
		name:    "flink-ddl",
		summary: "print a Flink SQL CREATE TABLE for each captured table, reading its topic with read_committed",
		usage:   "--config F [--format debezium-json|upsert] [--group-id G]",
		flags: func(fs *flag.FlagSet) func(context.Context, *cliEnv) error {
			path := fs.String("config", "", "path of the YAML config `file` (required)")
			format := fs.String("format", "", "debezium-json (kafka connector) or upsert (upsert-kafka connector); default: the config's format.value")
			group := fs.String("group-id", "", "consumer `group` of debezium-json tables; default: flink-<topic prefix>")
			return func(ctx context.Context, env *cliEnv) error {
				cfg, err := loadConfig(*path)
				if err != nil {
					return err
				}
				f := *format
				if f == "" {
					f = cfg.Format.Value
				}
				ff, err := flinkddl.ParseFormat(f)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				d, done, err := describeSource(ctx, cfg, newLogger(cfg, env.stderr))
				if err != nil {
					return err
				}
				defer done()
				tables, err := d.Describe(ctx)
				if err != nil {
					return err
				}
				// The columns as they land in Kafka (source.column_*).
				rules := columns.New(&cfg.Source)
				for i := range tables {
					if tables[i], err = rules.Schema(tables[i]); err != nil {
						return err
					}
				}
				prefix := cfg.Kafka.TopicPrefix
				if prefix == "" {
					prefix = cfg.ID
				}
				return flinkddl.Write(env.stdout, tables, flinkddl.Options{
					Brokers:     cfg.Kafka.Brokers,
					TopicPrefix: prefix,
					Format:      ff,
					GroupID:     *group,
				})
			}
		},
	})
}
