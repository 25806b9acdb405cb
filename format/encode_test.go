package format

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func fixedNow() time.Time { return time.UnixMilli(1700000000123) }

func row(kv ...string) *change.Row {
	r := &change.Row{}
	for i := 0; i < len(kv); i += 2 {
		r.Names = append(r.Names, kv[i])
		if kv[i+1] == "<absent>" {
			r.Values = append(r.Values, nil)
		} else {
			r.Values = append(r.Values, []byte(kv[i+1]))
		}
	}
	return r
}

func pgEvent(op change.Op, before, after *change.Row) *change.Event {
	return &change.Event{
		Table: change.TableID{Namespace: "public", Name: "orders"}, Op: op,
		Key: []byte(`{"id":1}`), Before: before, After: after,
		Source: change.Source{Connector: "postgresql", Name: "shop", DB: "shop", Schema: "public",
			Table: "orders", TsMs: 1699999999000, LSN: 23456789, TxID: 771},
		Position: []byte("0/165EC15"),
	}
}

func mysqlEvent(op change.Op, before, after *change.Row) *change.Event {
	return &change.Event{
		Table: change.TableID{Namespace: "shop", Name: "orders"}, Op: op,
		Key: []byte(`{"id":1}`), Before: before, After: after,
		Source: change.Source{Connector: "mysql", Name: "shop", DB: "shop", Table: "orders",
			TsMs: 1699999999000, File: "mariadb-bin.000002", Pos: 4711, GTID: "0-1-99", ServerID: 1, Thread: 12},
	}
}

// truncateEvent is ev as a source sends a TRUNCATE: no key, no rows.
func truncateEvent(ev *change.Event) *change.Event {
	ev.Key = nil
	return ev
}

func TestEncodeGolden(t *testing.T) {
	full := row("id", "1", "note", `"a \"quoted\" note"`, "amount", "12.50", "big", "<absent>", "gone", "null")
	cases := []struct {
		name string
		opt  Options
		ev   *change.Event
	}{
		{"pg_insert", Options{Value: DebeziumJSON}, pgEvent(change.OpCreate, nil, full)},
		{"pg_update", Options{Value: DebeziumJSON}, pgEvent(change.OpUpdate, row("id", "1", "note", `"old"`), full)},
		{"pg_delete_tombstone", Options{Value: DebeziumJSON, Tombstones: true, Headers: true}, pgEvent(change.OpDelete, full, nil)},
		{"pg_snapshot_read", Options{Value: DebeziumJSON}, func() *change.Event {
			e := pgEvent(change.OpRead, nil, full)
			e.Source.Snapshot = change.SnapshotLast
			return e
		}()},
		{"mysql_insert", Options{Value: DebeziumJSON}, mysqlEvent(change.OpCreate, nil, full)},
		{"upsert_insert", Options{Value: Upsert, Tombstones: true}, pgEvent(change.OpCreate, nil, full)},
		{"upsert_delete", Options{Value: Upsert, Tombstones: true}, pgEvent(change.OpDelete, full, nil)},
		{"pg_truncate", Options{Value: DebeziumJSON, Tombstones: true, Headers: true}, truncateEvent(pgEvent(change.OpTruncate, nil, nil))},
		{"mysql_truncate_no_headers", Options{Value: DebeziumJSON, Tombstones: true}, truncateEvent(mysqlEvent(change.OpTruncate, nil, nil))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.TopicPrefix = "shop"
			tc.opt.Version = "test"
			tc.opt.Now = fixedNow
			recs := NewEncoder(tc.opt).Append(nil, tc.ev)
			// The records own their bytes: the source may reuse its event.
			for i := range tc.ev.Key {
				tc.ev.Key[i] = 'X'
			}
			for i := range tc.ev.Position {
				tc.ev.Position[i] = 'X'
			}
			var out bytes.Buffer
			for _, r := range recs {
				if !r.Timestamp.Equal(fixedNow()) {
					t.Fatalf("record timestamp %v, want the encoder's clock %v", r.Timestamp, fixedNow())
				}
				out.WriteString("topic: " + r.Topic + "\nkey: " + string(r.Key) + "\n")
				for _, h := range r.Headers {
					out.WriteString("header: " + h.Key + "=" + string(h.Value) + "\n")
				}
				if r.Value == nil {
					out.WriteString("value: <null>\n")
					continue
				}
				if !json.Valid(r.Value) {
					t.Fatalf("value is not JSON: %s", r.Value)
				}
				var pretty bytes.Buffer
				_ = json.Indent(&pretty, r.Value, "", "  ")
				out.WriteString("value: " + pretty.String() + "\n")
			}
			golden(t, filepath.Join("testdata", tc.name+".golden"), out.Bytes())
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestTopicEscapingIsInjective(t *testing.T) {
	cases := map[string]change.TableID{
		"shop.public.orders":        {Namespace: "public", Name: "orders"},
		"shop.public.Order-20Items": {Namespace: "public", Name: "Order Items"},
		"shop.public.a-2eb":         {Namespace: "public", Name: "a.b"},
		"shop.public.a_b":           {Namespace: "public", Name: "a_b"},
		"shop.public.x-2dy":         {Namespace: "public", Name: "x-y"},
		"shop.my-2eschema.t":        {Namespace: "my.schema", Name: "t"},
		"shop.public.-c3-bcber":     {Namespace: "public", Name: "über"},
		"shop.public.-22select-22":  {Namespace: "public", Name: `"select"`},
		"shop.public.a-2d2eb":       {Namespace: "public", Name: "a-2eb"},
	}
	seen := map[string]change.TableID{}
	for want, id := range cases {
		got := Topic("shop", id)
		if got != want {
			t.Errorf("Topic(%q) = %q, want %q", id, got, want)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("%v and %v both map to %q", prev, id, got)
		}
		seen[got] = id
	}
	long := Topic("shop", change.TableID{Namespace: "public", Name: string(bytes.Repeat([]byte("é"), 200))})
	if len(long) != maxTopicLen {
		t.Errorf("long topic has length %d, want %d", len(long), maxTopicLen)
	}
}

func BenchmarkEncodeDebezium(b *testing.B) {
	enc := NewEncoder(Options{Value: DebeziumJSON, TopicPrefix: "shop", Version: "bench", Tombstones: true, Headers: true})
	ev := pgEvent(change.OpUpdate, row("id", "1", "note", `"before"`, "amount", "1.00"),
		row("id", "1", "note", `"a note of about forty bytes in length.."`, "amount", "12.50", "created", `"2024-01-31 12:34:56.123456"`))
	recs := make([]*kgo.Record, 0, 2)
	b.ReportAllocs()
	for b.Loop() {
		recs = enc.Append(recs[:0], ev)
	}
}

// A row its source wrote with change.ObjectWriter encodes to the same bytes
// as the same row written column by column, absent columns and names that
// need escaping included.
func TestAppendRowUsesSourceJSON(t *testing.T) {
	names := []string{"id", `odd "name"`, "gone", "note"}
	vals := [][]byte{[]byte("7"), change.Null, nil, change.String("x\ny")}
	keys := change.ObjectKeys(names)
	var w change.ObjectWriter
	w.Open(make([]byte, 0, 4)) // small, so that the buffer moves
	got := make([][]byte, len(vals))
	for i, v := range vals {
		if v == nil {
			continue
		}
		m := w.Key(keys[i])
		w.B = append(w.B, v...)
		got[i] = w.Value(m)
	}
	built := &change.Row{Names: names, Values: got, JSON: w.Close()}
	plain := &change.Row{Names: names, Values: vals}
	want := AppendRow(nil, plain)
	if string(built.JSON) != string(want) {
		t.Fatalf("ObjectWriter wrote %s, want %s", built.JSON, want)
	}
	if enc := AppendRow([]byte("x"), built); string(enc) != "x"+string(want) {
		t.Fatalf("AppendRow = %s, want x%s", enc, want)
	}
	for i := range vals {
		if string(got[i]) != string(vals[i]) || (got[i] == nil) != (vals[i] == nil) {
			t.Fatalf("value %d = %q, want %q", i, got[i], vals[i])
		}
	}
}
