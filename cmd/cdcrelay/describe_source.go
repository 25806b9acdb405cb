package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/flinkddl"
	"github.com/cdcrelay/cdcrelay/metrics"
)

// describeSource opens the configured source for schema reads only. The
// returned function closes it.
//
// Interim: it goes through openSource, so it works for every source type
// built into the binary; the command wiring may replace this file.
func describeSource(_ context.Context, cfg *config.Config, log *slog.Logger) (flinkddl.Describer, func(), error) {
	if _, ok := sourceFactories[cfg.Source.Type]; !ok {
		return nil, nil, fmt.Errorf("flink-ddl: source type %q not supported yet", cfg.Source.Type)
	}
	src, err := openSource(cfg, log, metrics.Discard())
	if err != nil {
		return nil, nil, err
	}
	return src, func() { _ = src.Close() }, nil
}
