package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/offsets"
	"github.com/cdcrelay/cdcrelay/sources/mysql"
)

// TestMySQLPositionFollowsUncapturedTraffic writes only to a table the
// relay does not capture, for 12 s, while the captured table stays idle.
// The stored position (the offsets record) follows the server's
// gtid_binlog_pos all along, at most source.heartbeat_interval (2 s here)
// and a commit behind (6 s allowed), and equals it once the traffic stops: a restart
// after a long idle stretch resumes from a binlog the server still has.
func TestMySQLPositionFollowsUncapturedTraffic(t *testing.T) {
	b := testenv.StartBroker(t)
	m := testenv.StartMariaDB(t)
	myRelayUser(t, m, "REPLICATION SLAVE, BINLOG MONITOR")
	m.Exec(t, "CREATE TABLE shop.other (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
	cfg := writeConfig(t, fmt.Sprintf(`id: hb
source:
  type: mysql
  dsn: mysql://relay@%s/shop
  tables: [shop.orders]
  heartbeat_interval: 2s
kafka:
  brokers: [%s]
  topic_prefix: hb
metrics:
  listen: "off"
`, m.Addr(), b.Addr))
	p := startRelay(t, cfg, pwEnv...)
	eventually(t, time.Minute, "the snapshot", func() bool {
		return strings.Contains(offsetsState(t, cfg), `"done":["shop.orders"]`)
	})

	stored := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := offsets.Load(ctx, []kgo.Opt{kgo.SeedBrokers(b.Addr)}, "cdcrelay_offsets", "hb")
		if err != nil || r == nil {
			t.Fatalf("offsets: %v (record %v)", err, r)
		}
		return r.Position
	}
	server := func() string {
		s, _ := m.Exec(t, "SELECT @@gtid_binlog_pos").GetString(0, 0)
		return s
	}
	seq := func(gtid string) uint64 {
		seqs, _ := mysql.MariaDBSeqs(gtid)
		return seqs[0]
	}

	// serverAt[i] is the server's position at sample i, taken every 250ms.
	var serverAt []uint64
	var moves int
	last := seq(stored())
	start := time.Now()
	for time.Since(start) < 12*time.Second {
		m.Exec(t, "INSERT INTO shop.other (v) VALUES (1)")
		if len(serverAt) == 0 || time.Since(start) >= time.Duration(len(serverAt))*250*time.Millisecond {
			serverAt = append(serverAt, seq(server()))
			got := seq(stored())
			if got != last {
				moves++
				last = got
			}
			// Older than heartbeat_interval plus 4 s for the commit and a
			// loaded machine: the stored position must be at least there.
			if i := len(serverAt) - 1 - (6 * 4); i >= 0 && got < serverAt[i] {
				t.Fatalf("after %v the stored position %d is behind the server's position of 6 s ago (%d)", time.Since(start).Round(time.Millisecond), got, serverAt[i])
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if moves < 3 {
		t.Fatalf("the stored position moved %d times in 12 s of uncaptured traffic, want at least 3", moves)
	}
	want := server()
	eventually(t, 15*time.Second, "the stored position to reach "+want, func() bool { return stored() == want })

	// Binlog rotations alone move the stored file on too (the resume point
	// without GTIDs), so it never names a binlog that expires.
	m.Exec(t, "FLUSH BINARY LOGS")
	m.Exec(t, "FLUSH BINARY LOGS")
	file, _ := m.Exec(t, "SHOW MASTER STATUS").GetString(0, 0)
	eventually(t, 15*time.Second, "the stored file to reach "+file, func() bool {
		return strings.Contains(offsetsState(t, cfg), `"file":"`+file+`"`)
	})
	if n := len(readAll(t, b, "hb.shop.orders")); n != 0 {
		t.Errorf("%d records in the captured table's topic, want none", n)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("SIGTERM exit code %d", code)
	}
}
