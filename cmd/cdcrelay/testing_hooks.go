//go:build cdcrelay_testing

package main

// This file is compiled only with -tags cdcrelay_testing. It adds the
// generator source type "testgen" and crash points driven by the
// environment, for the fault-injection tests; release builds have neither.

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/gensource"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/sources"
)

func init() {
	config.AllowSourceType("testgen")
	sourceFactories["testgen"] = func(cfg *config.Config, _ *slog.Logger, _ *metrics.Metrics) (sources.Source, error) {
		p, err := gensource.ParseParams(cfg.Source.DSN)
		if err != nil {
			return nil, err
		}
		return gensource.New(p), nil
	}
	testHooks = crashHooks
}

// crashHooks reads CDCRELAY_TEST_CRASH=<point>:<n>, point being
// after-produce or after-commit: the process kills itself with SIGKILL at
// the n-th passage of that point. With point stop-after-produce it stops
// itself with SIGSTOP instead, its transaction flushed and its commit not
// yet sent, so that a test can break the broker before it sends SIGCONT.
func crashHooks(log *slog.Logger) *relay.Hooks {
	spec := os.Getenv("CDCRELAY_TEST_CRASH")
	if spec == "" {
		return nil
	}
	point, nStr, _ := strings.Cut(spec, ":")
	n, _ := strconv.Atoi(nStr)
	var count atomic.Int64
	if point == "stop-after-produce" {
		return &relay.Hooks{AfterProduce: func() {
			if count.Add(1) == int64(n) {
				log.Warn("test stop point reached; stopping the process", "point", point, "n", n)
				_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			}
		}}
	}
	die := func() {
		if count.Add(1) == int64(n) {
			log.Warn("test crash point reached; killing the process", "point", point, "n", n)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	h := &relay.Hooks{}
	switch point {
	case "after-produce":
		h.AfterProduce = die
	case "after-commit":
		h.AfterCommit = die
	}
	return h
}
