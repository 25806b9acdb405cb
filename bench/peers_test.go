package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedianOfTakesTheMiddleRateAndKeepsEveryRun(t *testing.T) {
	runs := []peerResult{
		{System: "a", Rate: f64(30), Note: "third"},
		{System: "a", Error: "crashed"},
		{System: "a", Rate: f64(10), Note: "first"},
		{System: "a", Rate: f64(20), Note: "second"},
	}
	m := medianOf(runs)
	if *m.Rate != 20 || !strings.HasSuffix(m.Note, "second") {
		t.Fatalf("median rate %v note %q, want 20 from the run noted second", *m.Rate, m.Note)
	}
	if len(m.Runs) != 3 || m.Runs[0] != 10 || m.Runs[2] != 30 {
		t.Fatalf("runs kept %v, want the three successful rates in order", m.Runs)
	}
	if !strings.HasPrefix(m.Note, "median of 3 runs (of 4)") {
		t.Fatalf("note %q does not count the failed run", m.Note)
	}
	failed := medianOf([]peerResult{{Error: "boom"}, {Error: "again"}})
	if failed.Error != "boom" {
		t.Fatalf("all runs failed: got error %q, want the first run's", failed.Error)
	}
}

func TestMergeResultsReplacesWhatWasMeasuredAgain(t *testing.T) {
	old := []peerResult{
		{Scenario: "restart", System: sysRelay, DB: "pg", Note: "old restart"},
		{Scenario: "snapshot", System: sysRelay, DB: "pg", Note: "old snapshot"},
		{Scenario: "snapshot", System: sysRelay, DB: "mariadb", Note: "other db"},
	}
	got := mergeResults(old, []peerResult{
		{Scenario: "snapshot", System: sysRelay, DB: "pg", Note: "new snapshot"},
		{Scenario: "snapshot", System: sysDebezium, DB: "pg", Note: "new setup"},
	})
	var notes []string
	for _, r := range got {
		notes = append(notes, r.Note)
	}
	want := "old restart,new snapshot,other db,new setup"
	if strings.Join(notes, ",") != want {
		t.Fatalf("merged %v, want %s", notes, want)
	}
	if old[1].Note != "old snapshot" {
		t.Fatalf("mergeResults changed its input")
	}
}

func TestPeersWriterKeepsOtherKeysAndEarlierResults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.json")
	earlier := peersDoc{Command: "go run ./bench -peers", Results: []peerResult{{Scenario: "restart", System: sysFlinkCDC, DB: "pg"}},
		Parity: []parityRow{{DB: "pg", Field: "op"}}}
	raw, _ := json.Marshal(earlier)
	if err := os.WriteFile(path, []byte(`{"results":[1,2],"peers":`+string(raw)+`}`), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := newPeersWriter(path, peersDoc{Command: "go run ./bench -peers -only snapshot"}, true)
	if err != nil {
		t.Fatal(err)
	}
	w.add(peerResult{Scenario: "snapshot", System: sysRelay, DB: "pg", Rate: f64(5)})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var all struct {
		Results []int    `json:"results"`
		Peers   peersDoc `json:"peers"`
	}
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	if len(all.Results) != 2 {
		t.Fatalf("the other key was lost: %s", data)
	}
	p := all.Peers
	if len(p.Results) != 2 || p.Results[0].System != sysFlinkCDC || p.Results[1].Scenario != "snapshot" {
		t.Fatalf("peers results %+v, want the earlier restart then the new snapshot", p.Results)
	}
	if len(p.Parity) != 1 || len(p.Commands) != 2 || p.Command != "go run ./bench -peers -only snapshot" {
		t.Fatalf("parity %v, commands %v, command %q", p.Parity, p.Commands, p.Command)
	}
	fresh, err := newPeersWriter(path, peersDoc{Command: "go run ./bench -peers"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh.doc.Results) != 0 || len(fresh.doc.Parity) != 0 {
		t.Fatalf("a full run kept earlier results: %+v", fresh.doc)
	}
}

func TestPeerWantedSelectsScenariosAndSetups(t *testing.T) {
	b := &bench{only: map[string]bool{"snapshot": true}}
	for _, tc := range []struct {
		scenario, system string
		want             bool
	}{
		{"snapshot", sysDebezium, true},
		{"snapshot", sysRelay, true},
		{"restart", sysRelayFlink, false},
		{"stream", sysRelay, false},
	} {
		if got := b.peerWanted(tc.scenario, tc.system); got != tc.want {
			t.Errorf("-only snapshot: peerWanted(%s, %s) = %v", tc.scenario, tc.system, got)
		}
	}
	b.only = map[string]bool{"restart": true, sysRelayFlink: true}
	if !b.peerWanted("restart", sysRelayFlink) || b.peerWanted("restart", sysFlinkCDC) {
		t.Errorf("-only restart,cdcrelay+flink does not select cdcrelay with Flink alone")
	}
	b.only = map[string]bool{"snapshot": true, sysFlinkCDC: true}
	if b.peerWanted("snapshot", sysRelay) || !b.peerWanted("snapshot", sysFlinkCDC) {
		t.Errorf("-only snapshot,flinkcdc does not select Flink CDC alone")
	}
}

func TestRelayFlinkSQLReadsTheRelayTopicFromTheGroupOffsets(t *testing.T) {
	sql := relayFlinkSQL("rf.public.t", "rf_sink", "rf", "127.0.0.1:9092")
	for _, want := range []string{"'topic' = 'rf.public.t'", "'topic' = 'rf_sink'", "'properties.group.id' = 'rf'",
		"'scan.startup.mode' = 'group-offsets'", "'properties.isolation.level' = 'read_committed'", "INSERT INTO sink SELECT * FROM src"} {
		if !strings.Contains(sql, want) {
			t.Errorf("job SQL lacks %s:\n%s", want, sql)
		}
	}
	if strings.Contains(sql, "checkpoint") {
		t.Errorf("job SQL turns on checkpoints:\n%s", sql)
	}
}

func TestMedianRestartTakesTheMedianResume(t *testing.T) {
	run := func(resumeS float64, reread int64, note string) peerResult {
		return peerResult{System: sysFlinkCDC, ResumeMs: f64(resumeS * 1000), RowsReread: i64(reread), Note: note}
	}
	m := medianRestart([]peerResult{run(40, 110000, "slow"), run(18, 100000, "fast"), {Error: "crashed"}, run(25, 120000, "middle")})
	if *m.ResumeMs != 25000 || *m.RowsReread != 120000 {
		t.Fatalf("median run resume %v re-read %v, want 25000 and the same run's 120000", *m.ResumeMs, *m.RowsReread)
	}
	want := "median resume of 3 runs (of 4); resume s per run 18.0, 25.0, 40.0; rows re-read in the same runs 100000, 120000, 110000; middle"
	if m.Note != want {
		t.Fatalf("note %q, want %q", m.Note, want)
	}
	one := run(7, 0, "single")
	if got := medianRestart([]peerResult{one}); got.Note != "single" {
		t.Fatalf("a single run was rewritten: %q", got.Note)
	}
	if runID("rc_x", 1) != "rc_x" || runID("rc_x", 3) != "rc_x_3" {
		t.Fatalf("runID: %q %q", runID("rc_x", 1), runID("rc_x", 3))
	}
}
