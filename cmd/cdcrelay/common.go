package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/cdcrelay/cdcrelay/config"
)

// loadConfig loads path; a bad config is an exit-2 error listing every
// problem, one per line.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, &exitError{code: 2, err: errors.New("--config is required")}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("invalid config %s:\n%w", path, err)}
	}
	return cfg, nil
}

// newLogger builds the process logger from the log section.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("source_id", cfg.ID)
}
