package snapshot

import (
	"testing"

	"github.com/cdcrelay/cdcrelay/change"
)

// Memories hands a chunk's memory out again only once a position passed
// after its rows is acked, keeps at most maxFreeMemories, and forgets all
// on Drop.
func TestMemoriesReuseOnlyAckedChunks(t *testing.T) {
	var m Memories
	a := m.Get(0)
	b := m.Get(0)
	if a == b || m.Made != 2 {
		t.Fatalf("two Gets: same memory %v, %d made", a == b, m.Made)
	}
	row := a.Bytes.Append([]byte("row of chunk a"))
	m.Sent(a)
	m.Sent(nil) // a dialect without memory
	if c := m.Get(100); c == a {
		t.Fatal("a chunk was reused before any position passed its rows")
	} else {
		m.Put(c)
	}
	m.Passed(50)
	m.Sent(b)
	if c := m.Get(49); c == a || c == b {
		t.Fatal("a chunk was reused before its position was acked")
	}
	if string(row) != "row of chunk a" {
		t.Fatal("the rows of a chunk not acked were overwritten")
	}
	m.Passed(60)
	got := map[*change.Alloc]bool{m.Get(60): true, m.Get(60): true}
	if !got[a] || !got[b] {
		t.Fatal("acked chunks were not reused")
	}
	if m.Made != 3 {
		t.Fatalf("%d memories made, want 3", m.Made)
	}
	for range 5 {
		m.Put(new(change.Alloc))
	}
	if len(m.free) != maxFreeMemories {
		t.Fatalf("%d free memories kept, want %d", len(m.free), maxFreeMemories)
	}
	m.Sent(a)
	m.Drop()
	if m.Holding() {
		t.Fatal("Drop kept memory")
	}
}
