package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The container image has no shell and no curl, so its HEALTHCHECK runs this
// subcommand against the relay's own metrics listener.
func init() {
	register(&command{
		name:    "healthcheck",
		summary: "probe a health endpoint; exit 0 on HTTP 200 within the timeout, 1 otherwise (the container image's HEALTHCHECK)",
		usage:   "[--url U] [--timeout D]",
		flags: func(fs *flag.FlagSet) func(context.Context, *cliEnv) error {
			url := fs.String("url", "http://127.0.0.1:9187/healthz", "the `URL` to GET")
			timeout := fs.Duration("timeout", 3*time.Second, "give up after this `duration`")
			return func(ctx context.Context, _ *cliEnv) error {
				if err := probe(ctx, *url, *timeout); err != nil {
					return &exitError{code: 1, err: err}
				}
				return nil
			}
		},
	})
}

// probe GETs url and succeeds only on HTTP 200 within timeout. It uses no
// proxy and follows no redirect: the target is the relay in the same
// container or pod.
func probe(ctx context.Context, url string, timeout time.Duration) error {
	if timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %q", url, resp.Status, body)
	}
	return nil
}
