// Command bench measures cdcrelay against the limits of its source and of
// Kafka on the same machine, in the same run: it starts a throwaway
// PostgreSQL (and MariaDB), a dev broker and the relay binary, and prints a
// markdown table and writes bench/results.json.
//
//	go run ./bench            # full: 1,000,000 changes per scenario
//	go run ./bench -quick     # about 100,000 changes, under 3 minutes
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

const pgBinDir = testenv.PGBinDir

// result is one scenario's row of results.json. Fields that do not apply
// are omitted.
type result struct {
	Scenario   string   `json:"scenario"`
	Rows       int      `json:"rows,omitempty"`
	RelayRate  *float64 `json:"relay_rows_per_s,omitempty"`
	LimitRate  *float64 `json:"limit_rows_per_s,omitempty"`
	LimitName  string   `json:"limit,omitempty"`
	Limits     []limit  `json:"limits,omitempty"`
	Ratio      *float64 `json:"ratio,omitempty"`
	P50        *float64 `json:"p50_ms,omitempty"`
	P99        *float64 `json:"p99_ms,omitempty"`
	Max        *float64 `json:"max_ms,omitempty"`
	PeakRSS    *float64 `json:"peak_rss_mib,omitempty"`
	ResumeMs   *float64 `json:"resume_ms,omitempty"`
	RowsReread *int64   `json:"rows_reread,omitempty"`
	StateBytes *int     `json:"state_bytes,omitempty"`
	// The many-tables scenario: tables captured, seconds from the process
	// start to the committed end of the snapshot, to the first table's
	// committed end and to every topic created, the snapshot time over that
	// of the first size, and one /metrics scrape's series and bytes at the
	// end.
	Tables       *int     `json:"tables,omitempty"`
	SnapshotS    *float64 `json:"snapshot_s,omitempty"`
	StartupS     *float64 `json:"startup_s,omitempty"`
	TopicsS      *float64 `json:"topics_s,omitempty"`
	Growth       *float64 `json:"growth,omitempty"`
	MetricSeries *int     `json:"metric_series,omitempty"`
	// The big-table scenario: the relay's VmRSS every 500 ms of the run.
	RSSCurve    []rssPoint `json:"rss_curve,omitempty"`
	MetricBytes *int       `json:"metric_bytes,omitempty"`
	Note        string     `json:"note,omitempty"`
	Error       string     `json:"error,omitempty"`
}

type limit struct {
	Name string  `json:"name"`
	Rate float64 `json:"rows_per_s"`
}

func f64(v float64) *float64 { return &v }

// setLimits fills the limit fields: the smallest limit and the ratio.
func (r *result) setLimits(relay float64, ls ...limit) {
	r.RelayRate = f64(relay)
	r.Limits = ls
	best := -1
	for i, l := range ls {
		if l.Rate > 0 && (best < 0 || l.Rate < ls[best].Rate) {
			best = i
		}
	}
	if best >= 0 {
		r.LimitRate = f64(ls[best].Rate)
		r.LimitName = ls[best].Name
		r.Ratio = f64(relay / ls[best].Rate)
	}
}

type bench struct {
	quick      bool
	changes    int // streaming and snapshot rows
	bigRows    int
	latencyDur time.Duration
	only       map[string]bool
	manySizes  []int    // table counts of the many-tables scenario
	manySrcs   []string // its sources: postgres, mariadb; the big-table scenario's too
	bigSizes   []int    // row counts of the big-table scenario
	peerCmd    string
	peerTopic  string
	pprofID    string
	pprofAddr  string
	profileDir string
	relayEnv   []string
	// compression is kafka.compression of every relay and of the produce
	// limit's producer.
	compression string

	env        *testenv.Cleanups // the servers' cleanups
	workDir    string
	relayBin   string
	pgDSN      string
	brokerAddr string
	broker     *testenv.Broker
	brokerKind string // apache or dev
	pg         *testenv.Postgres
	my         *testenv.MariaDB
	myDSN      string
	offsets    *offsetsWatch

	// The peers bench (-peers, bench/peers.go).
	peerRows                   int
	peerRuns                   int
	dbzCP, dbzMariaCP, flinkCP string
	checkpointEvery            time.Duration
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	b := &bench{}
	flag.BoolVar(&b.quick, "quick", false, "about 100,000 changes per scenario instead of 1,000,000")
	out := flag.String("out", "bench/results.json", "where to write the results `file`")
	only := flag.String("only", "", "comma-separated scenarios to run (stream,snapshot,latency,bigtxn,restart,mysql,many-tables,big-table,peer; with -peers: restart,snapshot,stream,checkpoint and the setups cdcrelay,cdcrelay+flink,debezium,debezium-mysql,flinkcdc); default all but many-tables and big-table")
	sizes := flag.String("tables", "", "comma-separated table counts of the many-tables scenario (default 2000,10000; -quick 200,1000)")
	srcs := flag.String("many-sources", "postgres,mariadb", "comma-separated sources of the many-tables and big-table scenarios")
	bigRows := flag.String("big-rows", "", "comma-separated row counts of the big-table scenario (default 1000000,10000000; -quick 100000,1000000)")
	flag.StringVar(&b.peerCmd, "peer-cmd", "", "shell `command` of another CDC tool to run on a copy of the streaming slot (see docs/benchmarks.md for its environment)")
	flag.StringVar(&b.peerTopic, "peer-topic", "", "`topic` the peer writes into; required with --peer-cmd")
	flag.StringVar(&b.pprofID, "profile", "", "relay `id` that serves pprof (stream, snap, big, mystream or mysnap; or a many-tables relay, mt<po|ma><tables>, whose profiles you fetch yourself); a trace, a CPU and an allocation profile of it go to -profile-dir")
	flag.StringVar(&b.profileDir, "profile-dir", "bench/profiles", "where profiles are written")
	flag.Func("relay-env", "`KEY=VALUE` added to every relay's environment, such as GOMEMLIMIT=48MiB; repeatable", func(kv string) error {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", kv)
		}
		b.relayEnv = append(b.relayEnv, kv)
		return nil
	})
	flag.StringVar(&b.brokerKind, "broker", testenv.BrokerKind(), "the broker every scenario runs on: apache (Apache Kafka from deploy/jvm/kafka) or dev (the embedded dev broker)")
	flag.StringVar(&b.compression, "compression", config.DefaultCompression, "kafka.compression of the relays and of the produce limit's producer: "+strings.Join(config.Compressions, ", "))
	flag.IntVar(&b.peerRuns, "peer-runs", 3, "with -peers: runs of each setup in the snapshot, restart and stream scenarios, alternating; the table shows the median")
	peers := flag.Bool("peers", false, "run cdcrelay, Debezium and Flink CDC side by side instead (make bench-peers); writes the \"peers\" key of -out")
	rows := flag.Int("rows", 0, "changes per scenario, overriding the default (1,000,000) and -quick; for profiling longer drains")
	flag.Parse()
	b.changes, b.bigRows, b.latencyDur = 1_000_000, 1_000_000, 30*time.Second
	if b.quick {
		b.changes, b.bigRows, b.latencyDur = 100_000, 100_000, 8*time.Second
	}
	if *rows > 0 {
		b.changes, b.bigRows = *rows, *rows
	}
	if err := b.parseLists(*srcs, *sizes, *bigRows, *only); err != nil {
		return err
	}
	if _, err := kafkaconfig.Compression(b.compression); err != nil {
		return fmt.Errorf("-compression: %w", err)
	}
	if b.brokerKind != testenv.KindApache && b.brokerKind != testenv.KindDev {
		return fmt.Errorf("-broker %q: want apache or dev", b.brokerKind)
	}
	if b.peerCmd != "" && b.peerTopic == "" {
		return fmt.Errorf("--peer-cmd needs --peer-topic")
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	mach := describeMachine()
	fmt.Println(mach.markdown())
	if *peers {
		b.peerRows, b.checkpointEvery = 1_000_000, 60*time.Second
		if b.quick {
			b.peerRows, b.checkpointEvery = 200_000, 10*time.Second
		}
		if *rows > 0 {
			b.peerRows = *rows
		}
		return b.runPeers(ctx, *out, mach)
	}
	fmt.Printf("kafka.compression: %s (relays and produce limit)\n\n", b.compression)

	b.env = &testenv.Cleanups{}
	defer b.env.Close()
	if err := b.setup(ctx); err != nil {
		b.env.Fail()
		return err
	}
	results, scale := b.runScenarios(ctx)
	fmt.Println(markdownTable(append(results, scale...)))
	run := runDoc{mach, map[bool]string{true: "quick", false: "full"}[b.quick], b.compression, b.broker.Kind + " " + b.broker.Version, "go run ./bench " + strings.Join(os.Args[1:], " "), time.Now().UTC().Format(time.RFC3339), nil}
	if err := writeResults(*out, run, results, scale); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", *out)
	return nil
}

// scaleRuns reads the "scale" key of a results file: the last run of each
// scale scenario. A file written before the key was split by scenario
// holds one run of them all, which is split here.
func scaleRuns(raw json.RawMessage) (map[string]runDoc, error) {
	kinds := map[string]runDoc{}
	if raw == nil {
		return kinds, nil
	}
	var one runDoc
	if err := json.Unmarshal(raw, &one); err == nil && one.Results != nil {
		for kind, rs := range byKind(one.Results) {
			r := one
			r.Results = rs
			kinds[kind] = r
		}
		return kinds, nil
	}
	if err := json.Unmarshal(raw, &kinds); err != nil {
		return nil, err
	}
	return kinds, nil
}

// byKind groups results by scenario, the name before its " (source)".
func byKind(rs []result) map[string][]result {
	out := map[string][]result{}
	for _, r := range rs {
		kind, _, _ := strings.Cut(r.Scenario, " (")
		out[kind] = append(out[kind], r)
	}
	return out
}

// runDoc is one run's results with what they were measured on.
type runDoc struct {
	Machine     machine  `json:"machine"`
	Mode        string   `json:"mode"`
	Compression string   `json:"compression"`
	Broker      string   `json:"broker"`
	Command     string   `json:"command"`
	When        string   `json:"when"`
	Results     []result `json:"results"`
}

// writeResults writes the results of the default scenarios at the top
// level of file, and those of the scale scenarios under "scale", by
// scenario ("many tables", "big table"), each with the description of the
// run that measured it, replacing only what this run measured: the other
// scenarios, and the peers bench's "peers", stay as they are.
func writeResults(file string, run runDoc, results, scale []result) error {
	doc := map[string]json.RawMessage{}
	if data, err := os.ReadFile(file); err == nil {
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	if len(results) > 0 {
		run.Results = results
		data, _ := json.Marshal(run)
		var top map[string]json.RawMessage
		if err := json.Unmarshal(data, &top); err != nil {
			return err
		}
		maps.Copy(doc, top)
	}
	if len(scale) > 0 {
		kinds, err := scaleRuns(doc["scale"])
		if err != nil {
			return fmt.Errorf("%s: scale: %w", file, err)
		}
		for kind, rs := range byKind(scale) {
			r := run
			r.Results = rs
			kinds[kind] = r
		}
		doc["scale"], _ = json.Marshal(kinds)
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(data, '\n'), 0o644)
}

type scenario struct {
	name string
	run  func(ctx context.Context) []result
	// scale marks the scenarios that grow a size to show the cost of
	// growth: they take tens of minutes, so they run only when -only
	// names them (make bench-scale, and make bench after the others).
	scale bool
}

func (b *bench) scenarios() []scenario {
	return []scenario{
		{"stream", b.streamScenario, false},
		{"snapshot", b.snapshotScenario, false},
		{"latency", b.latencyScenario, false},
		{"bigtxn", b.bigTxnScenario, false},
		{"restart", b.restartScenario, false},
		{"mysql", b.mysqlScenario, false},
		{"many-tables", b.manyTablesScenario, true},
		{"big-table", b.bigTableScenario, true},
	}
}

// setup builds the relay, starts PostgreSQL and the broker, and starts
// tailing the offsets topic.
func (b *bench) setup(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "cdcrelay-bench-")
	if err != nil {
		return err
	}
	b.env.Cleanup(func() { os.RemoveAll(dir) })
	b.workDir = dir
	b.relayBin = filepath.Join(b.workDir, "cdcrelay")
	build := exec.Command("go", "build", "-o", b.relayBin, "./cmd/cdcrelay")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/cdcrelay: %v\n%s", err, out)
	}
	if b.pprofID != "" {
		b.pprofAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
		fmt.Fprintf(os.Stderr, "bench: relay %s serves pprof at %s\n", b.pprofID, b.pprofAddr)
	}
	if b.pg, err = testenv.NewPostgres(b.env, testenv.PGConf("shared_buffers = 256MB", "max_wal_size = 4GB", "autovacuum = off")); err != nil {
		return err
	}
	if err := b.pg.CreateDatabase("bench"); err != nil {
		return err
	}
	b.pgDSN = b.pg.DSN(b.pg.SuperUser, "bench")
	if b.brokerKind == testenv.KindDev {
		b.broker, err = testenv.NewDevBroker(b.env)
	} else {
		// Kafka's own start scripts' heap: at 10,000 topics (the
		// many-tables scenario) the tests' 512 MiB runs out.
		b.broker, err = testenv.NewKafka(b.env, testenv.KafkaHeap("1g"))
	}
	if err != nil {
		return err
	}
	b.brokerAddr = b.broker.Addr
	fmt.Printf("broker: %s %s at %s\n\n", b.broker.Kind, b.broker.Version, b.brokerAddr)
	w, err := b.watchOffsets(ctx)
	if err != nil {
		return err
	}
	b.offsets = w
	return nil
}

// parseLists reads the list flags: the sources and sizes of the
// many-tables and big-table scenarios, and the scenarios to run.
func (b *bench) parseLists(srcs, sizes, bigRows, only string) error {
	b.manySizes, b.bigSizes = []int{2000, 10000}, []int{1_000_000, 10_000_000}
	if b.quick {
		b.manySizes, b.bigSizes = []int{200, 1000}, []int{100_000, 1_000_000}
	}
	for _, s := range strings.Split(srcs, ",") {
		if s = strings.TrimSpace(s); s != "postgres" && s != "mariadb" {
			return fmt.Errorf("-many-sources: %q is not postgres or mariadb", s)
		}
		b.manySrcs = append(b.manySrcs, strings.TrimSpace(s))
	}
	var err error
	if b.manySizes, err = counts("-tables", "table count", sizes, b.manySizes); err != nil {
		return err
	}
	if b.bigSizes, err = counts("-big-rows", "row count", bigRows, b.bigSizes); err != nil {
		return err
	}
	if only != "" {
		b.only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			b.only[strings.TrimSpace(s)] = true
		}
	}
	return nil
}

// counts parses a comma-separated list of positive counts, or returns def
// for an empty one.
func counts(flagName, what, list string, def []int) ([]int, error) {
	if list == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a %s", flagName, f, what)
		}
		out = append(out, n)
	}
	return out, nil
}

// runScenarios runs the chosen scenarios in order, until ctx ends. It
// returns the results of the default scenarios and of the scale ones
// apart.
func (b *bench) runScenarios(ctx context.Context) (results, scale []result) {
	for _, sc := range b.scenarios() {
		if (b.only == nil && sc.scale) || (b.only != nil && !b.only[sc.name]) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", sc.name)
		t0 := time.Now()
		rs := sc.run(ctx)
		for _, r := range rs {
			if r.Error != "" {
				fmt.Fprintf(os.Stderr, "bench: %s: %s\n", r.Scenario, r.Error)
			}
		}
		fmt.Fprintf(os.Stderr, "bench: %s done in %v\n", sc.name, time.Since(t0).Round(time.Second))
		if sc.scale {
			scale = append(scale, rs...)
		} else {
			results = append(results, rs...)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return results, scale
}
