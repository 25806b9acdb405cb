package testenv

import (
	"fmt"
	"syscall"
	"testing"
)

// server is what every throwaway server shares: one process started from a
// spec, a log file, a port, and the start, stop, kill and restart that go
// with them. PostgreSQL, MariaDB and both kinds of broker embed it and add
// how to start and when they are ready.
//
// The error-returning methods are the core; the exported ones that take a
// testing.TB fail the test with the end of the server's log.
type server struct {
	// Port is the TCP port clients use.
	Port int

	kind    string            // for messages: "postgres", "kafka", ...
	dir     string            // the server's directory
	logFile string            // stdout and stderr, appended across restarts
	stopSig syscall.Signal    // the clean-shutdown signal
	spec    func() procSpec   // the process to start, for the current Port
	ready   func(*proc) error // nil once the server accepts clients
	started func(*proc) error // optional: runs once ready, before start returns
	proc    *proc
}

// startFirst starts the server for the first time on a free port, retrying
// on a fresh port twice when another process took the port first.
func (s *server) startFirst(e Env) error {
	e.Cleanup(s.cleanup)
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.Port = port
		err = s.start()
		if err == nil {
			return nil
		}
		if attempt < 3 && portTaken(tail(s.logFile)) {
			continue
		}
		return fmt.Errorf("start %s: %w\n%s", s.kind, err, tail(s.logFile))
	}
}

// start starts the process and waits until it is ready; a server that does
// not get ready in time is killed.
func (s *server) start() error {
	s.proc = nil
	pr, err := startProc(s.spec())
	if err != nil {
		return err
	}
	s.proc = pr
	err = waitFor(pr, startTimeout, func() error { return s.ready(pr) })
	if err == nil && s.started != nil {
		err = s.started(pr)
	}
	if err != nil {
		pr.kill()
		return err
	}
	return nil
}

func (s *server) running() bool { return s.proc != nil && !s.proc.exited() }

// cleanup kills whatever is left of the server.
func (s *server) cleanup() {
	if s.proc != nil {
		s.proc.kill()
	}
}

// Exited reports whether the server process has exited (or never ran).
func (s *server) Exited() bool { return !s.running() }

// Kill sends SIGKILL to the server and everything it started, and waits
// until they are gone; the next Start runs the server's crash recovery.
func (s *server) Kill(t testing.TB) {
	t.Helper()
	if !s.running() {
		t.Fatalf("testenv: %s: Kill: not running", s.kind)
	}
	s.proc.kill()
}

// Stop asks the server to shut down cleanly and waits for it; a server that
// takes longer than the start timeout is killed and fails the test.
func (s *server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

func (s *server) stop() error {
	if !s.running() {
		return fmt.Errorf("%s: Stop: not running", s.kind)
	}
	if !s.proc.stop(s.stopSig, startTimeout) {
		return fmt.Errorf("%s: did not stop within %v; killed it\n%s", s.kind, startTimeout, tail(s.logFile))
	}
	return nil
}

// Start starts a stopped or killed server again, with the same directory,
// port and settings.
func (s *server) Start(t testing.TB) {
	t.Helper()
	if s.running() {
		t.Fatalf("testenv: %s: Start: already running", s.kind)
	}
	if err := s.start(); err != nil {
		t.Fatalf("testenv: restart %s on port %d: %v\n%s", s.kind, s.Port, err, tail(s.logFile))
	}
}

// Restart stops the server cleanly and starts it again.
func (s *server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

// Pid returns the server process's pid, 0 when it is not running.
func (s *server) Pid() int {
	if !s.running() {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// LogTail returns the end of the server's log, for failure messages.
func (s *server) LogTail() string { return tail(s.logFile) }
