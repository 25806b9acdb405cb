package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// kafka.embedded runs cdcrelay-devbroker found on PATH: it serves clients
// once startEmbeddedBroker returns, keeps what it stored across a restart
// on the same data directory, and exits 0 on Close.
func TestEmbeddedBroker(t *testing.T) {
	t.Setenv("PATH", filepath.Dir(testenv.DevBrokerBinary(t)))
	k := &config.Kafka{
		Brokers:  []string{"127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))},
		Embedded: config.Embedded{Enabled: true, DataDir: t.TempDir()},
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	b, err := startEmbeddedBroker(k, log)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "kept"); err != nil {
		t.Fatalf("create a topic on the embedded broker: %v", err)
	}
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "dev-broker stopped") {
		t.Errorf("the broker's log lines are not in the relay's log:\n%s", logs.String())
	}

	b, err = startEmbeddedBroker(k, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err = kgo.NewClient(kgo.SeedBrokers(k.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !topics.Has("kept") {
		t.Fatalf("the topic created before the restart is gone: %v", topics.Names())
	}
	// The broker is in a process group of its own: a Ctrl-C for the relay
	// does not reach it.
	if pgid, err := syscall.Getpgid(b.cmd.Process.Pid); err != nil || pgid != b.cmd.Process.Pid {
		t.Errorf("process group %d (%v), want its own (%d)", pgid, err, b.cmd.Process.Pid)
	}
}

// Without cdcrelay-devbroker, kafka.embedded fails at once with one line
// naming the setting and the fix.
func TestEmbeddedBrokerMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	k := &config.Kafka{Brokers: []string{"127.0.0.1:1"}, Embedded: config.Embedded{Enabled: true}}
	_, err := startEmbeddedBroker(k, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("started without cdcrelay-devbroker")
	}
	for _, want := range []string{"kafka.embedded", "cdcrelay-devbroker", "make build"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// `cdcrelay dev-broker` names the command that replaced it and exits 2.
func TestDevBrokerMoved(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"dev-broker", "--listen", "127.0.0.1:0"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "cdcrelay-devbroker") {
		t.Fatalf("exit %d, want 2 and a pointer to cdcrelay-devbroker:\n%s", code, errb.String())
	}
}
