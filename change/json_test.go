package change

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\`, "tab\tnl\n", "ctl\x01\x1f", "<&>", "ünï😀", "bad\xffutf8", "ls\u2028ps\u2029"} {
		t.Run(s, func(t *testing.T) {
			want, _ := json.Marshal(s)
			if got := String(s); string(got) != string(want) {
				t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
			}
			if got := AppendBytes([]byte("x"), []byte(s)); string(got) != "x"+string(want) {
				t.Fatalf("AppendBytes(%q) = %s, want x%s", s, got, want)
			}
		})
	}
}

func TestEncodeKeyIsCanonical(t *testing.T) {
	got := EncodeKey([]string{"id", "Region \"x\""}, [][]byte{[]byte("42"), String("eu")})
	want := `{"id":42,"Region \"x\"":"eu"}`
	if string(got) != want {
		t.Fatalf("EncodeKey = %s, want %s", got, want)
	}
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\x00\xff😀")
	f.Add("\b\f\u2028")
	// Both encoders must produce valid JSON that decodes to what
	// encoding/json's encoding decodes to (invalid UTF-8 becomes U+FFFD in
	// both). The bytes may differ: a control character may be written as
	// \b or as \u0008, both valid.
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		var wantBack string
		if err := json.Unmarshal(want, &wantBack); err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string][]byte{"String": String(s), "AppendBytes": AppendBytes(nil, []byte(s))} {
			var back string
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("%s(%q) = %s is not valid JSON: %v", name, s, got, err)
			}
			if back != wantBack {
				t.Fatalf("%s(%q) = %s decodes to %q; encoding/json's %s decodes to %q", name, s, got, back, want, wantBack)
			}
		}
	})
}

// plain8 must agree with the byte-at-a-time test for every byte value in
// every position, next to plain bytes and next to bytes that need escaping
// (a borrow from one byte into the next must not hide or invent one).
func TestPlain8MatchesByteTest(t *testing.T) {
	plain := func(c byte) bool {
		return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	for _, fill := range []byte{'a', 0x00, 0x1f, 0x20, '"', 0x7f, 0x80, 0xff} {
		for pos := 0; pos < 8; pos++ {
			for c := 0; c < 256; c++ {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				want := true
				for _, b := range w {
					want = want && plain(b)
				}
				if got := plain8(load64(w[:], 0)); got != want {
					t.Fatalf("plain8(% x) = %v, want %v", w, got, want)
				}
			}
		}
	}
}

func BenchmarkAppendBytes(b *testing.B) {
	for _, c := range []struct{ name, s string }{
		{"ascii200", strings.Repeat("a plain note of text ", 10)},
		{"short", "pending"},
		{"escapes", strings.Repeat(`say "hi" <b>`, 16)},
	} {
		b.Run(c.name, func(b *testing.B) {
			src, dst := []byte(c.s), make([]byte, 0, 8*len(c.s))
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				dst = AppendBytes(dst[:0], src)
			}
		})
	}
}
