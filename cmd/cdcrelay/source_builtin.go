package main

import (
	"log/slog"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/sources"
	"github.com/cdcrelay/cdcrelay/sources/mysql"
	"github.com/cdcrelay/cdcrelay/sources/postgres"
)

func init() {
	sourceFactories["postgres"] = func(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (sources.Source, error) {
		return postgres.New(cfg, log, m)
	}
	sourceFactories["mysql"] = func(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (sources.Source, error) {
		return mysql.New(cfg, log, m)
	}
}
