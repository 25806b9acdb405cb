package snapshot

import (
	"context"
	"strconv"
	"testing"

	"github.com/cdcrelay/cdcrelay/change"
)

// memTable is an in-memory table with integer keys, standing in for a
// database in the algorithm's unit test.
type memTable struct {
	rows  map[int]int // key -> version
	marks []Mark
}

func (m *memTable) Estimate(context.Context, string) (int64, error) { return int64(len(m.rows)), nil }

func (m *memTable) WriteMark(_ context.Context, mk Mark) error {
	m.marks = append(m.marks, mk)
	return nil
}

func (m *memTable) ReadChunk(_ context.Context, _ string, after Key, limit int) ([]Row, error) {
	from := -1
	if after != nil {
		from, _ = strconv.Atoi(after[0])
	}
	var out []Row
	for k := from + 1; k < 1000 && len(out) < limit; k++ {
		if v, ok := m.rows[k]; ok {
			out = append(out, Row{Key: Key{strconv.Itoa(k)}, Event: &change.Event{Op: change.OpRead, Key: []byte(strconv.Itoa(v))}})
		}
	}
	return out, nil
}

func intCompare(a, b Key) int {
	x, _ := strconv.Atoi(a[0])
	y, _ := strconv.Atoi(b[0])
	return x - y
}

func TestWindowDropsChangedKeysAndFiltersStream(t *testing.T) {
	tbl := &memTable{rows: map[int]int{}}
	for k := 0; k < 10; k++ {
		tbl.rows[k] = 0
	}
	s, err := New(Config{ChunkSize: 4, MarkPrefix: "p", Compare: func(string) (Compare, error) { return intCompare, nil }}, State{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue("t"); err != nil {
		t.Fatal(err)
	}
	if s.Admit("t", Key{"0"}) {
		t.Fatal("a key not yet covered must be dropped")
	}
	if s.Admit("other", Key{"0"}) != true {
		t.Fatal("tables outside the snapshot pass")
	}
	ctx := context.Background()
	if err := s.ReadNext(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	low, high := tbl.marks[0], tbl.marks[1]
	if _, closed := s.OnMark(Mark{Kind: High, ID: "stale"}); closed {
		t.Fatal("a foreign mark closed the chunk")
	}
	s.OnMark(low)
	if !s.InWindow() {
		t.Fatal("window not open after the low mark")
	}
	if !s.Admit("t", Key{"2"}) { // inside the chunk range (keys 0..3)
		t.Fatal("a window change inside the chunk must be sent")
	}
	if s.Admit("t", Key{"7"}) {
		t.Fatal("a window change beyond the chunk must be dropped")
	}
	rows, closed := s.OnMark(high)
	if !closed || len(rows) != 3 {
		t.Fatalf("closed=%v rows=%d, want 3 rows (key 2 dropped)", closed, len(rows))
	}
	st := s.State()
	if len(st.Queue) != 1 || st.Queue[0].LastKey[0] != "3" || st.Queue[0].Rows != 4 || st.Queue[0].Chunks != 1 {
		t.Fatalf("state %+v", st)
	}
	if !s.Admit("t", Key{"3"}) || s.Admit("t", Key{"4"}) {
		t.Fatal("after the chunk, keys <= 3 pass and keys > 3 are dropped")
	}
	// Restore from state and finish.
	s2, _ := New(Config{ChunkSize: 4, MarkPrefix: "p", Compare: func(string) (Compare, error) { return intCompare, nil }}, st)
	var last *change.Event
	for s2.Active() {
		tbl.marks = nil
		if err := s2.ReadNext(ctx, tbl); err != nil {
			t.Fatal(err)
		}
		s2.OnMark(tbl.marks[0])
		rows, _ := s2.OnMark(tbl.marks[1])
		if len(rows) > 0 {
			last = rows[len(rows)-1]
		}
	}
	if last == nil || last.Source.Snapshot != change.SnapshotLast {
		t.Fatal("the final row is not marked last")
	}
	if d := s2.State().Done; len(d) != 1 || d[0] != "t" {
		t.Fatalf("done = %v", d)
	}
}

func TestMarkText(t *testing.T) {
	for _, m := range []Mark{{Low, "slot/ab.1"}, {High, "x:y"}} {
		got, ok := ParseMark(m.String())
		if !ok || got != m {
			t.Fatalf("%v -> %q -> %v", m, m.String(), got)
		}
	}
	if _, ok := ParseMark("heartbeat"); ok {
		t.Fatal("parsed garbage")
	}
}
