package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLSN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"0/0", 0},
		{"0/16B3748", 0x16B3748},
		{"1/1EAA1E78", 1<<32 | 0x1EAA1E78},
		{"", 0},
		{"garbage", 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := parseLSN(tc.in); got != tc.want {
				t.Fatalf("parseLSN(%q) = %X, want %X", tc.in, got, tc.want)
			}
			if tc.want != 0 && parseLSN(fmtLSN(tc.want)) != tc.want {
				t.Fatalf("fmtLSN does not round-trip %X", tc.want)
			}
		})
	}
}

func TestGTIDSeq(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"0-1-1234", 1234},
		{"1-7-88,0-1-5", 5},
		{"1-7-88", 0},
		{"", 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := gtidSeq(tc.in); got != tc.want {
				t.Fatalf("gtidSeq(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	for _, tc := range []struct {
		p    float64
		want float64
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentile(xs, tc.p); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v, want 0", got)
	}
}

func TestSetLimitsTakesTheSmallest(t *testing.T) {
	var r result
	r.setLimits(50, limit{"source", 100}, limit{"produce", 400}, limit{"unknown", 0})
	if r.LimitName != "source" || *r.LimitRate != 100 || *r.Ratio != 0.5 {
		t.Fatalf("got limit %s %v ratio %v, want source 100 ratio 0.5", r.LimitName, *r.LimitRate, *r.Ratio)
	}
}

// A run replaces only what it measured in results.json: the default
// scenarios at the top level, the scale ones under "scale", and never the
// peers bench's "peers".
func TestWriteResultsKeepsWhatItDidNotMeasure(t *testing.T) {
	file := filepath.Join(t.TempDir(), "results.json")
	if err := os.WriteFile(file, []byte(`{"peers": {"setups": 3}, "command": "old", "results": [{"scenario": "stream (pg)"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func() map[string]json.RawMessage {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		for k, v := range doc {
			var b bytes.Buffer
			if err := json.Compact(&b, v); err != nil {
				t.Fatal(err)
			}
			doc[k] = b.Bytes()
		}
		return doc
	}
	if err := writeResults(file, runDoc{Command: "scale run"}, nil, []result{{Scenario: "many tables (postgres)"}}); err != nil {
		t.Fatal(err)
	}
	doc := read()
	if string(doc["peers"]) != `{"setups":3}` || string(doc["command"]) != `"old"` || !strings.Contains(string(doc["results"]), "stream (pg)") {
		t.Fatalf("a scale run changed what it did not measure: %s", doc)
	}
	if !strings.Contains(string(doc["scale"]), "many tables (postgres)") || !strings.Contains(string(doc["scale"]), "scale run") {
		t.Fatalf("scale = %s", doc["scale"])
	}
	if err := writeResults(file, runDoc{Command: "new"}, []result{{Scenario: "snapshot (pg)"}}, nil); err != nil {
		t.Fatal(err)
	}
	doc = read()
	if string(doc["command"]) != `"new"` || strings.Contains(string(doc["results"]), "stream (pg)") || !strings.Contains(string(doc["scale"]), "many tables") || doc["peers"] == nil {
		t.Fatalf("a default run: %s", doc)
	}
	// A run of one scale scenario keeps the other's last run.
	if err := writeResults(file, runDoc{Command: "big run"}, nil, []result{{Scenario: "big table (mariadb)"}}); err != nil {
		t.Fatal(err)
	}
	var kinds map[string]runDoc
	if err := json.Unmarshal(read()["scale"], &kinds); err != nil {
		t.Fatal(err)
	}
	if kinds["many tables"].Command != "scale run" || kinds["big table"].Command != "big run" || len(kinds["big table"].Results) != 1 {
		t.Fatalf("scale after a big-table run: %+v", kinds)
	}
}

// A results file whose "scale" holds one run of both scale scenarios is
// split by scenario when a run of one of them is written.
func TestWriteResultsSplitsAnOlderScaleRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "results.json")
	old := `{"scale": {"command": "both", "results": [{"scenario": "many tables (postgres)"}, {"scenario": "big table (postgres)"}]}}`
	if err := os.WriteFile(file, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeResults(file, runDoc{Command: "many"}, nil, []result{{Scenario: "many tables (mariadb)"}}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Scale map[string]runDoc }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	many, big := doc.Scale["many tables"], doc.Scale["big table"]
	if many.Command != "many" || len(many.Results) != 1 || many.Results[0].Scenario != "many tables (mariadb)" {
		t.Errorf("many tables: %+v", many)
	}
	if big.Command != "both" || len(big.Results) != 1 || big.Results[0].Scenario != "big table (postgres)" {
		t.Errorf("big table: %+v", big)
	}
}
