package main

import (
	"fmt"
	"log/slog"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/sources"
)

// sourceFactories holds the built-in source types; each source's file adds
// itself in an init function.
var sourceFactories = map[string]func(*config.Config, *slog.Logger, *metrics.Metrics) (sources.Source, error){}

func openSource(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (sources.Source, error) {
	f, ok := sourceFactories[cfg.Source.Type]
	if !ok {
		return nil, fmt.Errorf("source.type %q is not built into this binary", cfg.Source.Type)
	}
	return f(cfg, log, m)
}
