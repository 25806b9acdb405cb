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
			out = append(out, Row{Key: Key{strconv.Itoa(k)}, Event: &change.Event{Op: change.OpRead, Key: []byte(strconv.Itoa(k)), Source: change.Source{TsMs: int64(v)}}})
		}
	}
	return out, nil
}

// newQueued returns a fresh Snapshotter over integer keys with table "t"
// queued.
func newQueued(t *testing.T, chunkSize int) *Snapshotter {
	t.Helper()
	s, err := New(Config{ChunkSize: chunkSize, MarkPrefix: "p", Compare: func(string) (Compare, error) { return intCompare, nil }}, State{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue("t"); err != nil {
		t.Fatal(err)
	}
	return s
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
	s := newQueued(t, 4)
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
	if _, closed, _ := s.OnMark(Mark{Kind: High, ID: "stale"}); closed {
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
	rows, closed, _ := s.OnMark(high)
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
		rows, _, _ := s2.OnMark(tbl.marks[1])
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

// TestPrefetchKeepsTheRules reads a table with every chunk after the first
// read ahead, while stream changes arrive between one chunk's high watermark
// and the next one's low watermark and inside each window. The rows emitted
// must be what reading the chunks one after the other emits: each key once,
// except the keys changed inside their chunk's window, whose chunk rows are
// dropped; changes outside any window above the last key are dropped.
func TestPrefetchKeepsTheRules(t *testing.T) {
	tbl := &memTable{rows: map[int]int{}}
	for k := 0; k < 20; k++ {
		tbl.rows[k] = 0
	}
	s := newQueued(t, 4)
	ctx := context.Background()
	if err := s.ReadNext(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var changedInWindow []string
	prefetched := 0
	for s.Active() {
		n := len(tbl.marks)
		low, high := tbl.marks[n-2], tbl.marks[n-1]
		if low.Kind != Low || high.Kind != High || low.ID != high.ID {
			t.Fatalf("marks %v", tbl.marks[n-2:])
		}
		if _, _, err := s.OnMark(low); err != nil {
			t.Fatal(err)
		}
		// A change inside the window, to the chunk's second key.
		c := s.cur
		if len(c.rows) > 1 {
			k := c.rows[1].Key
			if !s.Admit("t", k) {
				t.Fatalf("window change of %v dropped", k)
			}
			changedInWindow = append(changedInWindow, k[0])
		}
		rows, closed, err := s.OnMark(high)
		if err != nil || !closed {
			t.Fatalf("closed=%v err=%v", closed, err)
		}
		// Read the next chunk ahead, then send this one's rows.
		s.Prefetch(ctx, tbl)
		if s.pre != nil {
			prefetched++
		}
		for _, r := range rows {
			seen[string(r.Key)]++
		}
		// Between this high watermark and the next low one, a change of a
		// key above the last key is dropped: the next chunk reads it.
		if s.Active() {
			last := s.queue[0].LastKey
			next, _ := strconv.Atoi(last[0])
			if s.Admit("t", Key{strconv.Itoa(next + 1)}) {
				t.Fatal("a change between two chunks above the last key was sent")
			}
		}
		if s.pre != nil {
			<-s.pre.done // the test reads tbl.marks next
		}
	}
	if prefetched == 0 {
		t.Fatal("no chunk was read ahead")
	}
	dropped := map[string]bool{}
	for _, k := range changedInWindow {
		dropped[k] = true
	}
	for k := 0; k < 20; k++ {
		key := strconv.Itoa(k)
		want := 1
		if dropped[key] {
			want = 0
		}
		if seen[key] != want {
			t.Errorf("key %s: %d chunk rows emitted, want %d", key, seen[key], want)
		}
	}
	if len(changedInWindow) == 0 {
		t.Fatal("no window change was made")
	}
	if st := s.State(); len(st.Done) != 1 || st.Done[0] != "t" {
		t.Fatalf("state %+v", st)
	}
}

// TestAbandonWaitsForTheReadAhead checks that Abandon returns only once the
// read ahead has ended, and that its watermarks are ignored afterwards.
func TestAbandonWaitsForTheReadAhead(t *testing.T) {
	tbl := &memTable{rows: map[int]int{1: 0, 2: 0, 3: 0}}
	s := newQueued(t, 1)
	ctx := context.Background()
	if err := s.ReadNext(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	s.OnMark(tbl.marks[0])
	if _, closed, _ := s.OnMark(tbl.marks[1]); !closed {
		t.Fatal("first chunk not closed")
	}
	s.Prefetch(ctx, tbl)
	if !s.InFlight() {
		t.Fatal("no read ahead in flight")
	}
	s.Abandon()
	if s.InFlight() || len(tbl.marks) != 4 {
		t.Fatalf("after Abandon: in flight %v, %d marks written (want 4)", s.InFlight(), len(tbl.marks))
	}
	if _, closed, _ := s.OnMark(tbl.marks[2]); closed || s.InWindow() {
		t.Fatal("the abandoned read ahead's low watermark opened a window")
	}
}

// A TRUNCATE inside a chunk's window drops every row of the chunk; the next
// chunk starts after it as usual, and a TRUNCATE of another table or outside
// the window changes nothing.
func TestTruncateInWindowDropsTheChunk(t *testing.T) {
	tbl := &memTable{rows: map[int]int{}}
	for k := 0; k < 6; k++ {
		tbl.rows[k] = 0
	}
	s := newQueued(t, 2)
	ctx := context.Background()
	read := func() (low, high Mark) {
		t.Helper()
		n := len(tbl.marks)
		if err := s.ReadNext(ctx, tbl); err != nil {
			t.Fatal(err)
		}
		return tbl.marks[n], tbl.marks[n+1]
	}
	close := func(low, high Mark, between func()) []*change.Event {
		t.Helper()
		s.OnMark(low)
		between()
		rows, closed, err := s.OnMark(high)
		if err != nil || !closed {
			t.Fatalf("chunk not closed: %v", err)
		}
		return rows
	}
	s.Truncated("t") // no chunk in flight: nothing to drop
	low, high := read()
	if rows := close(low, high, func() { s.Truncated("other") }); len(rows) != 2 {
		t.Fatalf("a TRUNCATE of another table dropped rows: %d sent, want 2", len(rows))
	}
	low, high = read()
	if rows := close(low, high, func() { s.Truncated("t") }); len(rows) != 0 {
		t.Fatalf("a TRUNCATE in the window left %d rows, want 0", len(rows))
	}
	if got := s.State().Queue[0].LastKey; len(got) != 1 || got[0] != "3" {
		t.Fatalf("last key after the truncated chunk = %v, want [3]", got)
	}
	low, high = read()
	if rows := close(low, high, func() {}); len(rows) != 2 {
		t.Fatalf("the chunk after a truncated one sent %d rows, want 2", len(rows))
	}
}
