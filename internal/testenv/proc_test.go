package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestSweepStaleDirs(t *testing.T) {
	t.Setenv(keepEnv, "")
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(os.TempDir(), dirPrefix+"sweeptest-"+strconv.Itoa(done.Process.Pid)+"-1")
	mine := filepath.Join(os.TempDir(), dirPrefix+"sweeptest-"+strconv.Itoa(os.Getpid())+"-2")
	for _, d := range []string{dead, mine} {
		if err := os.MkdirAll(filepath.Join(d, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	sweepStaleDirs()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the directory of a dead process is still there: %v", err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("the directory of this process was removed: %v", err)
	}
}
