package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cdcrelay/cdcrelay/config"
)

const (
	// devBrokerCommand is the development broker's executable, which
	// kafka.embedded runs beside the relay; the relay binary does not carry
	// the broker itself.
	devBrokerCommand = "cdcrelay-devbroker"
	// devBrokerReady starts the line the broker prints on stdout once it
	// accepts connections.
	devBrokerReady = "dev-broker listening on "
	// embeddedStartTimeout bounds the wait for that line: with a data
	// directory the broker reads every segment back before it listens.
	embeddedStartTimeout = 2 * time.Minute
	// embeddedStopTimeout bounds the clean shutdown before SIGKILL.
	embeddedStopTimeout = 30 * time.Second
)

// embeddedBroker is the development broker run for kafka.embedded.
type embeddedBroker struct {
	cmd  *exec.Cmd
	done chan error // the broker's exit, once
}

// findDevBroker returns the path of cdcrelay-devbroker: beside the running
// executable first, else on PATH.
func findDevBroker() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), devBrokerCommand)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(devBrokerCommand); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("kafka.embedded: %s is neither beside cdcrelay nor on PATH; build it (make build, or go build -o bin/ ./cmd/%s) or turn kafka.embedded off and list a broker in kafka.brokers",
		devBrokerCommand, devBrokerCommand)
}

// startEmbeddedBroker runs cdcrelay-devbroker on kafka.brokers[0] with
// kafka.embedded.data_dir and returns once it accepts connections. Its log
// lines go to log. It runs in a process group of its own, so that a Ctrl-C
// meant for the relay leaves it up while the relay ends its transaction;
// the relay stops it last.
func startEmbeddedBroker(k *config.Kafka, log *slog.Logger) (*embeddedBroker, error) {
	path, err := findDevBroker()
	if err != nil {
		return nil, err
	}
	args := []string{"--listen", k.Brokers[0]}
	if k.Embedded.DataDir != "" {
		args = append(args, "--data-dir", k.Embedded.DataDir)
	}
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = embeddedProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kafka.embedded: start %s: %w", path, err)
	}
	b := &embeddedBroker{cmd: cmd, done: make(chan error, 1)}
	logged := make(chan struct{})
	go func() {
		logLines(stderr, log)
		close(logged)
	}()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), devBrokerReady); ok {
				ready <- addr
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		// Wait closes the pipes: both must be read to the end first.
		<-logged
		b.done <- cmd.Wait()
		close(b.done)
	}()
	select {
	case addr := <-ready:
		log.Info("embedded development broker started", "addr", addr, "data_dir", k.Embedded.DataDir, "pid", cmd.Process.Pid)
		return b, nil
	case err := <-b.done:
		return nil, fmt.Errorf("kafka.embedded: %s on %s exited before it listened (%v); its log is above", devBrokerCommand, k.Brokers[0], err)
	case <-time.After(embeddedStartTimeout):
		b.kill()
		return nil, fmt.Errorf("kafka.embedded: %s on %s did not listen within %s", devBrokerCommand, k.Brokers[0], embeddedStartTimeout)
	}
}

// logLines logs each line the broker writes to stderr.
func logLines(r io.Reader, log *slog.Logger) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		log.Info(sc.Text())
	}
}

// Close stops the broker with SIGTERM, which ends it cleanly, and kills it
// if it has not exited in time.
func (b *embeddedBroker) Close() error {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.done:
		return err
	case <-time.After(embeddedStopTimeout):
		b.kill()
		return errors.New("kafka.embedded: the broker did not stop after SIGTERM; killed")
	}
}

func (b *embeddedBroker) kill() {
	_ = b.cmd.Process.Kill()
	<-b.done
}
