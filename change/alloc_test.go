package change

import "testing"

// Alloc.Key builds the same key as EncodeKey, and what Alloc hands out
// keeps its bytes while more is built.
func TestAllocKeyAndText(t *testing.T) {
	var a Alloc
	vals := [][]byte{[]byte("7"), String("eu"), Null}
	names := []string{"region", "id"}
	idx := []int{1, 0}
	want := string(EncodeKey(names, [][]byte{vals[1], vals[0]}))
	key := a.Key(names, idx, vals)
	text := a.Text([]byte("k-1"))
	for i := 0; i < 10000; i++ {
		a.Key(names, idx, [][]byte{[]byte("9"), String("us")})
		a.Text([]byte("other"))
	}
	if string(key) != want || string(key) != `{"region":"eu","id":7}` {
		t.Fatalf("Key = %s, want %s", key, want)
	}
	if text != "k-1" || a.Text(nil) != "" {
		t.Fatalf("Text = %q", text)
	}
}
