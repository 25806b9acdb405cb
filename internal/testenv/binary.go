package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// binPrefix starts the names of the directories Binary builds into; the
// test process's pid follows, so stale ones can be found and removed.
const binPrefix = "cdcrelay-testbin-"

// Binary builds ./cmd/cdcrelay and ./cmd/cdcrelay-devbroker once per test
// process and returns the path of the cdcrelay executable; the dev broker
// lies beside it (DevBrokerBinary), where kafka.embedded looks for it. The
// build runs in the module that contains the current directory; a failed
// build fails every test that asks, with the compiler's output.
func Binary(t testing.TB) string {
	t.Helper()
	return must(BinaryPath())(t)
}

// BinaryPath is Binary for a program: it returns the build's error.
func BinaryPath() (string, error) {
	build.once.Do(func() { build.path, build.err = buildBinary() })
	if build.err != nil {
		return "", fmt.Errorf("build cdcrelay: %w", build.err)
	}
	return build.path, nil
}

// DevBrokerBinary returns the path of the cdcrelay-devbroker executable
// that Binary builds.
func DevBrokerBinary(t testing.TB) string {
	t.Helper()
	return must(devBrokerPath())(t)
}

func devBrokerPath() (string, error) {
	bin, err := BinaryPath()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(bin), "cdcrelay-devbroker"), nil
}

func buildBinary() (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("the current directory is not inside the cdcrelay module")
	}
	removeStaleBinDirs()
	dir, err := os.MkdirTemp("", binPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	// The cdcrelay_testing tag adds the generator source and the crash
	// points that the fault-injection tests drive. With -o naming a
	// directory, go build writes each command there under its own name.
	cmd := exec.Command(goTool, "build", "-tags", "cdcrelay_testing", "-o", dir+string(filepath.Separator), "./cmd/cdcrelay", "./cmd/cdcrelay-devbroker")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build ./cmd/cdcrelay ./cmd/cdcrelay-devbroker: %v\n%s", err, out)
	}
	return filepath.Join(dir, "cdcrelay"), nil
}

// removeStaleBinDirs removes the binaries of test processes that are gone:
// one test process cannot know when the last test using its binary ends.
func removeStaleBinDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), binPrefix+"*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), binPrefix)
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(m)
		}
	}
}

// aptPackages maps server binaries to the Debian package that provides them.
var aptPackages = map[string]string{
	"postgres":           "postgresql-15",
	"initdb":             "postgresql-15",
	"mariadbd":           "mariadb-server",
	"mariadb-install-db": "mariadb-server",
	"kcat":               "kcat",
	"java":               "openjdk-17-jre-headless",
	"mvn":                "maven",
}

// Require returns the path of an executable: name as given if it contains a
// slash, or else looked up in PATH. If it is missing, the test fails when the
// environment variable CI is set, and is skipped otherwise, in both cases
// with the apt-get command that installs it.
func Require(t testing.TB, name string) string {
	t.Helper()
	return must(lookExecutable(name))(t)
}

// lookExecutable is Require's core; a missing executable is a
// *MissingError.
func lookExecutable(name string) (string, error) {
	var path string
	var err error
	if strings.Contains(name, "/") {
		path = name
		var st os.FileInfo
		if st, err = os.Stat(name); err == nil && (st.IsDir() || st.Mode()&0o111 == 0) {
			err = fmt.Errorf("not an executable file")
		}
	} else {
		path, err = exec.LookPath(name)
	}
	if err == nil {
		return path, nil
	}
	pkg := aptPackages[filepath.Base(name)]
	if pkg == "" {
		pkg = filepath.Base(name)
	}
	return "", &MissingError{Name: name, Package: pkg, Err: err}
}

var ports struct {
	mu    sync.Mutex
	given map[int]bool
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that this process has not handed out before. Another process may still
// take it before the server binds it; the Start functions retry the first
// start on a fresh port when that happens.
func FreePort(t testing.TB) int {
	t.Helper()
	return must(freePort())(t)
}

func freePort() (int, error) {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !ports.given[port] {
			ports.given[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("free port: no new port after 100 tries")
}

// portTaken reports whether a server log says its port was in use.
func portTaken(log string) bool {
	l := strings.ToLower(log)
	return strings.Contains(l, "address already in use") || strings.Contains(l, "could not bind")
}

// waitFor calls ready every interval until it returns true, the process
// exits, or d has passed. It returns the last error ready gave.
func waitFor(p *proc, d time.Duration, ready func() error) error {
	deadline := time.Now().Add(d)
	var last error
	for {
		if last = ready(); last == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v); last check: %w", p.name, p.err, last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %w", p.name, d, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
