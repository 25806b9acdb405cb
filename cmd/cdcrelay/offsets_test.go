package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/offsets"
)

// TestRecordJSONParts: `offsets show --json` prints the record as stored,
// and the table records beside it under "parts" when there are any.
func TestRecordJSONParts(t *testing.T) {
	cp := &change.Checkpoint{Label: "0/16B3748", State: []byte(`{"lsn":"0/16B3748"}`)}
	rec := offsets.NewRecord("shop", cp, "test", time.Unix(1700000000, 0))

	plain, err := recordJSON(rec)
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != string(rec.Encode()) {
		t.Fatalf("without parts the output is not the stored record:\n%s\n%s", plain, rec.Encode())
	}

	rec.Parts = map[string][]byte{
		"table/public.a": []byte(`{"done":true}`),
		"table/public.b": []byte(`not json`),
	}
	out, err := recordJSON(rec)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		SourceID string                     `json:"source_id"`
		State    json.RawMessage            `json:"state"`
		Parts    map[string]json.RawMessage `json:"parts"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if string(got.State) != `{"lsn":"0/16B3748"}` {
		t.Errorf("state = %s", got.State)
	}
	if string(got.Parts["table/public.a"]) != `{"done":true}` || string(got.Parts["table/public.b"]) != `"not json"` {
		t.Errorf("parts = %v", got.Parts)
	}
}
