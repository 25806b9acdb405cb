package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// relayProc is one `cdcrelay run` process.
type relayProc struct {
	*child
	id      string
	metrics string // host:port of /metrics
}

// child is a process the bench started, with its output in a log file.
type child struct {
	cmd     *exec.Cmd
	started time.Time
	logPath string
	done    chan struct{}
	err     error
}

// startChild starts cmd with its output appended to logPath; done closes
// when it has exited.
func startChild(cmd *exec.Cmd, logPath string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	c := &child{cmd: cmd, logPath: logPath, done: make(chan struct{}), started: time.Now()}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// relayConf is what varies between the configs of the scenarios.
type relayConf struct {
	id         string
	table      string // schema.table
	snapshot   string // initial | never
	txnTimeout time.Duration
	mysql      bool  // source.type mysql against b.my
	partitions int32 // kafka.topic_partitions; 0 for the default
}

func (b *bench) writeRelayConfig(rc relayConf, metricsAddr string) (string, error) {
	snap := rc.snapshot
	if snap == "" {
		snap = "initial"
	}
	tt := rc.txnTimeout
	if tt == 0 {
		tt = 60 * time.Second
	}
	typ, dsn := "postgres", b.pgDSN
	if rc.mysql {
		typ, dsn = "mysql", b.myDSN
	}
	parts := ""
	if rc.partitions > 0 {
		parts = fmt.Sprintf("\n  topic_partitions: %d", rc.partitions)
	}
	cfg := fmt.Sprintf(`id: %s
source:
  type: %s
  dsn: %s
  tables: [%s]
  snapshot: %s
kafka:
  brokers: [%s]
  topic_prefix: %s
  transaction_timeout: %s
  compression: %s%s
metrics:
  listen: %s
log:
  level: info
`, rc.id, typ, dsn, rc.table, snap, b.brokerAddr, rc.id, tt, b.compression, parts, metricsAddr)
	path := filepath.Join(b.workDir, rc.id+".yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// startRelay starts `cdcrelay run` for rc, logging to <workDir>/<id>.log.
func (b *bench) startRelay(rc relayConf) (*relayProc, error) {
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	path, err := b.writeRelayConfig(rc, maddr)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.relayBin, "run", "--config", path)
	cmd.Env = append(os.Environ(), b.relayEnv...)
	if b.pprofAddr != "" && rc.id == b.pprofID {
		cmd.Env = append(cmd.Env, "CDCRELAY_PPROF="+b.pprofAddr)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c, err := startChild(cmd, filepath.Join(b.workDir, rc.id+".log"))
	if err != nil {
		return nil, err
	}
	return &relayProc{child: c, id: rc.id, metrics: maddr}, nil
}

// check returns an error with the log tail once the process has exited.
func (p *relayProc) check() error {
	if p.exited() {
		return fmt.Errorf("relay %s exited: %v\n%s", p.id, p.err, logTail(p.logPath, 3000))
	}
	return nil
}

// peakRSSMiB reads VmHWM of the running process.
func (p *relayProc) peakRSSMiB() float64 { return vmHWM(p.cmd.Process.Pid) }

// stop sends SIGTERM and waits up to 30s, then kills.
func (p *relayProc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

// kill sends SIGKILL and waits.
func (p *relayProc) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitReady polls /readyz until it answers 200.
func (p *relayProc) waitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := p.check(); err != nil {
			return err
		}
		resp, err := http.Get("http://" + p.metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("relay %s not ready after %v\n%s", p.id, d, logTail(p.logPath, 3000))
}

// scrape returns the value of each metric line whose name (with labels)
// starts with one of prefixes, summed per prefix.
func (p *relayProc) scrape(prefixes ...string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, pre := range prefixes {
			if strings.HasPrefix(line, pre+" ") || strings.HasPrefix(line, pre+"{") {
				f := strings.Fields(line)
				v, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err == nil {
					out[pre] += v
				}
			}
		}
	}
	return out
}

// meanBatch is the mean number of events per committed Kafka transaction.
func (p *relayProc) meanBatch() float64 {
	m := p.scrape("cdcrelay_batch_events_sum", "cdcrelay_batch_events_count")
	if m["cdcrelay_batch_events_count"] == 0 {
		return 0
	}
	return m["cdcrelay_batch_events_sum"] / m["cdcrelay_batch_events_count"]
}

// vmHWM returns the peak resident set of pid in MiB, 0 when unknown.
func vmHWM(pid int) float64 {
	return statusKiB(pid, "VmHWM:") / 1024
}

func statusKiB(pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				return v
			}
		}
	}
	return 0
}

func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}
