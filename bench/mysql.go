package main

import (
	"context"
	"os/exec"
	"strings"
)

// mysqlWired reports whether `cdcrelay run` has a mysql source built in.
func mysqlWired() bool {
	out, err := exec.Command("go", "list", "-deps", "./cmd/cdcrelay").Output()
	return err == nil && strings.Contains(string(out), "/sources/mysql\n")
}

func (b *bench) mysqlScenario(ctx context.Context) []result {
	if !mysqlWired() {
		return []result{{Scenario: "mysql", Note: "skipped: sources/mysql is not wired into cdcrelay run in this build"}}
	}
	return b.mysqlRun(ctx)
}
