package change

import (
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
