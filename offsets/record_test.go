package offsets

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
)

func TestRecordRoundTrip(t *testing.T) {
	cp := &change.Checkpoint{State: []byte(`{"lsn":"0/16B3748","snapshot":{"public.t":{"last_key":{"id":9}}}}`),
		Label: "0/16B3748", SchemaFingerprint: "abc", CommitTime: time.UnixMilli(1700000000000)}
	rec := NewRecord("shop", cp, "1.2.3", time.UnixMilli(1700000000500))
	got, err := Decode(rec.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if string(got.State) != string(cp.State) || got.Position != "0/16B3748" || got.SourceID != "shop" ||
		got.Version != CurrentVersion || got.CommitMs != 1700000000000 || got.WrittenMs != 1700000000500 || got.RelayVersion != "1.2.3" {
		t.Fatalf("round trip lost data: %+v", got)
	}
	kr := rec.KafkaRecord("offs")
	if kr.Topic != "offs" || string(kr.Key) != "shop" || kr.Partition != 0 {
		t.Fatalf("kafka record: %+v", kr)
	}
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, in string
		wantErr  string
		wantNil  bool
	}{
		{name: "tombstone", in: "", wantNil: true},
		{name: "v1", in: `{"v":1,"source_id":"a","state":{"x":1},"relay_version":"x","written_ms":1}`},
		{name: "null state", in: `{"v":1,"source_id":"a","state":null,"relay_version":"x","written_ms":1}`},
		{name: "v2", in: `{"v":2,"source_id":"a","state":{"x":1},"relay_version":"x","written_ms":1}`},
		{name: "newer", in: `{"v":3,"source_id":"a","state":{}}`, wantErr: "newer cdcrelay"},
		{name: "no version", in: `{"source_id":"a"}`, wantErr: "not written by cdcrelay"},
		{name: "garbage", in: `{"v":`, wantErr: "not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in []byte
			if c.in != "" {
				in = []byte(c.in)
			}
			rec, err := Decode(in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				if c.name == "newer" && !errors.Is(err, ErrNewerVersion) {
					t.Fatalf("not ErrNewerVersion: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (rec == nil) != c.wantNil {
				t.Fatalf("rec = %+v", rec)
			}
			if c.name == "null state" && rec.State != nil {
				t.Fatalf("null state decoded as %s", rec.State)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"source_id":"a","state":{"x":1}}`))
	f.Add([]byte(`{"v":9}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := Decode(b)
		if err != nil || rec == nil {
			return
		}
		again, err := Decode(rec.Encode())
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if again.Version != rec.Version || again.SourceID != rec.SourceID {
			t.Fatalf("round trip changed the record")
		}
	})
}
