package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// nobodyID is the uid and gid of the unprivileged user the database servers
// run as when the tests run as root.
const nobodyID = 65534

// keepEnv names the variable that keeps the directories of failed tests.
const keepEnv = "CDCRELAY_TESTENV_KEEP"

// asRoot reports whether the test process runs as root and so must drop to
// nobody to start a database server.
func asRoot() bool { return os.Geteuid() == 0 }

// serverDir creates a fresh directory for one server, owned by nobody when
// owned is set and the test runs as root, and removes it when the test ends
// (unless the test failed and CDCRELAY_TESTENV_KEEP is set). Register it
// before the server's own cleanup, so that the server stops first.
func serverDir(e Env, kind string, owned bool) (string, error) {
	sweepOnce.Do(sweepStaleDirs)
	dir, err := os.MkdirTemp("", dirPrefix+kind+"-"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("%s: temp dir: %w", kind, err)
	}
	if owned && asRoot() {
		if err := os.Chown(dir, nobodyID, nobodyID); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("%s: chown %s to nobody: %w", kind, dir, err)
		}
	}
	e.Cleanup(func() {
		if e.Failed() && os.Getenv(keepEnv) != "" {
			e.Logf("testenv: kept %s (%s is set)", dir, keepEnv)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			e.Logf("testenv: remove %s: %v", dir, err)
		}
	})
	return dir, nil
}

// dirPrefix starts the names of server directories, followed by the kind of
// server and the pid of the test process that owns the directory.
const dirPrefix = "cdcrelay-env-"

var sweepOnce sync.Once

// sweepStaleDirs removes the server directories of test processes that are
// gone: a test binary that panics or times out runs no cleanups. It keeps
// them all when CDCRELAY_TESTENV_KEEP is set.
func sweepStaleDirs() {
	if os.Getenv(keepEnv) != "" {
		return
	}
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, m := range matches {
		// cdcrelay-env-<kind>-<pid>-<random>
		f := strings.Split(strings.TrimPrefix(filepath.Base(m), dirPrefix), "-")
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[len(f)-2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			os.RemoveAll(m)
		}
	}
}

// writeOwned writes a file in a server directory, owned by nobody when the
// server runs as nobody.
func writeOwned(path string, data []byte, mode os.FileMode, owned bool) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	if owned && asRoot() {
		return os.Chown(path, nobodyID, nobodyID)
	}
	return nil
}

// copyOwned copies src into a server directory; see writeOwned.
func copyOwned(src, dst string, mode os.FileMode, owned bool) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeOwned(dst, b, mode, owned)
}

// proc is one server process. It runs in its own process group, so that a
// kill reaches its children too, and dies with the test process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait returned
	err  error         // Wait's result, set before done is closed
}

// procSpec says how to start a process.
type procSpec struct {
	name   string
	argv   []string
	dir    string    // working directory
	log    string    // file that receives stdout and stderr (appended)
	stdout io.Writer // if set, receives stdout instead of log; closed when the process ends if it is an io.Closer
	env    []string  // added to a minimal environment
	nobody bool      // run as nobody when the test runs as root
	err    error     // set by a spec that could not be made: startProc returns it
}

func startProc(s procSpec) (*proc, error) {
	if s.err != nil {
		return nil, s.err
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Dir = s.dir
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC", "HOME=" + s.dir}, s.env...)
	cmd.Stdin = nil
	cmd.Stdout = logf
	if s.stdout != nil {
		cmd.Stdout = s.stdout
	}
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if s.nobody && asRoot() {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobodyID, Gid: nobodyID}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.argv[0], err)
	}
	p := &proc{name: s.name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if c, ok := s.stdout.(io.Closer); ok {
			c.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process (not its group).
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// descendants returns the pids of the process's descendants. PostgreSQL's
// backends start sessions of their own, so the process group alone misses
// them.
func (p *proc) descendants() []int {
	children := map[int][]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := procStat(pid); ok {
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	var out []int
	queue := []int{p.cmd.Process.Pid}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

type stat struct {
	state byte
	ppid  int
	pgrp  int
}

// procStat reads the state, parent and process group of pid.
func procStat(pid int) (stat, bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false
	}
	// pid (comm) state ppid pgrp ...; comm may contain spaces and parens.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return stat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return stat{}, false
	}
	return stat{state: f[0][0], ppid: ppid, pgrp: pgrp}, true
}

// alive reports whether pid runs; zombies count as gone, since whoever
// inherited them may be slow to reap them.
func alive(pid int) bool {
	st, ok := procStat(pid)
	return ok && st.state != 'Z' && st.state != 'X'
}

// groupAlive reports whether a live process is left in the process group.
func (p *proc) groupAlive() bool {
	if errors.Is(syscall.Kill(-p.cmd.Process.Pid, 0), syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := procStat(pid); ok && st.pgrp == p.cmd.Process.Pid && alive(pid) {
			return true
		}
	}
	return false
}

// wait waits up to d for the process to end and then for the rest of its
// group to go; it reports whether both happened in time.
func (p *proc) wait(d time.Duration, others ...int) bool {
	deadline := time.Now().Add(d)
	select {
	case <-p.done:
	case <-time.After(d):
		return false
	}
	for {
		left := p.groupAlive()
		for _, pid := range others {
			left = left || alive(pid)
		}
		if !left {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends sig and waits up to grace for the process and its group to
// exit, then kills them. It reports whether the process stopped on its own.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) bool {
	p.signal(sig)
	if p.wait(grace) {
		return true
	}
	p.kill()
	return false
}

// kill freezes the process so that it cannot fork, then kills it, its group
// and all its descendants with SIGKILL, and waits until they are gone.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	}
	desc := p.descendants()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	for _, pid := range desc {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// If this times out there is nothing more to do: a process is stuck
	// in uninterruptible sleep.
	p.wait(30*time.Second, desc...)
}

// tail returns the last lines of the files, for failure messages.
func tail(paths ...string) string {
	var b strings.Builder
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(&b, "--- %s: %v\n", filepath.Base(path), err)
			continue
		}
		const max = 4000
		if len(data) > max {
			data = data[len(data)-max:]
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				data = data[i+1:]
			}
		}
		fmt.Fprintf(&b, "--- last lines of %s:\n%s", path, data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// runAs runs a short-lived command to completion, as nobody when asked, and
// returns its combined output.
func runAs(dir string, nobody bool, timeout time.Duration, argv ...string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC", "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if nobody && asRoot() {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobodyID, Gid: nobodyID}
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	timer := time.AfterFunc(timeout, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err := cmd.Wait()
	if !timer.Stop() {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	return out.Bytes(), err
}

// appendFile appends text to an existing file, keeping its owner and mode.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
