package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestTruncateEventAndFail runs the relay with format.truncate: event on a
// compacted topic: the TRUNCATE lands between the inserts around it as a
// record with key {}, a null value and the header cdcrelay.op=t (the broker
// takes it, and Flink's debezium-json skips it). Then a relay with
// format.truncate: fail stops at the next TRUNCATE with one line naming the
// table and the setting, and the stored position stays before it.
func TestTruncateEventAndFail(t *testing.T) {
	b := testenv.StartBroker(t)
	pg := testenv.StartPostgres(t)
	pgRelayRole(t, pg, true)
	config := func(truncate string) string {
		return writeConfig(t, fmt.Sprintf(`id: tr
source:
  type: postgres
  dsn: postgres://relay@%s:%d/shop?sslmode=disable
  tables: [public.orders]
kafka:
  brokers: [%s]
  topic_prefix: tr
format:
  truncate: %s
metrics:
  listen: "off"
`, pg.Host, pg.Port, b.Addr, truncate))
	}
	cfg := config("event")
	p := startRelay(t, cfg, pwEnv...)
	eventually(t, time.Minute, "the snapshot", func() bool {
		return strings.Contains(offsetsState(t, cfg), `"done":["\"public\".\"orders\""]`)
	})
	pg.Exec(t, "shop", "INSERT INTO orders VALUES (1, 'a'); TRUNCATE orders; INSERT INTO orders VALUES (2, 'b')")

	type rec struct{ key, value, op string }
	var got []rec
	eventually(t, time.Minute, "three records", func() bool {
		got = got[:0]
		cl := b.Client(t, kgo.ConsumeTopics("tr.public.orders"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		for idle := 0; idle < 2; {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			fs := cl.PollFetches(ctx)
			cancel()
			n := 0
			fs.EachRecord(func(r *kgo.Record) {
				n++
				x := rec{key: string(r.Key), value: string(r.Value)}
				if r.Value == nil {
					x.value = "<null>"
				}
				for _, h := range r.Headers {
					if h.Key == "cdcrelay.op" {
						x.op = string(h.Value)
					}
				}
				got = append(got, x)
			})
			if n == 0 {
				idle++
			}
		}
		return len(got) >= 3
	})
	// The three records may sit on different partitions: find each.
	var trunc *rec
	inserts := 0
	for i := range got {
		switch {
		case got[i].op == "t":
			trunc = &got[i]
		case strings.Contains(got[i].value, `"op":"c"`):
			inserts++
		}
	}
	if trunc == nil || trunc.key != "{}" || trunc.value != "<null>" || inserts != 2 || len(got) != 3 {
		t.Fatalf("records: %+v; want two inserts and a truncate record with key {}, a null value and cdcrelay.op=t", got)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("SIGTERM exit code %d", code)
	}

	cfg = config("fail")
	p = startRelay(t, cfg, pwEnv...)
	time.Sleep(2 * time.Second)
	before := offsetsState(t, cfg)
	pg.Exec(t, "shop", "TRUNCATE orders")
	state := p.wait(t, time.Minute)
	out := p.out.String()
	if state.ExitCode() == 0 {
		t.Fatalf("relay exited 0 at a TRUNCATE with format.truncate: fail:\n%s", out)
	}
	line := lastLine(out)
	if !strings.Contains(line, `TRUNCATE of "public"."orders"`) || !strings.Contains(line, "format.truncate is fail") {
		t.Fatalf("last line %q does not name the table and the setting", line)
	}
	if after := offsetsState(t, cfg); after != before {
		t.Errorf("stored state moved past the TRUNCATE:\nbefore %s\nafter  %s", before, after)
	}
}
