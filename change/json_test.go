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
	f.Fuzz(func(t *testing.T, s string) {
		var back string
		if err := json.Unmarshal(String(s), &back); err != nil {
			t.Fatalf("String(%q) is not valid JSON: %v", s, err)
		}
		want, _ := json.Marshal(s)
		if string(String(s)) != string(want) {
			t.Fatalf("String(%q) = %s, encoding/json gives %s", s, String(s), want)
		}
		if got := AppendBytes(nil, []byte(s)); string(got) != string(want) {
			t.Fatalf("AppendBytes(%q) = %s, encoding/json gives %s", s, got, want)
		}
	})
}
