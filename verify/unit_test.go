package verify

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

func TestEachMember(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, ``},
		{` { "a" : 1 , "b":"x,}\"y" }`, `a=1 b="x,}\"y" `},
		{`{"n":null,"o":{"p":[1,{"q":"]"}]},"e":[]}`, `n=null o={"p":[1,{"q":"]"}]} e=[] `},
		{`{"\u0041b":true}`, `Ab=true `},
	} {
		var b strings.Builder
		err := eachMember([]byte(tc.in), func(name, v []byte) error {
			fmt.Fprintf(&b, "%s=%s ", name, v)
			return nil
		})
		if err != nil || b.String() != tc.want {
			t.Errorf("eachMember(%s) = %q, %v; want %q", tc.in, b.String(), err, tc.want)
		}
	}
	for _, bad := range []string{``, `[1]`, `{"a":1`, `{"a" 1}`, `{"a":"x}`, `{"a":1 "b":2}`} {
		if err := eachMember([]byte(bad), func(_, _ []byte) error { return nil }); err == nil {
			t.Errorf("eachMember(%s) accepted it", bad)
		}
	}
}

func TestLatestRow(t *testing.T) {
	for _, tc := range []struct {
		value  string
		upsert bool
		row    string
		live   bool
	}{
		{`{"before":null,"after":{"id":1},"op":"c"}`, false, `{"id":1}`, true},
		{`{"before":null,"after":{"id":1},"op":"r"}`, false, `{"id":1}`, true},
		{`{"before":{"id":1},"after":null,"op":"d"}`, false, ``, false},
		{``, false, ``, false}, // tombstone
		{`{"id":1}`, true, `{"id":1}`, true},
		{`null`, true, ``, false},
	} {
		var val []byte
		if tc.value != "" {
			val = []byte(tc.value)
		}
		row, live, err := latestRow(val, tc.upsert)
		if err != nil || live != tc.live || live && string(row) != tc.row {
			t.Errorf("latestRow(%s, %v) = %s, %v, %v; want %s, %v", tc.value, tc.upsert, row, live, err, tc.row, tc.live)
		}
	}
	if _, _, err := latestRow([]byte(`not json`), false); err == nil {
		t.Error("latestRow accepted a value that is not JSON")
	}
}

// The hash of a database row equals the hash of its JSON in the topic,
// whatever the member order; a json or jsonb document compares as a
// document, any other column byte for byte.
func TestRowHasher(t *testing.T) {
	ts := change.TableSchema{Columns: []change.ColumnSchema{
		{Name: "id"}, {Name: "doc", SourceType: "jsonb"}, {Name: "txt", SourceType: "text"}, {Name: "n", SourceType: "numeric"},
	}}
	h := newRowHasher(ts)
	row := &change.Row{Names: []string{"id", "doc", "txt", "n"}, Values: [][]byte{
		[]byte("1"), change.String(`{"a": 1, "b": [1, 2]}`), change.String(`{"a": 1}`), []byte("1.50"),
	}}
	db := h.dbRow(row)
	same := []string{
		`{"id":1,"doc":"{\"a\": 1, \"b\": [1, 2]}","txt":"{\"a\": 1}","n":1.50}`,
		`{"n":1.50,"txt":"{\"a\": 1}","doc":"{\"b\":[1,2],\"a\":1}","id":1}`,
		`{"id":1,"doc":"{ \"b\" : [ 1 , 2 ] ,\n \"a\" : 1 }","txt":"{\"a\": 1}","n":1.50}`,
	}
	for _, s := range same {
		got, err := h.topicRow([]byte(s))
		if err != nil || got != db {
			t.Errorf("%s: hash %x, %v; want the database row's %x", s, got, err, db)
		}
		if d, err := h.diff(row, []byte(s)); err != nil || len(d) != 0 {
			t.Errorf("%s: diff %v, %v", s, d, err)
		}
	}
	for _, tc := range []struct{ obj, cols string }{
		{`{"id":1,"doc":"{\"a\": 1, \"b\": [1, 2]}","txt":"{\"a\":1}","n":1.50}`, "txt"},
		{`{"id":1,"doc":"{\"a\": 2, \"b\": [1, 2]}","txt":"{\"a\": 1}","n":1.5}`, "doc n"},
		{`{"id":1,"doc":"{\"a\": 1, \"b\": [1, 2]}","txt":"{\"a\": 1}"}`, "n"},
		{`{"id":1,"doc":"{\"a\": 1, \"b\": [1, 2]}","txt":"{\"a\": 1}","n":1.50,"x":0}`, "x"},
		{`{"id":"1","doc":"{\"a\": 1, \"b\": [1, 2]}","txt":"{\"a\": 1}","n":1.50}`, "id"},
	} {
		got, err := h.topicRow([]byte(tc.obj))
		if err != nil || got == db {
			t.Errorf("%s: same hash as the database row (%v)", tc.obj, err)
		}
		d, err := h.diff(row, []byte(tc.obj))
		var names []string
		for _, c := range d {
			names = append(names, c.name)
		}
		if err != nil || strings.Join(names, " ") != tc.cols {
			t.Errorf("%s: differing columns %v, %v; want %s", tc.obj, names, err, tc.cols)
		}
	}
}

// The sorter yields the same order in memory and spilled to runs, and
// latest keeps the last entry of each key.
func TestSorter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var in []entry
	for i := range 5000 {
		k := rng.IntN(700)
		in = append(in, entry{hash: uint64(k), seq: uint64(i), state: uint64(i + 1), key: []byte(strconv.Itoa(k))})
	}
	want := map[uint64]uint64{}
	for _, e := range in {
		want[e.hash] = e.state
	}
	for _, limit := range []int{1 << 30, 4096} {
		s := newSorter(t.TempDir(), limit)
		for _, e := range in {
			if err := s.add(e); err != nil {
				t.Fatal(err)
			}
		}
		if limit < 1<<30 && len(s.runs) < 10 {
			t.Errorf("limit %d: %d runs", limit, len(s.runs))
		}
		it, err := s.iterate()
		if err != nil {
			t.Fatal(err)
		}
		l := &latest{it: it}
		var hashes []uint64
		for {
			e, ok, err := l.next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if e.state != want[e.hash] || string(e.key) != strconv.Itoa(int(e.hash)) {
				t.Fatalf("limit %d: key %d: state %d key %q, want state %d", limit, e.hash, e.state, e.key, want[e.hash])
			}
			hashes = append(hashes, e.hash)
		}
		if len(hashes) != len(want) || !slices.IsSorted(hashes) {
			t.Errorf("limit %d: %d keys, sorted %v; want %d", limit, len(hashes), slices.IsSorted(hashes), len(want))
		}
		s.close()
	}
}

// keyHistory decides whether a database read taken between two marks agrees
// with a key's records; positions here are plain numbers, M0=10, M1=20.
func TestKeyHistory(t *testing.T) {
	at := func(m int) func(string) bool {
		return func(p string) bool { n, _ := strconv.Atoi(p); return n >= m }
	}
	type rec struct {
		state uint64
		pos   string
	}
	for _, tc := range []struct {
		name string
		recs []rec
		db   uint64
		want bool
	}{
		{"latest equals the database", []rec{{5, ""}, {6, "3"}}, 6, true},
		{"the database read before a change in the window", []rec{{5, ""}, {6, "12"}}, 5, true},
		{"the database read after a change in the window", []rec{{5, "3"}, {6, "12"}, {7, "15"}}, 6, true},
		{"the database read before a change after M1", []rec{{5, "3"}, {6, "25"}}, 5, true},
		{"a state only after M1 is not explained", []rec{{5, "3"}, {6, "25"}, {7, "26"}}, 6, false},
		{"an old state is not explained", []rec{{4, "1"}, {5, "3"}, {6, "12"}}, 4, false},
		{"a forged record after everything", []rec{{5, "3"}, {9, ""}}, 5, false},
		{"a forged record after a newer change", []rec{{5, "3"}, {6, "12"}, {9, ""}}, 5, false},
		{"deleted in the window", []rec{{5, "3"}, {absent, "12"}}, absent, true},
		{"never in the topic", nil, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &keyHistory{ok: map[uint64]bool{}}
			for _, r := range tc.recs {
				h.observe(r.state, r.pos, at(10), at(20))
			}
			if got := h.agrees(tc.db); got != tc.want {
				t.Errorf("agrees(%d) = %v, want %v (%+v)", tc.db, got, tc.want, h)
			}
		})
	}
}

func TestShown(t *testing.T) {
	long := strings.Repeat("é", 100)
	got := shown([]byte(long))
	if !strings.HasSuffix(got, "… (200 bytes)") || len(got) > maxShown+20 {
		t.Errorf("shown: %q", got)
	}
	if shown(nil) != "(absent)" || shown([]byte("x")) != "x" {
		t.Error("shown of short values")
	}
}

func TestProgress(t *testing.T) {
	var b strings.Builder
	v := &verifier{cfg: Config{Progress: &b, ProgressEvery: time.Hour}}
	p := v.progress(change.TableID{Namespace: "public", Name: "orders"}, "rows read", 1000)
	p.add(250)
	p.line("")
	p.add(750)
	p.done()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "verify: public.orders: 250 rows read (") || !strings.Contains(lines[0], ", ~25%, about ") ||
		!strings.HasSuffix(lines[1], "), done") || strings.Contains(lines[1], "%") {
		t.Errorf("progress lines:\n%s", b.String())
	}
}
