package testenv

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
)

// Env is what the error-returning core of this package needs from its
// caller: somewhere to register the cleanups of what it starts, whether the
// caller has failed (a failed caller may keep the servers' directories,
// see CDCRELAY_TESTENV_KEEP), and a log. A testing.TB is an Env; a program
// that is not a test uses *Cleanups.
type Env interface {
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
}

// Cleanups is the Env of a program: it runs the registered cleanups, the
// last registered first, on Close, and logs to stderr. Safe for concurrent
// use.
type Cleanups struct {
	mu     sync.Mutex
	fns    []func()
	failed bool
}

// Cleanup registers f to run on Close.
func (c *Cleanups) Cleanup(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

// Fail marks the program as failed, so that Close keeps the servers'
// directories when CDCRELAY_TESTENV_KEEP is set.
func (c *Cleanups) Fail() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = true
}

// Failed reports whether Fail was called.
func (c *Cleanups) Failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// Logf prints one line to stderr.
func (c *Cleanups) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// Close runs the registered cleanups, the last registered first, including
// those registered while it runs.
func (c *Cleanups) Close() {
	for {
		c.mu.Lock()
		n := len(c.fns)
		if n == 0 {
			c.mu.Unlock()
			return
		}
		f := c.fns[n-1]
		c.fns = c.fns[:n-1]
		c.mu.Unlock()
		f()
	}
}

// MissingError says that a program the harness needs is not installed, and
// how to install it.
type MissingError struct {
	Name    string // the program, as asked for
	Package string // the Debian package that provides it
	Err     error
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s is missing (%v); install it with: apt-get install -y %s", e.Name, e.Err, e.Package)
}

func (e *MissingError) Unwrap() error { return e.Err }

// check ends the test on err: a missing program fails it when the
// environment variable CI is set and skips it otherwise; any other error
// fails it.
func check(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var missing *MissingError
	if errors.As(err, &missing) && os.Getenv("CI") == "" {
		t.Skipf("testenv: %v", err)
	}
	t.Fatalf("testenv: %v", err)
}

// must returns a function that ends the test on err (see check), or else
// returns v: a wrapper calls it as must(core(...))(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		check(t, err)
		return v
	}
}
