package deploycheck

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot is the directory holding go.mod, found from this file's path.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the source file")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above " + filepath.Dir(file))
		}
		dir = parent
	}
}

// path joins rel (slash-separated) to the repository root.
func path(t testing.TB, rel string) string {
	return filepath.Join(repoRoot(t), filepath.FromSlash(rel))
}

// read returns the content of rel, relative to the repository root.
func read(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exists tells whether rel exists under the repository root.
func exists(t testing.TB, rel string) bool {
	_, err := os.Stat(path(t, rel))
	return err == nil
}

// inCI tells whether the tests run in CI, where a missing tool is a failure
// rather than a skip.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "0" && v != "false"
}

// errorf is fmt.Errorf, named for checks that build their own messages.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
