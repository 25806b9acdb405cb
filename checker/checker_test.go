package checker

import (
	"testing"
)

func w(table string, key, ver int64) Write { return Write{Row: RowID{table, key}, Version: ver} }
func del(table string, key, ver int64) Write {
	return Write{Row: RowID{table, key}, Version: ver, Delete: true}
}
func ev(key, ver, tx int64) Event { return Event{Row: RowID{"t", key}, Version: ver, TxID: tx} }
func snap(key, ver, tx int64) Event {
	return Event{Row: RowID{"t", key}, Version: ver, TxID: tx, Snapshot: true}
}
func evDel(key, ver int64) Event { return Event{Row: RowID{"t", key}, Version: ver, Delete: true} }

// A small history: key 1 is written by txns 1, 2, 4; txn 3 rolls back;
// key 2 is written by txns 2 and 4 and deleted by 5.
var ledger = []Txn{
	{ID: 1, Committed: true, Writes: []Write{w("t", 1, 1)}},
	{ID: 2, Committed: true, Writes: []Write{w("t", 1, 2), w("t", 2, 1)}},
	{ID: 3, Committed: false, Writes: []Write{w("t", 1, 3)}},
	{ID: 4, Committed: true, Writes: []Write{w("t", 1, 3), w("t", 2, 2)}},
	{ID: 5, Committed: true, Writes: []Write{del("t", 2, 3)}},
}

var final = map[RowID]int64{{"t", 1}: 3}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []Event
		final  map[RowID]int64
		strict int64 // Options.StrictFrom
		want   map[string]int
	}{
		{name: "all delivered in order",
			events: []Event{ev(1, 1, 1), ev(1, 2, 2), ev(2, 1, 2), ev(1, 3, 4), ev(2, 2, 4), evDel(2, 3)},
			want:   map[string]int{}},
		{name: "partitions interleaved differently",
			events: []Event{ev(2, 1, 2), ev(2, 2, 4), ev(1, 1, 1), evDel(2, 3), ev(1, 2, 2), ev(1, 3, 4)},
			want:   map[string]int{}},
		{name: "a middle version lost tears its transaction",
			events: []Event{ev(1, 1, 1), ev(2, 1, 2), ev(1, 3, 4), ev(2, 2, 4), evDel(2, 3)},
			want:   map[string]int{Lost: 1, Torn: 1}},
		{name: "the tail lost",
			events: []Event{ev(1, 1, 1), ev(1, 2, 2), ev(2, 1, 2), ev(1, 3, 4), ev(2, 2, 4)},
			want:   map[string]int{Lost: 1, FinalState: 1}},
		{name: "a whole transaction lost is not torn",
			events: []Event{ev(1, 1, 1), ev(1, 2, 2), ev(2, 1, 2), evDel(2, 3)},
			want:   map[string]int{Lost: 2, FinalState: 1}},
		{name: "a duplicate",
			events: []Event{ev(1, 1, 1), ev(1, 2, 2), ev(1, 2, 2), ev(2, 1, 2), ev(1, 3, 4), ev(2, 2, 4), evDel(2, 3)},
			want:   map[string]int{Duplicated: 1}},
		{name: "a replay of the batch before (duplicates, no reorder)",
			events: []Event{ev(1, 1, 1), ev(1, 2, 2), ev(1, 1, 1), ev(1, 2, 2), ev(1, 3, 4), ev(2, 1, 2), ev(2, 2, 4), evDel(2, 3)},
			want:   map[string]int{Duplicated: 2}},
		{name: "reordered versions",
			events: []Event{ev(1, 2, 2), ev(1, 1, 1), ev(1, 3, 4), ev(2, 1, 2), ev(2, 2, 4), evDel(2, 3)},
			strict: 100,
			want:   map[string]int{NonMonotonic: 1}},
		{name: "a rolled-back write read",
			events: []Event{ev(1, 1, 1), ev(1, 2, 2), ev(1, 3, 3), ev(2, 1, 2), ev(1, 3, 4), ev(2, 2, 4), evDel(2, 3)},
			want:   map[string]int{AbortedRead: 1}},
		{name: "a version nobody wrote",
			events: []Event{ev(1, 1, 1), ev(1, 2, 2), ev(1, 3, 4), ev(1, 4, 9), ev(2, 1, 2), ev(2, 2, 4), evDel(2, 3)},
			want:   map[string]int{Unknown: 1}},
		{name: "snapshot start at any version for an old key",
			events: []Event{snap(1, 2, 2), ev(1, 3, 4), snap(2, 2, 4), evDel(2, 3)},
			strict: 100,
			want:   map[string]int{}},
		{name: "a stream change as the first event of an old key",
			events: []Event{ev(1, 3, 4), ev(2, 2, 4), evDel(2, 3)},
			strict: 100,
			want:   map[string]int{}},
		{name: "an old key deleted before its chunk is never seen",
			events: []Event{snap(1, 3, 4)},
			strict: 100,
			want:   map[string]int{}},
		{name: "an old key still live must be seen",
			events: []Event{ev(2, 2, 4), evDel(2, 3)},
			strict: 100,
			want:   map[string]int{Lost: 3, Torn: 2, FinalState: 1}},
		{name: "a new key must start at version 1",
			events: []Event{ev(1, 2, 2), ev(1, 3, 4), ev(2, 1, 2), ev(2, 2, 4), evDel(2, 3)},
			strict: 1,
			want:   map[string]int{Lost: 1}},
		{name: "final state differs from the topic",
			events: []Event{ev(1, 1, 1), ev(1, 2, 2), ev(2, 1, 2), ev(1, 3, 4), ev(2, 2, 4), evDel(2, 3)},
			final:  map[RowID]int64{{"t", 1}: 3, {"t", 2}: 2},
			want:   map[string]int{FinalState: 1}},
		{name: "a delete read from an aborted transaction",
			events: []Event{ev(1, 1, 1), ev(1, 2, 2), evDel(1, 3), ev(1, 3, 4), ev(2, 1, 2), ev(2, 2, 4), evDel(2, 3)},
			want:   map[string]int{Unknown: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.final
			if f == nil {
				f = final
			}
			rep := Check(ledger, tc.events, f, Options{StrictFrom: tc.strict})
			for _, k := range Kinds {
				if rep.Counts[k] != tc.want[k] {
					t.Errorf("%s = %d, want %d\n%s", k, rep.Counts[k], tc.want[k], rep)
				}
			}
			if rep.OK() != (len(tc.want) == 0) {
				t.Errorf("OK() = %v, report %s", rep.OK(), rep)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name       string
		key, value string
		want       Event
		ok         bool
		err        bool
	}{
		{name: "insert", key: `{"id":7}`, value: `{"before":null,"after":{"id":7,"ver":1,"txid":12},"op":"c"}`,
			want: Event{Row: RowID{"t", 7}, Version: 1, TxID: 12}, ok: true},
		{name: "snapshot", key: `{"id":7}`, value: `{"before":null,"after":{"id":7,"ver":4,"txid":3},"op":"r"}`,
			want: Event{Row: RowID{"t", 7}, Version: 4, TxID: 3, Snapshot: true}, ok: true},
		{name: "delete", key: `{"id":7}`, value: `{"before":{"id":7,"ver":4,"txid":3},"after":null,"op":"d"}`,
			want: Event{Row: RowID{"t", 7}, Version: 5, Delete: true}, ok: true},
		{name: "tombstone", key: `{"id":7}`, value: "", ok: false},
		{name: "delete without before image", key: `{"id":7}`, value: `{"before":null,"after":null,"op":"d"}`, err: true},
		{name: "bad key", key: `{"k":7}`, value: `{"op":"c"}`, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v []byte
			if tc.value != "" {
				v = []byte(tc.value)
			}
			got, ok, err := Decode("t", []byte(tc.key), v)
			if (err != nil) != tc.err || ok != tc.ok || got != tc.want {
				t.Fatalf("Decode = %+v, %v, %v; want %+v, %v, err=%v", got, ok, err, tc.want, tc.ok, tc.err)
			}
		})
	}
}

func TestLedgerText(t *testing.T) {
	ws := []Write{w("a", 1, 3), del("b", 2, 5)}
	got, err := parseWrites(formatWrites(ws) + " big:10-12:1")
	if err != nil {
		t.Fatal(err)
	}
	want := append(ws, w("big", 10, 1), w("big", 11, 1), w("big", 12, 1))
	if len(got) != len(want) {
		t.Fatalf("parseWrites = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("parseWrites[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"a:1", "a:x:1", "a:1-y:1"} {
		if _, err := parseWrites(bad); err == nil {
			t.Errorf("parseWrites(%q) accepted", bad)
		}
	}
}
