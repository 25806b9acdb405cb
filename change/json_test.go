package change

import (
	"encoding/json"
	"regexp"
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

// numberGrammar is RFC 8259's number, for checking IsNumber against.
var numberGrammar = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func TestIsNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "12": true, "12.50": true, "-0.5": true, "1e300": true, "1E+3": true, "2.5e-7": true,
		"": false, "-": false, "00": false, "007": false, "0000012.50": false, "1.": false, ".5": false, "+1": false,
		"1e": false, "1e+": false, "NaN": false, "Infinity": false, "1 ": false, " 1": false, "1.2.3": false, "0x10": false,
	} {
		if got := IsNumber(s); got != want {
			t.Errorf("IsNumber(%q) = %v, want %v", s, got, want)
		}
		if got := IsNumber([]byte(s)); got != want {
			t.Errorf("IsNumber([]byte(%q)) = %v, want %v", s, got, want)
		}
	}
}

func FuzzIsNumber(f *testing.F) {
	for _, s := range []string{"0", "-12.5e+3", "007", "1.", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := numberGrammar.MatchString(s)
		if got := IsNumber(s); got != want {
			t.Fatalf("IsNumber(%q) = %v, want %v", s, got, want)
		}
		if want && !json.Valid([]byte(s)) {
			t.Fatalf("%q matches the grammar but is not JSON", s)
		}
	})
}
