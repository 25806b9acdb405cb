package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/cdcrelay/cdcrelay/metrics"
)

func init() {
	register(&command{
		name:    "check",
		summary: "run the read-only preflight against the source and print one line per check; exits 1 on a blocking problem",
		usage:   "--config F",
		flags: func(fs *flag.FlagSet) func(context.Context, *cliEnv) error {
			path := fs.String("config", "", "path of the YAML config `file` (required)")
			timeout := fs.Duration("timeout", time.Minute, "give up on a database that does not answer after this long")
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
				rep.Print(env.stdout)
				if n := len(rep.Blocking()); n > 0 {
					return errors.New(fmt.Sprint(n, " blocking problem(s); run refuses to start until they are fixed"))
				}
				return nil
			}
		},
	})
}
