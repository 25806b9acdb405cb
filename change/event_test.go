package change

import (
	"errors"
	"reflect"
	"testing"
)

// A clone equals the event and keeps its bytes when the event's memory is
// overwritten.
func TestEventCloneSharesNoMemory(t *testing.T) {
	names := []string{"id", "note"}
	ev := &Event{
		Table: TableID{Namespace: "public", Name: "t"},
		Op:    OpUpdate,
		Key:   []byte(`{"id":1}`),
		Before: &Row{Names: names, Values: [][]byte{[]byte("1"), nil},
			JSON: []byte(`{"id":1}`)},
		After: &Row{Names: names, Values: [][]byte{[]byte("1"), []byte(`"x"`)},
			JSON: []byte(`{"id":1,"note":"x"}`)},
		Source:   Source{Connector: "postgresql", Name: "src", DB: "db", Schema: "public", Table: "t", LSN: 9},
		Position: []byte("0/9"),
	}
	c := ev.Clone()
	if !reflect.DeepEqual(c, ev) {
		t.Fatalf("clone %+v differs from %+v", c, ev)
	}
	want := ev.Clone()
	for _, b := range [][]byte{ev.Key, ev.Position, ev.Before.JSON, ev.After.JSON, ev.After.Values[1], ev.Before.Values[0]} {
		for i := range b {
			b[i] = '#'
		}
	}
	ev.After.Values[0] = nil
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("clone changed with the event: %+v", c)
	}
	if (*Row)(nil).Clone() != nil {
		t.Fatal("a nil row cloned to a row")
	}
}

// SendRuns sends every event once, in order, in runs of at most MaxRun, and
// stops at the first error.
func TestSendRuns(t *testing.T) {
	evs := make([]*Event, 2*MaxRun+5)
	for i := range evs {
		evs[i] = &Event{Op: OpRead}
	}
	var got []*Event
	var sizes []int
	err := SendRuns(evs, func(m Message) error {
		if m.Event != nil || m.Checkpoint != nil || cap(m.Events) != len(m.Events) {
			t.Fatalf("a run message %+v: only Events, with no room to append", m)
		}
		sizes = append(sizes, len(m.Events))
		got = append(got, m.Events...)
		return nil
	})
	if err != nil || !reflect.DeepEqual(sizes, []int{MaxRun, MaxRun, 5}) {
		t.Fatalf("runs of %v (err %v), want %d, %d, 5", sizes, err, MaxRun, MaxRun)
	}
	for i := range evs {
		if got[i] != evs[i] {
			t.Fatalf("event %d out of order", i)
		}
	}
	calls := 0
	stop := errors.New("stop")
	if err := SendRuns(evs, func(Message) error { calls++; return stop }); err != stop || calls != 1 {
		t.Fatalf("after an error: %d calls, err %v; want 1 call and the error", calls, err)
	}
	if err := SendRuns(nil, func(Message) error { t.Fatal("sent an empty run"); return nil }); err != nil {
		t.Fatal(err)
	}
}
