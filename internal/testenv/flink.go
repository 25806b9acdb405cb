package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The Flink runner is io.cdcrelay.flink.Runner in deploy/jvm/flink: a local
// Flink cluster (MiniCluster) in one JVM that executes the SQL files of
// deploy/flink/sql as they are, in a cluster without checkpoints (a job may
// set its own interval). Only the bootstrap servers are substituted, from
// this variable.
const flinkBootstrapEnv = "CDCRELAY_FLINK_BOOTSTRAP_SERVERS"

// flinkStartTimeout bounds the wait for every job to be RUNNING: the first
// start of a JVM with the planner takes seconds, on a busy machine more.
const flinkStartTimeout = 4 * time.Minute

// flinkHeap is the runner's heap; one MiniCluster with two small jobs fits.
const flinkHeap = "-Xmx768m"

// FlinkRestartConf is the restart strategy of the compose cluster
// (docker-compose.yml), with a 1 s delay instead of 10 s: without
// checkpoints Flink's default is to never restart a failed job.
var FlinkRestartConf = []string{
	"restart-strategy.type=fixed-delay",
	"restart-strategy.fixed-delay.attempts=2147483647",
	"restart-strategy.fixed-delay.delay=1 s",
}

// Flink is a Flink runner process executing SQL jobs, so that tests can kill
// it with SIGKILL and start it again.
type Flink struct {
	Files []string // the .sql files it runs
	// Jobs maps each job's pipeline.name to the id of its latest run.
	Jobs map[string]string

	dir     string
	logFile string
	argv    []string
	env     []string
	proc    *proc
	started time.Time
	ready   time.Time
}

// StartFlink runs every file in one Flink runner against the Kafka cluster
// at bootstrap and waits until each job is RUNNING. conf holds extra Flink
// options as key=value (FlinkRestartConf, for example). The runner is killed
// when the test ends.
func StartFlink(t testing.TB, bootstrap string, files []string, conf ...string) *Flink {
	t.Helper()
	java := Java(t)
	cp := Jars(t, "flink")
	dir, err := serverDir(t, "flink", false)
	check(t, err)
	f := &Flink{
		Files:   files,
		Jobs:    map[string]string{},
		dir:     dir,
		logFile: filepath.Join(dir, "flink.log"),
		env:     []string{flinkBootstrapEnv + "=" + bootstrap},
	}
	f.argv = []string{java, flinkHeap, "-cp", cp, "io.cdcrelay.flink.Runner"}
	for _, kv := range conf {
		f.argv = append(f.argv, "-D", kv)
	}
	f.argv = append(f.argv, "run")
	f.argv = append(f.argv, files...)
	t.Cleanup(func() {
		if f.proc != nil {
			f.proc.kill()
		}
	})
	if err := f.start(); err != nil {
		t.Fatalf("testenv: start flink: %v\n%s", err, tail(f.logFile))
	}
	return f
}

func (f *Flink) start() error {
	f.proc = nil
	// The runner prints "flink-runner: running NAME JOBID" per job, then
	// "flink-runner: ready".
	ready := make(chan map[string]string, 1)
	jobs := map[string]string{}
	w, err := newLineWatcher(f.logFile, func(line string) bool {
		if rest, ok := strings.CutPrefix(line, "flink-runner: running "); ok {
			if fs := strings.Fields(rest); len(fs) == 2 {
				jobs[fs[0]] = fs[1]
			}
		}
		if line == "flink-runner: ready" {
			ready <- jobs
			return true
		}
		return false
	})
	if err != nil {
		return err
	}
	f.started = time.Now()
	pr, err := startProc(procSpec{name: "flink", argv: f.argv, dir: f.dir, log: f.logFile, stdout: w, env: f.env})
	if err != nil {
		w.Close()
		return err
	}
	f.proc = pr
	err = waitFor(pr, flinkStartTimeout, func() error {
		select {
		case jobs := <-ready:
			f.Jobs = jobs
			return nil
		default:
			return errNotYet
		}
	})
	if err != nil {
		pr.kill()
		return err
	}
	f.ready = time.Now()
	return nil
}

// StartupTime is how long the last start took, from exec to every job
// RUNNING.
func (f *Flink) StartupTime() time.Duration { return f.ready.Sub(f.started) }

// Kill sends SIGKILL to the runner and waits for it to exit.
func (f *Flink) Kill(t testing.TB) {
	t.Helper()
	if f.proc == nil || f.proc.exited() {
		t.Fatalf("testenv: flink: Kill: not running\n%s", tail(f.logFile))
	}
	f.proc.kill()
}

// Start starts a killed runner again with the same files and options, and
// waits until every job is RUNNING.
func (f *Flink) Start(t testing.TB) {
	t.Helper()
	if f.proc != nil && !f.proc.exited() {
		t.Fatalf("testenv: flink: Start: already running")
	}
	if err := f.start(); err != nil {
		t.Fatalf("testenv: restart flink: %v\n%s", err, tail(f.logFile))
	}
}

// Exited reports whether the runner has exited; a job that fails for good
// ends it.
func (f *Flink) Exited() bool { return f.proc == nil || f.proc.exited() }

// LogTail returns the end of the runner's log, for failure messages.
func (f *Flink) LogTail() string { return tail(f.logFile) }

// FlinkSelect runs the statements of files (CREATE TABLE, SET) and then
// query in a runner of its own, and returns the rows it printed: the final
// table, with the changes applied. The query must end by itself; read Kafka
// tables with /*+ OPTIONS('scan.bounded.mode'='latest-offset') */. Values
// are as io.cdcrelay.flink.Select documents (DECIMAL as a string, bytes as
// base64, times as ISO-8601); numbers are json.Number.
func FlinkSelect(t testing.TB, bootstrap, query string, files ...string) []map[string]any {
	t.Helper()
	out, stderr, err := flinkSelect(t, bootstrap, query, false, files...)
	if err != nil {
		t.Fatalf("testenv: flink select %q: %v\n%s", query, err, lastLines(stderr, 40))
	}
	return out
}

// FlinkChangelog is FlinkSelect printing every change instead of the final
// table: each row is {"op": "+I"|"-U"|"+U"|"-D", "row": {...}}.
func FlinkChangelog(t testing.TB, bootstrap, query string, files ...string) []map[string]any {
	t.Helper()
	out, stderr, err := flinkSelect(t, bootstrap, query, true, files...)
	if err != nil {
		t.Fatalf("testenv: flink select %q: %v\n%s", query, err, lastLines(stderr, 40))
	}
	return out
}

func flinkSelect(t testing.TB, bootstrap, query string, changelog bool, files ...string) ([]map[string]any, []byte, error) {
	java := Java(t)
	cp := Jars(t, "flink")
	args := []string{flinkHeap, "-cp", cp, "io.cdcrelay.flink.Runner", "select"}
	if changelog {
		args = append(args, "--changelog")
	}
	args = append(append(args, files...), query)
	cmd := exec.Command(java, args...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "TZ=UTC", "HOME=" + os.TempDir(), flinkBootstrapEnv + "=" + bootstrap}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	timer := time.AfterFunc(5*time.Minute, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err := cmd.Wait()
	timer.Stop()
	if err != nil {
		return nil, stderr.Bytes(), err
	}
	var rows []map[string]any
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var row map[string]any
		if err := dec.Decode(&row); err != nil {
			return nil, stderr.Bytes(), fmt.Errorf("row %q: %w", line, err)
		}
		rows = append(rows, row)
	}
	return rows, stderr.Bytes(), sc.Err()
}

// FlinkResult is the outcome of one query of FlinkSelectEach.
type FlinkResult struct {
	Rows  []map[string]any // the final table, as FlinkSelect returns it
	Error string           // the root cause, when the query failed
}

// FlinkSelectEach runs the statements of files and then each query, one
// after the other, in one runner, and returns one result per query; a
// query that fails does not stop the others.
func FlinkSelectEach(t testing.TB, bootstrap string, queries []string, files ...string) []FlinkResult {
	t.Helper()
	for _, q := range queries {
		if strings.Contains(q, "\n") {
			t.Fatalf("testenv: FlinkSelectEach: a query spans lines: %q", q)
		}
	}
	qfile := filepath.Join(t.TempDir(), "queries.sql")
	if err := os.WriteFile(qfile, []byte(strings.Join(queries, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	java := Java(t)
	cp := Jars(t, "flink")
	args := append([]string{flinkHeap, "-cp", cp, "io.cdcrelay.flink.Runner", "select", "--each", qfile}, files...)
	cmd := exec.Command(java, args...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "TZ=UTC", "HOME=" + os.TempDir(), flinkBootstrapEnv + "=" + bootstrap}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Minute, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err := cmd.Wait()
	timer.Stop()
	if err != nil {
		t.Fatalf("testenv: flink select --each: %v\n%s", err, lastLines(stderr.Bytes(), 40))
	}
	out := make([]FlinkResult, len(queries))
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	seen := 0
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var r struct {
			Query int              `json:"query"`
			Rows  []map[string]any `json:"rows"`
			Error string           `json:"error"`
		}
		if err := dec.Decode(&r); err != nil || r.Query < 0 || r.Query >= len(out) {
			t.Fatalf("testenv: flink select --each: line %q: %v", line, err)
		}
		out[r.Query] = FlinkResult{Rows: r.Rows, Error: r.Error}
		seen++
	}
	if seen != len(queries) {
		t.Fatalf("testenv: flink select --each: %d results for %d queries\n%s", seen, len(queries), lastLines(stderr.Bytes(), 40))
	}
	return out
}
