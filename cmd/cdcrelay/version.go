package main

import "runtime/debug"

// version is what this build says it is: in `cdcrelay --version`, in the
// source.version of every record and in the offsets record. A release
// stamps it at build time with -ldflags "-X main.version=v1.2.3"; init
// fills it from the build info otherwise (see buildVersion).
var version string

func init() { version = buildVersion(version, debug.ReadBuildInfo) }

// buildVersion derives the version from, in this order:
//
//   - the release version stamped in with -ldflags;
//   - the main module's version in the build info: the module version of
//     `go install module@v1.2.3`, or since Go 1.24 the version go build
//     takes from the VCS tag or commit (a pseudo-version, "+dirty" when the
//     work tree had uncommitted changes);
//   - the VCS revision in the build info (first 12 hex digits), "-dirty"
//     appended when vcs.modified is true;
//   - "dev", when the build carries none of these (-buildvcs=false outside
//     a module version).
func buildVersion(stamped string, read func() (*debug.BuildInfo, bool)) string {
	if stamped != "" {
		return stamped
	}
	bi, ok := read()
	if !ok || bi == nil {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
