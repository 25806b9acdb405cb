package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/metrics"
)

// committed plays the offsets topic: the state and parts of every
// checkpoint taken so far.
type committed struct{ res change.Resume }

func (c *committed) take(t *testing.T, s *Snapshotter) State {
	t.Helper()
	st, parts := s.Checkpoint()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	c.res.Apply(&change.Checkpoint{State: b, Parts: parts})
	return st
}

// restore builds a Snapshotter from what was committed, as a restarted
// source does.
func (c *committed) restore(t *testing.T, inlineMax int) *Snapshotter {
	t.Helper()
	var st State
	if err := json.Unmarshal(c.res.State, &st); err != nil {
		t.Fatal(err)
	}
	whole, err := Restore(st, c.res.Parts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{ChunkSize: 4, MarkPrefix: "p", InlineMax: inlineMax,
		Compare: func(string) (Compare, error) { return intCompare, nil }}, whole)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// snapOneChunk reads and closes one chunk of the first queued table.
func snapOneChunk(t *testing.T, s *Snapshotter, tbl *memTable) {
	t.Helper()
	if err := s.ReadNext(context.Background(), tbl); err != nil {
		t.Fatal(err)
	}
	n := len(tbl.marks)
	s.OnMark(tbl.marks[n-2])
	if _, closed, err := s.OnMark(tbl.marks[n-1]); err != nil || !closed {
		t.Fatalf("chunk not closed: %v", err)
	}
}

func queueNames(s *Snapshotter) []string {
	var out []string
	for _, p := range s.queue {
		out = append(out, p.Table)
	}
	return out
}

// A few tables stay inline: no parts, and the state lists them all, as
// before tables could go apart.
func TestSmallStateStaysInline(t *testing.T) {
	s := newQueued(t, 4)
	if err := s.Enqueue("u"); err != nil {
		t.Fatal(err)
	}
	tbl := &memTable{rows: map[int]int{0: 0, 1: 0}}
	snapOneChunk(t, s, tbl)
	st, parts := s.Checkpoint()
	if parts != nil || st.Apart || len(st.Done) != 1 || st.Done[0] != "t" || len(st.Queue) != 1 || st.Queue[0].Table != "u" {
		t.Fatalf("state %+v, parts %v", st, parts)
	}
}

// Past InlineMax every table goes into a part of its own, the state keeps
// only the table in progress, whatever the number of tables finished, and a
// restore gives back the same queue, order and finished tables.
func TestManyTablesGoApartAndRestore(t *testing.T) {
	const n = 2000
	s, err := New(Config{ChunkSize: 4, MarkPrefix: "p", Compare: func(string) (Compare, error) { return intCompare, nil }}, State{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := s.Enqueue(fmt.Sprintf("public.table_%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var c committed
	st := c.take(t, s)
	if !st.Apart || st.Waiting != n || len(c.res.Parts) != n {
		t.Fatalf("after queueing: apart=%v waiting=%d parts=%d", st.Apart, st.Waiting, len(c.res.Parts))
	}
	small := &memTable{rows: map[int]int{0: 0, 1: 0, 2: 0}}
	big := 0
	for i := range n - 1 {
		snapOneChunk(t, s, small)
		st := c.take(t, s)
		b, _ := json.Marshal(st)
		big = max(big, len(b))
		if st.Finished != i+1 || st.Waiting != n-i-1 {
			t.Fatalf("table %d: finished=%d waiting=%d", i, st.Finished, st.Waiting)
		}
	}
	if big > 256 {
		t.Fatalf("state grew to %d bytes with the tables finished", big)
	}
	// The last table halfway: its progress is in the state.
	last := &memTable{rows: map[int]int{}}
	for k := range 10 {
		last.rows[k] = 0
	}
	snapOneChunk(t, s, last)
	st = c.take(t, s)
	if len(st.Queue) != 1 || st.Queue[0].LastKey[0] != "3" {
		t.Fatalf("progress of the table being read: %+v", st.Queue)
	}

	r := c.restore(t, 0)
	if !reflect.DeepEqual(queueNames(r), queueNames(s)) || r.queue[0].Rows != 4 || r.queue[0].LastKey[0] != "3" {
		t.Fatalf("restored queue %v %+v, want %v", queueNames(r), r.queue[0], queueNames(s))
	}
	if len(r.done) != n-1 || !r.Known("public.table_00000") || r.Queued("public.table_00000") {
		t.Fatalf("restored %d finished tables", len(r.done))
	}
	// The restored one goes on where the other stopped, writing only what
	// changes.
	snapOneChunk(t, r, last)
	snapOneChunk(t, r, last)
	st, parts := r.Checkpoint()
	if st.Waiting != 0 || st.Finished != n || len(parts) != 1 || string(parts[0].Value) != `{"done":true}` {
		t.Fatalf("state %+v, parts %+v", st, parts)
	}
}

// A re-snapshot of a finished table queues it again behind the others, and
// a forgotten table's part is deleted.
func TestApartRequeueAndForget(t *testing.T) {
	s, err := New(Config{ChunkSize: 4, MarkPrefix: "p", InlineMax: 1, Compare: func(string) (Compare, error) { return intCompare, nil }}, State{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range []string{"a", "b", "c"} {
		if err := s.Enqueue(tb); err != nil {
			t.Fatal(err)
		}
	}
	var c committed
	c.take(t, s)
	snapOneChunk(t, s, &memTable{rows: map[int]int{0: 0}})
	c.take(t, s)
	if err := s.Enqueue("a"); err != nil {
		t.Fatal(err)
	}
	s.Forget("c")
	c.take(t, s)
	if _, ok := c.res.Parts[PartPrefix+"c"]; ok {
		t.Fatal("the forgotten table's part is still there")
	}
	r := c.restore(t, 1)
	if got := queueNames(r); !reflect.DeepEqual(got, []string{"b", "a"}) || len(r.done) != 0 {
		t.Fatalf("restored queue %v, done %v", got, r.doneList)
	}
}

// A state written inline by an earlier version, with every finished table
// listed, loads as it is; past InlineMax its tables go apart with the first
// checkpoint, all at once.
func TestInlineStateFromEarlierVersion(t *testing.T) {
	st := State{Queue: []Progress{{Table: "x", LastKey: Key{"7"}, Rows: 8, Chunks: 2}, {Table: "y"}}}
	for i := range 100 {
		st.Done = append(st.Done, fmt.Sprintf("public.done_%03d", i))
	}
	whole, err := Restore(st, map[string][]byte{PartPrefix + "ignored": []byte(`{"done":true}`)})
	if err != nil || !reflect.DeepEqual(whole, st) {
		t.Fatalf("inline state changed by Restore: %v", err)
	}
	s, err := New(Config{ChunkSize: 4, MarkPrefix: "p", Compare: func(string) (Compare, error) { return intCompare, nil }}, whole)
	if err != nil {
		t.Fatal(err)
	}
	var c committed
	got := c.take(t, s)
	if !got.Apart || len(c.res.Parts) != 102 || len(got.Queue) != 1 || got.Queue[0].LastKey[0] != "7" {
		t.Fatalf("state %+v with %d parts", got, len(c.res.Parts))
	}
	r := c.restore(t, 0)
	if !reflect.DeepEqual(queueNames(r), []string{"x", "y"}) || len(r.done) != 100 || r.queue[0].Rows != 8 {
		t.Fatalf("restored %v, %d done", queueNames(r), len(r.done))
	}
	if q, f := CountParts(c.res.Parts); q != 2 || f != 100 {
		t.Fatalf("CountParts = %d queued, %d finished", q, f)
	}
}

func TestRestoreRefusesABadPart(t *testing.T) {
	if _, err := Restore(State{Apart: true}, map[string][]byte{PartPrefix + "t": []byte("{")}); err == nil {
		t.Fatal("a part that is not JSON was accepted")
	}
}

// The seconds-left gauge is the estimate over the rate while a table is
// read, and 0 once it is done.
func TestSecondsLeftGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	s, err := New(Config{ChunkSize: 4, MarkPrefix: "p", Metrics: m, Compare: func(string) (Compare, error) { return intCompare, nil }}, State{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue("t"); err != nil {
		t.Fatal(err)
	}
	tbl := &memTable{rows: map[int]int{}}
	for k := range 10 {
		tbl.rows[k] = 0
	}
	left := func() float64 {
		var g dto.Metric
		if err := m.SnapshotSecondsLeft.WithLabelValues("t").Write(&g); err != nil {
			t.Fatal(err)
		}
		return g.GetGauge().GetValue()
	}
	time.Sleep(5 * time.Millisecond) // a rate over a measurable time
	snapOneChunk(t, s, tbl)
	if l := left(); l <= 0 {
		t.Fatalf("after 4 of 10 rows: %v seconds left, want > 0", l)
	}
	snapOneChunk(t, s, tbl)
	snapOneChunk(t, s, tbl)
	if l := left(); l != 0 {
		t.Fatalf("done: %v seconds left, want 0", l)
	}
}
