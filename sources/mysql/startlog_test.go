package mysql

import (
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcrelay/cdcrelay/metrics"
)

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var streamingLine = regexp.MustCompile(`msg="mysql: streaming" .*from=(\S+) origin=("[^"]*"|\S+)`)

// The streaming log line names the position the binlog is read from and
// where it comes from: the server's position on a first start, the stored
// offsets on a resume.
func TestStartLog(t *testing.T) {
	t.Parallel()
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY)")
	m.Exec(t, "INSERT INTO shop.items VALUES (1)")
	cfg := testConfig(m)
	cfg.Source.Snapshot = "never"
	var k sink
	for _, want := range []string{originCurrent, originStored} {
		buf := &logBuffer{}
		src, err := New(cfg, slog.New(slog.NewTextHandler(buf, nil)), metrics.New(prometheus.NewRegistry()))
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Setup(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		wantFrom, _ := m.Exec(t, "SELECT @@gtid_binlog_pos").GetString(0, 0)
		if _, st := k.snapshot(); st != nil {
			var stored state
			if err := json.Unmarshal(st, &stored); err != nil {
				t.Fatal(err)
			}
			wantFrom = stored.GTID
		}
		r := k.start(t, src)
		deadline := time.Now().Add(30 * time.Second)
		for !streamingLine.MatchString(buf.String()) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		line := streamingLine.FindString(buf.String())
		t.Log(line)
		g := streamingLine.FindStringSubmatch(line)
		if g == nil {
			t.Fatalf("no streaming line in:\n%s", buf.String())
		}
		if from, origin := g[1], strings.Trim(g[2], `"`); from != wantFrom || origin != want {
			t.Errorf("from=%s origin=%q, want from=%s origin=%q", from, origin, wantFrom, want)
		}
		// A first start stores the server's position at once.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, st := k.snapshot(); st != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no checkpoint within 30s")
			}
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		src.Close()
	}
}
