package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

// validateCompose loads file the way docker compose does: schema
// validation, interpolation (with no .env and no variables set, so every
// default is exercised), extension and merge resolution, and the checks of
// the compose model, with the given profiles enabled.
func validateCompose(ctx context.Context, file string, profiles []string) (string, error) {
	opts, err := cli.NewProjectOptions(
		[]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithName("deploycheck"),
		cli.WithProfiles(profiles),
		cli.WithResolvedPaths(true),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return "", fmt.Errorf("compose: %w", err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return "", fmt.Errorf("compose: %s: %w", file, err)
	}
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Sprintf("compose file loads with profiles %v: services %s", profiles, strings.Join(names, ", ")), nil
}
