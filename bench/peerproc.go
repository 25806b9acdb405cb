package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// peerProc is one process of the peers bench: a Kafka Connect worker with
// Debezium, a Flink CDC job or `cdcrelay run`, with its output in a log
// file.
type peerProc struct {
	*child
	name string
}

// jvmHeap bounds the heap of both JVM peers alike; Connect's own start
// script uses the same maximum.
const jvmHeap = "-Xmx2g"

// flinkJavaOpts are the module openings Flink 1.17 needs on Java 17 (the
// list later Flink releases put into env.java.opts.all).
var flinkJavaOpts = []string{
	"--add-exports=java.base/sun.net.util=ALL-UNNAMED",
	"--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
	"--add-opens=java.base/java.lang=ALL-UNNAMED",
	"--add-opens=java.base/java.net=ALL-UNNAMED",
	"--add-opens=java.base/java.io=ALL-UNNAMED",
	"--add-opens=java.base/java.nio=ALL-UNNAMED",
	"--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
	"--add-opens=java.base/java.text=ALL-UNNAMED",
	"--add-opens=java.base/java.time=ALL-UNNAMED",
	"--add-opens=java.base/java.util=ALL-UNNAMED",
	"--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
	"--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
	"--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
}

// startPeerProc starts argv in its own process group, appending its output
// to <workDir>/<name>.log.
func (b *bench) startPeerProc(name string, argv []string, env ...string) (*peerProc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = b.workDir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c, err := startChild(cmd, filepath.Join(b.workDir, name+".log"))
	if err != nil {
		return nil, err
	}
	return &peerProc{child: c, name: name}, nil
}

// check returns an error with the log tail once the process has exited.
func (p *peerProc) check() error {
	if p.exited() {
		return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, logCauses(p.logPath))
	}
	return nil
}

// kill9 sends SIGKILL to the whole process group and waits.
func (p *peerProc) kill9() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to 30 s, then kills.
func (p *peerProc) stop() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill9()
	}
}

func (p *peerProc) peakRSSMiB() float64 { return vmHWM(p.cmd.Process.Pid) }

// cpuSeconds is the user and system time of the running process.
func (p *peerProc) cpuSeconds() float64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// peerJars resolves the class path of a Maven project under deploy/jvm.
func peerJars(module string) (string, error) {
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return "", fmt.Errorf("mvn is missing; install it with: apt-get install -y maven")
	}
	return testenv.ResolveJars(mvn, module)
}

func javaBin() string {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		return filepath.Join(home, "bin", "java")
	}
	return "java"
}

// writeProps writes a Java properties file of key=value lines.
func writeProps(path string, kv [][2]string) error {
	var sb strings.Builder
	for _, p := range kv {
		sb.WriteString(p[0] + "=" + p[1] + "\n")
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// fileBytes is the size of a file, or of every file under a directory; 0
// when it does not exist.
func fileBytes(path string) int64 {
	var n int64
	_ = filepath.Walk(path, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// logCauses picks the error lines and the "Caused by:" lines out of a JVM
// log, where the root cause of a failure sits far from the log's tail.
func logCauses(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var keep []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if !strings.Contains(t, " ERROR ") && !strings.HasPrefix(t, "Caused by:") {
			continue
		}
		if len(t) > 400 {
			t = t[:400]
		}
		if !seen[t] {
			seen[t] = true
			keep = append(keep, t)
		}
		if len(keep) == 8 {
			break
		}
	}
	if len(keep) == 0 {
		return logTail(path, 2000)
	}
	return strings.Join(keep, "\n")
}
