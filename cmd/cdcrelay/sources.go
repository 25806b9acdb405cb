package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/sources"
)

// dbSource is what the commands need of a database source.
type dbSource interface {
	relay.Source
	// Check runs the read-only preflight.
	Check(ctx context.Context) (sources.Report, error)
	// Setup creates what the source needs (publication, slot, watermark
	// table) when missing.
	Setup(ctx context.Context) error
	// Describe returns the captured tables' schemas.
	Describe(ctx context.Context) ([]change.TableSchema, error)
	// RequestSnapshot asks a running relay to re-snapshot one table.
	RequestSnapshot(ctx context.Context, table string) error
	// OpenRowReader opens the reader verify compares tables through.
	OpenRowReader(ctx context.Context) (sources.RowReader, error)
	Close() error
}

// sourceFactories holds the built-in source types; each source's file adds
// itself in an init function.
var sourceFactories = map[string]func(*config.Config, *slog.Logger, *metrics.Metrics) (dbSource, error){}

func openSource(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (dbSource, error) {
	f, ok := sourceFactories[cfg.Source.Type]
	if !ok {
		return nil, fmt.Errorf("source.type %q is not built into this binary", cfg.Source.Type)
	}
	return f(cfg, log, m)
}
