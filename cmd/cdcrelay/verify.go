package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/verify"
)

func init() {
	register(&command{
		name:    "verify",
		summary: "compare each captured table with the latest state per key in its topic (read_committed); exits 1 on any difference",
		usage:   "--config F [--table schema.table] [--examples N] [--settle D]",
		flags: func(fs *flag.FlagSet) func(context.Context, *cliEnv) error {
			path := fs.String("config", "", "path of the YAML config `file` (required)")
			table := fs.String("table", "", "verify only this captured `table` (schema.table); default: every captured table")
			examples := fs.Int("examples", 5, "print up to `N` examples of each kind of difference")
			settle := fs.Duration("settle", 2*time.Minute, "how long the re-check of differing keys waits for the stored position to pass the table read")
			tmp := fs.String("tmp", "", "`directory` for the sort files of tables too large to compare in memory; default: the system's")
			return func(ctx context.Context, env *cliEnv) error {
				cfg, err := loadConfig(*path)
				if err != nil {
					return err
				}
				var only func(change.TableID) bool
				if *table != "" {
					ref, err := config.ParseTable(*table)
					if err != nil || ref.Name == "*" {
						return &exitError{code: 2, err: fmt.Errorf("--table %q: name one table as schema.table", *table)}
					}
					only = func(id change.TableID) bool { return ref.Matches(id.Namespace, id.Name) }
				}
				err = runVerify(ctx, cfg, env, verify.Config{
					Only: only, Examples: *examples, Settle: *settle, TempDir: *tmp,
				})
				if errors.Is(err, verify.ErrNoTable) {
					return &exitError{code: 2, err: fmt.Errorf("--table %s is not a captured table", *table)}
				}
				return err
			}
		},
	})
}

// runVerify fills in what vc needs from the config and runs verify.
func runVerify(ctx context.Context, cfg *config.Config, env *cliEnv, vc verify.Config) error {
	kopts, err := kafkaconfig.Opts(&cfg.Kafka, nil)
	if err != nil {
		return err
	}
	src, err := openSource(cfg, newLogger(cfg, io.Discard), metrics.Discard())
	if err != nil {
		return err
	}
	defer src.Close()
	rr, err := src.OpenRowReader(ctx)
	if err != nil {
		return err
	}
	defer rr.Close()
	vc.Reader, vc.Kafka = rr, kopts
	vc.OffsetsTopic, vc.SourceID, vc.TopicPrefix = cfg.Kafka.OffsetsTopic, cfg.ID, cfg.Kafka.TopicPrefix
	vc.Upsert = cfg.Format.Value == format.Upsert
	vc.ChunkSize = cfg.Source.SnapshotChunkSize
	vc.Out, vc.Progress = env.stdout, env.stderr
	return verify.Run(ctx, vc)
}
