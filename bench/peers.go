package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// peersDoc is the "peers" object of results.json.
type peersDoc struct {
	Machine machine `json:"machine"`
	Mode    string  `json:"mode"`
	Broker  string  `json:"broker"`
	// Command is the latest invocation; Commands every one whose results
	// the document still holds (-only replaces only what it ran).
	Command  string            `json:"command"`
	Commands []string          `json:"commands,omitempty"`
	When     string            `json:"when"`
	Versions map[string]string `json:"versions"`
	Results  []peerResult      `json:"results"`
	// Parity lists every field of the change envelope per setup, for the
	// same rows; same is false where the setups differ.
	Parity []parityRow `json:"parity,omitempty"`
}

// peerVersions names what the peers bench runs; deploy/jvm/debezium and
// deploy/jvm/flinkcdc pin the same versions (internal/deploycheck).
var peerVersions = map[string]string{
	"debezium":         "3.6.1.Final on Kafka Connect 4.2.0 standalone (deploy/jvm/debezium)",
	"debezium_mariadb": "debezium-connector-mariadb 3.5.0.Final on Kafka Connect 4.2.0 standalone (deploy/jvm/debezium-mariadb)",
	"debezium-mysql":   "debezium-connector-mysql 3.6.1.Final pointed at MariaDB",
	"flinkcdc":         "com.ververica flink-sql-connector-mysql-cdc / postgres-cdc 2.4.1 on Flink 1.17.2 (deploy/jvm/flinkcdc)",
	"flink_kafka":      "flink-sql-connector-kafka 3.0.0-1.17",
	"checkpointing":    "off for the kill -9 runs; RocksDB incremental every 60 s (10 s with -quick) for the checkpoint size",
}

// runPeers is `go run ./bench -peers`: cdcrelay, Debezium and Flink CDC
// on the same PostgreSQL, MariaDB and Apache Kafka, one after another in
// alternating order. It writes the "peers" key of out and keeps the rest.
func (b *bench) runPeers(ctx context.Context, out string, mach machine) error {
	if b.brokerKind != testenv.KindApache {
		return fmt.Errorf("-peers runs on Apache Kafka only (the peers use Kafka Connect and Flink's Kafka client); drop -broker %s", b.brokerKind)
	}
	if err := b.resolvePeerJars(); err != nil {
		return err
	}
	w, err := newPeersWriter(out, peersDoc{Machine: mach, Mode: map[bool]string{true: "quick", false: "full"}[b.quick],
		Command: "go run ./bench " + strings.Join(os.Args[1:], " "), Versions: peerVersions}, b.only != nil)
	if err != nil {
		return err
	}
	b.env = &testenv.Cleanups{}
	defer b.env.Close()
	if err := b.peerScenarios(ctx, w); err != nil {
		b.env.Fail()
		return err
	}
	fmt.Println(peersTable(w.run))
	fmt.Println(parityTable(w.doc.Parity, []string{sysRelay, sysDebezium, sysFlinkCDC}))
	fmt.Fprintf(os.Stderr, "bench: wrote the peers results into %s\n", out)
	return nil
}

// peersWriter holds the peers document and writes it into path as each
// result comes, so that an interrupted run keeps what it measured. The
// results of earlier invocations stay unless this one measures the same
// scenario, setup and database again.
type peersWriter struct {
	path string
	doc  peersDoc
	run  []peerResult // this invocation's results
}

// newPeersWriter starts from doc; with keep, it keeps the results and the
// field comparison of the "peers" key already in path.
func newPeersWriter(path string, doc peersDoc, keep bool) (*peersWriter, error) {
	all := map[string]json.RawMessage{}
	if data, err := os.ReadFile(path); err == nil && keep {
		if err := json.Unmarshal(data, &all); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if raw, ok := all["peers"]; ok {
		var old peersDoc
		if err := json.Unmarshal(raw, &old); err != nil {
			return nil, fmt.Errorf("%s: peers: %w", path, err)
		}
		doc.Results, doc.Parity = old.Results, old.Parity
		doc.Commands = old.Commands
		if len(doc.Commands) == 0 && old.Command != "" {
			doc.Commands = []string{old.Command}
		}
	}
	if !slices.Contains(doc.Commands, doc.Command) {
		doc.Commands = append(doc.Commands, doc.Command)
	}
	return &peersWriter{path: path, doc: doc}, nil
}

// mergeResults replaces each result of old that rs measures again (same
// scenario, setup and database) in place and appends the others.
func mergeResults(old, rs []peerResult) []peerResult {
	out := slices.Clone(old)
	for _, r := range rs {
		i := slices.IndexFunc(out, func(o peerResult) bool {
			return o.Scenario == r.Scenario && o.System == r.System && o.DB == r.DB
		})
		if i >= 0 {
			out[i] = r
		} else {
			out = append(out, r)
		}
	}
	return out
}

func (w *peersWriter) add(rs ...peerResult) {
	w.run = append(w.run, rs...)
	w.doc.Results = mergeResults(w.doc.Results, rs)
	w.doc.When = time.Now().UTC().Format(time.RFC3339)
	if err := writePeers(w.path, w.doc); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	}
}

// resolvePeerJars resolves the class paths of Debezium, Debezium for
// MariaDB and Flink CDC.
func (b *bench) resolvePeerJars() error {
	var err error
	fmt.Fprintln(os.Stderr, "bench: resolving the peers' jars (deploy/jvm/debezium, deploy/jvm/flinkcdc) ...")
	if b.dbzCP, err = peerJars("debezium"); err != nil {
		return fmt.Errorf("debezium jars: %w", err)
	}
	if b.dbzMariaCP, err = peerJars("debezium-mariadb"); err != nil {
		return fmt.Errorf("debezium-mariadb jars: %w", err)
	}
	if b.flinkCP, err = peerJars("flinkcdc"); err != nil {
		return fmt.Errorf("flinkcdc jars: %w", err)
	}
	return nil
}

// peerScenarios starts the servers and runs each scenario on each
// database: the restart cost, the stream runs, the encoding parity and
// Flink CDC's checkpoint size. A cancel of ctx ends it without an error.
func (b *bench) peerScenarios(ctx context.Context, w *peersWriter) error {
	if err := b.setup(ctx); err != nil {
		return err
	}
	if err := b.startPeerMariaDB(); err != nil {
		return err
	}
	w.doc.Broker = b.broker.Kind + " " + b.broker.Version
	if stopped := b.restartRuns(ctx, w); stopped {
		return nil
	}
	for _, db := range []string{"pg", "mariadb"} {
		w.add(b.snapshotRuns(ctx, db)...)
		w.add(b.streamRuns(ctx, db)...)
		if ctx.Err() != nil {
			return nil
		}
	}
	var parity []parityRow
	for _, db := range []string{"pg", "mariadb"} {
		// With -only, a run of fewer setups would drop the others'
		// columns from the comparison it keeps.
		systems := okSystems(w.run, db)
		if len(systems) < 2 || (b.only != nil && len(systems) < 3) {
			continue
		}
		rows, err := b.encodingParity(ctx, db, b.peerRows, systems)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: encoding parity on %s: %v\n", db, err)
		}
		parity = append(parity, rows...)
	}
	if len(parity) > 0 {
		w.doc.Parity = parity
		w.add()
	}
	for _, db := range []string{"pg", "mariadb"} {
		if !b.peerWanted("checkpoint", sysFlinkCDC) {
			continue
		}
		w.add(b.timed("flinkcdc checkpoint size on "+db, func() peerResult {
			return b.flinkCheckpointSize(ctx, db, b.peerRows)
		}))
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// startPeerMariaDB starts the MariaDB server the peers share, with an
// empty database bench.
func (b *bench) startPeerMariaDB() error {
	my, err := testenv.NewMariaDB(b.env, testenv.MariaConf("innodb_buffer_pool_size = 512M", "max_binlog_size = 1G", "userstat = 1"))
	if err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	b.my = my
	b.myDSN = b.my.DSN("root", "bench")
	c, err := client.Connect(b.my.Addr(), "root", "", "")
	if err == nil {
		_, err = c.Execute("CREATE DATABASE bench")
		c.Close()
	}
	if err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	return nil
}

// restartRuns measures the restart cost of each setup on each database,
// b.peerRuns times each, the order rotating per run and database, and
// keeps the run with the median resume per setup. It reports whether ctx
// ended the runs.
func (b *bench) restartRuns(ctx context.Context, w *peersWriter) (stopped bool) {
	for i, db := range []string{"pg", "mariadb"} {
		systems := []string{sysRelay, sysDebezium, sysFlinkCDC, sysRelayFlink}
		if db == "mariadb" {
			systems = append(systems, sysDebeziumMySQL)
		}
		runs, stopped := b.rotateRuns(ctx, "restart", db, systems, i, func(sys string, run int) peerResult {
			if sys == sysRelayFlink {
				return b.relayFlinkRestart(ctx, db, b.peerRows, run)
			}
			return b.restartCost(ctx, sys, db, b.peerRows, run)
		})
		if stopped {
			return true
		}
		w.add(foldRuns(systems, runs, medianRestart)...)
	}
	return false
}

// writePeers sets the "peers" key of the JSON object in path, keeping its
// other keys.
func writePeers(path string, doc peersDoc) error {
	all := map[string]json.RawMessage{}
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &all); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	all["peers"] = raw
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return nil
}

// peersTable renders the peers results as a markdown table.
func peersTable(rs []peerResult) string {
	var sb strings.Builder
	sb.WriteString("| scenario | system | db | rows | rows re-read | resume (s) | state kept | rows/s | peak RSS MiB | CPU s / 1M | note |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		reread, state := "", ""
		if r.RowsReread != nil {
			reread = fmt.Sprint(*r.RowsReread)
		}
		if r.StateBytes != nil {
			state = fmt.Sprintf("%d B (%s)", *r.StateBytes, r.StateWhat)
		}
		resume := ""
		if r.ResumeMs != nil {
			resume = fmt.Sprintf("%.1f", *r.ResumeMs/1000)
		}
		note := r.Note
		if r.Error != "" {
			note = "FAILED: " + firstLine(r.Error)
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.System, r.DB, r.Rows,
			reread, resume, state, fmtOpt(r.Rate, 0), fmtOpt(r.PeakRSS, 0), fmtOpt(r.CPUPerM, 1), note)
	}
	return sb.String()
}

// peerScenarioNames are the scenarios -only may name with -peers.
var peerScenarioNames = []string{"restart", "stream", "snapshot", "checkpoint"}

// peerWanted applies -only to the peers bench: it may name scenarios
// (peerScenarioNames) and systems (cdcrelay, debezium, debezium-mysql,
// flinkcdc, cdcrelay+flink); an empty kind of filter lets everything of that kind run.
func (b *bench) peerWanted(scenario, system string) bool {
	if b.only == nil {
		return true
	}
	anyScenario := false
	for _, sc := range peerScenarioNames {
		anyScenario = anyScenario || b.only[sc]
	}
	anySystem := b.only[sysRelay] || b.only[sysDebezium] || b.only[sysDebeziumMySQL] || b.only[sysFlinkCDC] || b.only[sysRelayFlink]
	return (!anyScenario || b.only[scenario]) && (!anySystem || b.only[system])
}

// streamRuns measures the streaming rate of cdcrelay and Debezium on db,
// b.peerRuns times each, alternating which goes first, and returns the
// median per setup.
func (b *bench) streamRuns(ctx context.Context, db string) []peerResult {
	systems := []string{sysRelay, sysDebezium}
	runs, _ := b.rotateRuns(ctx, "stream", db, systems, 0, func(sys string, run int) peerResult {
		return b.streamThroughput(ctx, sys, db, b.peerRows, run)
	})
	return foldRuns(systems, runs, medianOf)
}

// rotateRuns measures each of systems on db b.peerRuns times, those that
// -only selects for scenario; run r (from 1) starts with systems[first+r-1]
// and goes round, so that no setup always runs first on a cold machine.
// It returns the runs per setup, and whether ctx ended them.
func (b *bench) rotateRuns(ctx context.Context, scenario, db string, systems []string, first int, measure func(sys string, run int) peerResult) (map[string][]peerResult, bool) {
	runs := map[string][]peerResult{}
	for run := 1; run <= b.peerRuns; run++ {
		for j := range systems {
			sys := systems[(first+run-1+j)%len(systems)]
			if !b.peerWanted(scenario, sys) {
				continue
			}
			runs[sys] = append(runs[sys], b.timed(fmt.Sprintf("%s %d: %s on %s", scenario, run, sys, db), func() peerResult {
				return measure(sys, run)
			}))
			if ctx.Err() != nil {
				return runs, true
			}
		}
	}
	return runs, false
}

// foldRuns folds the runs of each setup that ran into one result, in the
// order of systems.
func foldRuns(systems []string, runs map[string][]peerResult, fold func([]peerResult) peerResult) []peerResult {
	var out []peerResult
	for _, sys := range systems {
		if len(runs[sys]) > 0 {
			out = append(out, fold(runs[sys]))
		}
	}
	return out
}

// timed runs one peers measurement with progress lines on stderr.
func (b *bench) timed(what string, run func() peerResult) peerResult {
	fmt.Fprintf(os.Stderr, "bench: %s ...\n", what)
	t0 := time.Now()
	r := run()
	fmt.Fprintf(os.Stderr, "bench: %s done in %v\n", what, time.Since(t0).Round(time.Second))
	return r
}

// okSystems lists the setups whose restart run on db succeeded, cdcrelay
// first: their topics hold the rows the encoding comparison reads.
func okSystems(rs []peerResult, db string) []string {
	var out []string
	for _, sys := range []string{sysRelay, sysDebezium, sysFlinkCDC} {
		for _, r := range rs {
			if r.System == sys && r.DB == db && r.Error == "" && r.ResumeMs != nil {
				out = append(out, sys)
			}
		}
	}
	return out
}
