package mysql

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

// TestAddrTextMatchesServer stores INET6, UUID and INET4 values in MariaDB
// and checks that the binlog path's formatting of their bytes is the
// server's own text: every shape of zero run, leading zeros in groups, the
// IPv4-compatible and IPv4-mapped forms, and random values.
func TestAddrTextMatchesServer(t *testing.T) {
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.addrs (id INT AUTO_INCREMENT PRIMARY KEY, ip INET6, u UUID, v4 INET4)")
	rng := rand.New(rand.NewPCG(7, 11))
	var values [][16]byte
	fixed := []string{
		"00000000000000000000000000000000", "00000000000000000000000000000001", "00010000000000000000000000000000",
		"00000000000000000000ffff01020304", "00000000000000000000000001020304", "00000000000000000000ffff00000000",
		"000000000000000000000000ffff0000", "00010000000000010000000000000000", "00010000000100000000000000010000",
		"20010db8000000000000000000000001", "ffffffffffffffffffffffffffffffff", "00000000000000010000000000000000",
		"0000000000000000000000000000ffff", "00000000000000000001ffff01020304",
	}
	for _, h := range fixed {
		var v [16]byte
		hex.Decode(v[:], []byte(h))
		values = append(values, v)
	}
	for range 3000 {
		var v [16]byte
		for w := 0; w < 8; w++ {
			var x uint16
			switch rng.IntN(5) {
			case 0, 1:
				x = 0
			case 2:
				x = uint16(rng.IntN(16))
			case 3:
				x = uint16(rng.IntN(4096))
			default:
				x = uint16(rng.Uint32())
			}
			v[2*w], v[2*w+1] = byte(x>>8), byte(x)
		}
		if rng.IntN(8) == 0 { // the IPv4 forms, with random addresses
			clear(v[:10])
			v[10], v[11] = 0, 0
			if rng.IntN(2) == 0 {
				v[10], v[11] = 0xff, 0xff
			}
		}
		values = append(values, v)
	}
	for lo := 0; lo < len(values); lo += 500 {
		var rows []string
		for _, v := range values[lo:min(lo+500, len(values))] {
			h := hex.EncodeToString(v[:])
			rows = append(rows, fmt.Sprintf("(CAST(UNHEX('%s') AS INET6), CAST(UNHEX('%s') AS UUID), CAST(UNHEX('%s') AS INET4))", h, h, h[24:]))
		}
		m.Exec(t, "INSERT INTO shop.addrs (ip, u, v4) VALUES "+strings.Join(rows, ", "))
	}
	res := m.Exec(t, "SELECT HEX(ip), CAST(ip AS CHAR), HEX(u), CAST(u AS CHAR), HEX(v4), CAST(v4 AS CHAR) FROM shop.addrs ORDER BY id")
	if n := res.Resultset.RowNumber(); n != len(values) {
		t.Fatalf("read %d rows, wrote %d", n, len(values))
	}
	for r := range res.Resultset.RowNumber() {
		for c, format := range []func(dst, raw []byte) []byte{appendInet6, appendUUID, appendInet4} {
			h, _ := res.Resultset.GetString(r, 2*c)
			want, _ := res.Resultset.GetString(r, 2*c+1)
			raw, err := hex.DecodeString(h)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(format(nil, raw)); got != want {
				t.Errorf("%s: formatted %q, the server prints %q", h, got, want)
			}
		}
	}
}

// TestUUIDKeySnapshotAndStream snapshots a table keyed by a MariaDB UUID
// in several chunks, then streams changes to rows the snapshot read: the
// snapshot and the stream must write the same Kafka key for a row, so that
// the stream's update and delete land on the snapshot's row.
func TestUUIDKeySnapshotAndStream(t *testing.T) {
	const rows = 2500
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.ukeys (id UUID PRIMARY KEY, n INT NOT NULL)")
	// Time-based UUIDs (UUID()) and Oracle-style GUIDs (SYS_GUID()).
	m.Exec(t, fmt.Sprintf("INSERT INTO shop.ukeys SELECT IF(seq %% 2, UUID(), SYS_GUID()), seq FROM shop.seq_1_to_%d", rows))
	m.Exec(t, "CREATE TABLE shop.sentinel (id INT PRIMARY KEY)")
	cfg := testConfig(m)
	cfg.Source.SnapshotChunkSize = 1000
	src, _ := newSource(t, cfg)
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	k.start(t, src)
	evs := k.waitFor(t, 60*time.Second, "snapshot", func(evs []*change.Event) bool { return countOps(evs, "ukeys", change.OpRead) == rows })
	var some []string
	for _, e := range evs {
		if e.Op == change.OpRead && len(some) < 2 {
			some = append(some, string(e.Key))
		}
	}
	var id0, id1 struct{ ID string }
	json.Unmarshal([]byte(some[0]), &id0)
	json.Unmarshal([]byte(some[1]), &id1)
	m.Exec(t, "UPDATE shop.ukeys SET n = -1 WHERE id = ?", id0.ID)
	m.Exec(t, "DELETE FROM shop.ukeys WHERE id = ?", id1.ID)
	m.Exec(t, "INSERT INTO shop.sentinel VALUES (1)")
	evs = k.waitFor(t, 30*time.Second, "sentinel", func(evs []*change.Event) bool { return countOps(evs, "sentinel", change.OpCreate) == 1 })

	got := applyEvents(evs, "ukeys")
	res := m.Exec(t, "SELECT CAST(id AS CHAR), n FROM shop.ukeys")
	if len(got) != res.RowNumber() || res.RowNumber() != rows-1 {
		t.Fatalf("folded events hold %d rows, the table %d", len(got), res.RowNumber())
	}
	for i := range res.RowNumber() {
		id, _ := res.GetString(i, 0)
		n, _ := res.GetInt(i, 1)
		key := fmt.Sprintf(`{"id":%q}`, id)
		if want := fmt.Sprintf(`{"id":%q,"n":%d}`, id, n); got[key] != want {
			t.Errorf("key %s: folded %s, the table has %s", key, got[key], want)
		}
	}
}

// TestAlterToUUIDWhileStreaming retypes a BINARY(16) column to UUID while
// the relay streams: rows written after the ALTER come out as the UUID's
// text, although the column keeps its binlog shape.
func TestAlterToUUIDWhileStreaming(t *testing.T) {
	m := startMaria(t)
	m.Exec(t, "CREATE TABLE shop.retype (id INT PRIMARY KEY, b BINARY(16))")
	m.Exec(t, "INSERT INTO shop.retype VALUES (0, NULL)")
	src, _ := newSource(t, testConfig(m))
	if err := src.Setup(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	var k sink
	k.start(t, src)
	k.waitFor(t, 30*time.Second, "snapshot", func(evs []*change.Event) bool { return countOps(evs, "retype", change.OpRead) == 1 })
	const v = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
	m.Exec(t, "INSERT INTO shop.retype VALUES (1, UNHEX(REPLACE('"+v+"', '-', '')))")
	k.waitFor(t, 30*time.Second, "row 1", func(evs []*change.Event) bool { return countOps(evs, "retype", change.OpCreate) == 1 })
	m.Exec(t, "ALTER TABLE shop.retype MODIFY b UUID")
	m.Exec(t, "INSERT INTO shop.retype VALUES (2, '"+v+"')")
	evs := k.waitFor(t, 30*time.Second, "row 2", func(evs []*change.Event) bool { return countOps(evs, "retype", change.OpCreate) == 2 })
	var got []string
	for _, e := range evs {
		if e.Table.Name == "retype" && e.Op == change.OpCreate {
			b, _ := e.After.Get("b")
			got = append(got, string(b))
		}
	}
	if want := []string{`"oO68mZwLTvi7bWu5vTgKEQ=="`, `"` + v + `"`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("b before and after the ALTER: %v, want %v", got, want)
	}
}
