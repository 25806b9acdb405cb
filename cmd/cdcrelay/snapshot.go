package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/metrics"
)

func init() {
	register(&command{
		name:    "snapshot",
		summary: "ask the running relay to re-snapshot one table while streaming goes on",
		usage:   "--config F --table schema.table",
		flags: func(fs *flag.FlagSet) func(context.Context, *cliEnv) error {
			path := fs.String("config", "", "path of the YAML config `file` (required)")
			table := fs.String("table", "", "the captured `table` to snapshot again, as schema.table (required)")
			return func(ctx context.Context, env *cliEnv) error {
				cfg, err := loadConfig(*path)
				if err != nil {
					return err
				}
				if *table == "" {
					return &exitError{code: 2, err: fmt.Errorf("--table is required")}
				}
				ref, err := config.ParseTable(*table)
				if err != nil || ref.Name == "*" {
					return &exitError{code: 2, err: fmt.Errorf("--table %q: name one table as schema.table", *table)}
				}
				covered := false
				for _, r := range cfg.Source.TableRefs() {
					covered = covered || r.Matches(ref.Namespace, ref.Name)
				}
				if !covered {
					return &exitError{code: 2, err: fmt.Errorf("--table %s is not in source.tables; add it there first", *table)}
				}
				src, err := openSource(cfg, newLogger(cfg, env.stderr), metrics.Discard())
				if err != nil {
					return err
				}
				defer src.Close()
				if err := src.RequestSnapshot(ctx, *table); err != nil {
					return err
				}
				fmt.Fprintf(env.stdout, "snapshot of %s requested; the running relay takes it in chunks while streaming (watch cdcrelay_snapshot_rows_done{table=%q})\n", *table, ref.String())
				return nil
			}
		},
	})
}
