package testenv

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// Standalone lets a program that is not a test (the bench command) use the
// Start functions, which take a testing.TB. It records cleanups and runs them
// in reverse order on Close, prints Logf lines to stderr, and turns Fatal,
// Fatalf and Skip into a panic with a *StandaloneFailure, which the program
// recovers (see Run) after the cleanups ran.
//
// Only the methods the testenv package calls are provided; any other
// testing.TB method panics. Safe for concurrent use.
type Standalone struct {
	testing.TB // nil: present only to satisfy the interface

	name     string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	dir      string
}

// StandaloneFailure is the panic value of a failed Standalone.
type StandaloneFailure struct{ Msg string }

func (f *StandaloneFailure) Error() string { return f.Msg }

// NewStandalone returns a Standalone whose Name is name.
func NewStandalone(name string) *Standalone { return &Standalone{name: name} }

// Run calls f, recovering a *StandaloneFailure panic into an error; other
// panics pass through.
func (s *Standalone) Run(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if sf, ok := r.(*StandaloneFailure); ok {
				err = sf
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}

// Close runs the registered cleanups, the last registered first.
func (s *Standalone) Close() {
	for {
		s.mu.Lock()
		n := len(s.cleanups)
		if n == 0 {
			s.mu.Unlock()
			return
		}
		f := s.cleanups[n-1]
		s.cleanups = s.cleanups[:n-1]
		s.mu.Unlock()
		f()
	}
}

func (s *Standalone) Helper()      {}
func (s *Standalone) Name() string { return s.name }

func (s *Standalone) Cleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

func (s *Standalone) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *Standalone) fail(msg string) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	panic(&StandaloneFailure{Msg: msg})
}

func (s *Standalone) Log(args ...any) { fmt.Fprintln(os.Stderr, args...) }
func (s *Standalone) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
func (s *Standalone) Error(args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	fmt.Fprintln(os.Stderr, args...)
}
func (s *Standalone) Errorf(format string, args ...any) { s.Error(fmt.Sprintf(format, args...)) }
func (s *Standalone) Fatal(args ...any)                 { s.fail(fmt.Sprint(args...)) }
func (s *Standalone) Fatalf(format string, args ...any) { s.fail(fmt.Sprintf(format, args...)) }
func (s *Standalone) FailNow()                          { s.fail("FailNow") }
func (s *Standalone) Skip(args ...any)                  { s.fail("skipped: " + fmt.Sprint(args...)) }
func (s *Standalone) Skipf(format string, args ...any) {
	s.fail("skipped: " + fmt.Sprintf(format, args...))
}
func (s *Standalone) SkipNow() { s.fail("skipped") }

// TempDir returns a directory removed on Close.
func (s *Standalone) TempDir() string {
	s.mu.Lock()
	dir := s.dir
	s.mu.Unlock()
	if dir != "" {
		return dir
	}
	d, err := os.MkdirTemp("", "cdcrelay-standalone-")
	if err != nil {
		s.fail("testenv: temp dir: " + err.Error())
	}
	s.mu.Lock()
	s.dir = d
	s.mu.Unlock()
	s.Cleanup(func() { os.RemoveAll(d) })
	return d
}
