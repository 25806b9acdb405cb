package change

import (
	"encoding/json"
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
