package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/sources"
)

// reportSource is a source whose preflight finds rep.
type reportSource struct {
	sources.Source
	rep sources.Report
}

func (s reportSource) Check(context.Context) (sources.Report, error) { return s.rep, nil }

// With thousands of tables a finding per table would bury the log: run
// logs the first preflightShown findings and a count, and refuses with the
// first preflightShown blocking ones and a count.
func TestPreflightBoundsItsLines(t *testing.T) {
	var rep sources.Report
	for i := range 50 {
		rep = append(rep, sources.Finding{Level: sources.Warn, Subject: fmt.Sprintf("table t%d", i), Detail: "REPLICA IDENTITY is not FULL"})
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if err := preflight(context.Background(), &config.Config{}, reportSource{rep: rep}, log); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(buf.String(), "msg=preflight "); got != preflightShown {
		t.Errorf("%d findings logged, want %d:\n%s", got, preflightShown, buf.String())
	}
	if !strings.Contains(buf.String(), "findings=50") {
		t.Errorf("no count of the findings in the log:\n%s", buf.String())
	}

	for i := range 30 {
		rep = append(rep, sources.Finding{Level: sources.Block, Subject: fmt.Sprintf("table b%d", i), Detail: "no primary key"})
	}
	err := preflight(context.Background(), &config.Config{}, reportSource{rep: rep}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("no error for blocking findings")
	}
	msg := err.Error()
	if got := strings.Count(msg, "no primary key"); got != preflightShown {
		t.Errorf("%d blocking findings in the error, want %d", got, preflightShown)
	}
	if !strings.Contains(msg, "table b0: no primary key") || !strings.Contains(msg, "... and 10 more") {
		t.Errorf("error = %q", msg)
	}
}
