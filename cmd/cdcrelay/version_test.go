package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	info := func(mainVersion string, settings ...string) func() (*debug.BuildInfo, bool) {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/cdcrelay/cdcrelay", Version: mainVersion}}
		for i := 0; i < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return func() (*debug.BuildInfo, bool) { return bi, true }
	}
	const rev = "65fb8f8c0ffee0123456789abcdef0123456789a"
	cases := []struct {
		name    string
		stamped string
		read    func() (*debug.BuildInfo, bool)
		want    string
	}{
		{"stamped wins", "v1.4.0", info("v1.3.0", "vcs.revision", rev), "v1.4.0"},
		{"module version", "", info("v1.3.0"), "v1.3.0"},
		{"pseudo-version from go build", "", info("v0.0.0-20261205154300-65fb8f8c0ffe+dirty", "vcs.revision", rev), "v0.0.0-20261205154300-65fb8f8c0ffe+dirty"},
		{"clean revision", "", info("(devel)", "vcs.revision", rev, "vcs.modified", "false"), "65fb8f8c0ffe"},
		{"dirty revision", "", info("(devel)", "vcs.revision", rev, "vcs.modified", "true"), "65fb8f8c0ffe-dirty"},
		{"short revision", "", info("", "vcs.revision", "abc123"), "abc123"},
		{"no vcs", "", info("(devel)", "GOOS", "linux"), "dev"},
		{"no build info", "", func() (*debug.BuildInfo, bool) { return nil, false }, "dev"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := buildVersion(tc.stamped, tc.read); got != tc.want {
				t.Errorf("buildVersion = %q, want %q", got, tc.want)
			}
		})
	}
}

// --version prints the version the records carry.
func TestVersionFlag(t *testing.T) {
	var out, errOut strings.Builder
	if code := run(t.Context(), []string{"--version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := "cdcrelay " + version + "\n"; out.String() != want {
		t.Fatalf("--version printed %q, want %q", out.String(), want)
	}
	if version == "" {
		t.Fatal("version is empty")
	}
}
