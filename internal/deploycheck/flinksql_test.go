package deploycheck

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/flinkddl"
	"github.com/cdcrelay/cdcrelay/format"
)

// sqlTable is one CREATE TABLE of a Flink SQL file.
type sqlTable struct {
	name    string
	columns []change.ColumnSchema
	key     []string
	options map[string]string
}

// sqlScript is what the checks need of a Flink SQL file.
type sqlScript struct {
	file    string
	sets    map[string]string
	tables  map[string]*sqlTable
	inserts []sqlInsert
}

type sqlInsert struct {
	target  string
	sources []string
	body    string
}

// splitStatements drops -- comments and splits on semicolons outside quotes
// and backticks.
func splitStatements(src string) []string {
	var out []string
	var b strings.Builder
	var quote rune
	runes := []rune(src)
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		switch {
		case quote != 0:
			b.WriteRune(r)
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '`':
			quote = r
			b.WriteRune(r)
		case r == '-' && i+1 < len(runes) && runes[i+1] == '-':
			for i < len(runes) && runes[i] != '\n' {
				i++
			}
			b.WriteRune('\n')
		case r == ';':
			if s := strings.TrimSpace(b.String()); s != "" {
				out = append(out, s)
			}
			b.Reset()
		default:
			b.WriteRune(r)
		}
	}
	if s := strings.TrimSpace(b.String()); s != "" {
		out = append(out, s)
	}
	return out
}

var (
	setRe     = regexp.MustCompile(`(?is)^SET\s+'([^']+)'\s*=\s*'((?:[^']|'')*)'$`)
	createRe  = regexp.MustCompile("(?is)^CREATE\\s+TABLE\\s+(`[^`]+`|\\w+)\\s*\\((.*)\\)\\s*WITH\\s*\\((.*)\\)$")
	optionRe  = regexp.MustCompile(`'((?:[^']|'')*)'\s*=\s*'((?:[^']|'')*)'`)
	pkRe      = regexp.MustCompile(`(?is)^PRIMARY\s+KEY\s*\((.*)\)\s*NOT\s+ENFORCED$`)
	columnRe  = regexp.MustCompile("(?is)^(`[^`]+`|\\w+)\\s+(.+?)(\\s+NOT\\s+NULL)?$")
	insertRe  = regexp.MustCompile("(?is)^INSERT\\s+INTO\\s+(`[^`]+`|\\w+)\\s+(.*)$")
	fromJoin  = regexp.MustCompile("(?i)\\b(?:FROM|JOIN)\\s+(`[^`]+`|\\w+)")
	groupJoin = regexp.MustCompile(`(?i)\b(GROUP\s+BY|JOIN)\b`)
)

func unquote(ident string) string {
	if strings.HasPrefix(ident, "`") {
		return strings.ReplaceAll(ident[1:len(ident)-1], "``", "`")
	}
	return ident
}

// splitTop splits s on commas outside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(', '<':
			depth++
		case ')', '>':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

func parseScript(t *testing.T, file string, src string) *sqlScript {
	t.Helper()
	s := &sqlScript{file: file, sets: map[string]string{}, tables: map[string]*sqlTable{}}
	for _, stmt := range splitStatements(src) {
		if m := setRe.FindStringSubmatch(stmt); m != nil {
			s.sets[m[1]] = m[2]
			continue
		}
		if m := createRe.FindStringSubmatch(stmt); m != nil {
			tb := &sqlTable{name: unquote(m[1]), options: map[string]string{}}
			for _, part := range splitTop(m[2]) {
				if pk := pkRe.FindStringSubmatch(part); pk != nil {
					for _, k := range splitTop(pk[1]) {
						tb.key = append(tb.key, unquote(k))
					}
					continue
				}
				c := columnRe.FindStringSubmatch(part)
				if c == nil {
					t.Fatalf("%s: table %s: cannot read column %q", file, tb.name, part)
				}
				tb.columns = append(tb.columns, change.ColumnSchema{
					Name: unquote(c[1]), FlinkType: strings.TrimSpace(c[2]), Nullable: c[3] == "",
				})
			}
			for _, o := range optionRe.FindAllStringSubmatch(m[3], -1) {
				tb.options[strings.ReplaceAll(o[1], "''", "'")] = strings.ReplaceAll(o[2], "''", "'")
			}
			s.tables[tb.name] = tb
			continue
		}
		if m := insertRe.FindStringSubmatch(stmt); m != nil {
			ins := sqlInsert{target: unquote(m[1]), body: m[2]}
			for _, f := range fromJoin.FindAllStringSubmatch(m[2], -1) {
				ins.sources = append(ins.sources, unquote(f[1]))
			}
			s.inserts = append(s.inserts, ins)
			continue
		}
		t.Fatalf("%s: statement not understood by the check: %.80q", file, stmt)
	}
	return s
}

func loadScripts(t *testing.T) []*sqlScript {
	t.Helper()
	files, err := filepath.Glob(path(t, "deploy/flink/sql/*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Flink SQL files in deploy/flink/sql (%v)", err)
	}
	var out []*sqlScript
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parseScript(t, filepath.Base(f), string(b)))
	}
	return out
}

// wantKafkaSource are the options every debezium-json source table needs:
// resume from the group's offsets, which Flink commits when a checkpoint
// completes (never the consumer's auto-commit, which runs ahead of the
// sink), and read committed data only.
var wantKafkaSource = map[string]string{
	"connector":                     "kafka",
	"scan.startup.mode":             "group-offsets",
	"properties.auto.offset.reset":  "earliest",
	"properties.enable.auto.commit": "false",
	"properties.isolation.level":    "read_committed",
	"format":                        "debezium-json",
	"debezium-json.schema-include":  "false",
}

// wantUpsertSource are the options every upsert-kafka source table needs.
var wantUpsertSource = map[string]string{
	"connector":                  "upsert-kafka",
	"properties.isolation.level": "read_committed",
	"key.format":                 "json",
	"value.format":               "json",
}

func TestFlinkSQLJobs(t *testing.T) {
	stateless, stateful := 0, 0
	for _, s := range loadScripts(t) {
		t.Run(s.file, func(t *testing.T) {
			// deploy/flink/submit-jobs.sh finds the name with sed, on a line of
			// exactly this shape, to avoid submitting a running job twice.
			raw := string(read(t, "deploy/flink/sql/"+s.file))
			if s.sets["pipeline.name"] == "" || !regexp.MustCompile(`(?m)^SET 'pipeline\.name' = '[^']+';$`).MatchString(raw) {
				t.Error("no line SET 'pipeline.name' = '...'; which the submit script needs to avoid duplicate jobs")
			}
			checkpoints := s.sets["execution.checkpointing.interval"] != ""
			if len(s.inserts) == 0 {
				t.Fatal("no INSERT INTO: nothing would run")
			}
			for _, ins := range s.inserts {
				sink := s.tables[ins.target]
				if sink == nil {
					t.Errorf("INSERT INTO %s: no such table", ins.target)
					continue
				}
				if sink.options["connector"] != "upsert-kafka" || len(sink.key) == 0 {
					t.Errorf("sink %s should be an upsert-kafka table with a primary key, so that a replay after a restart is idempotent", sink.name)
				}
				kinds := map[string]bool{}
				for _, src := range ins.sources {
					tb := s.tables[src]
					if tb == nil {
						t.Errorf("INSERT INTO %s reads %s, which the file does not create", ins.target, src)
						continue
					}
					switch tb.options["connector"] {
					case "kafka":
						kinds["kafka"] = true
						requireOptions(t, tb, wantKafkaSource)
						if tb.options["properties.group.id"] == "" {
							t.Errorf("table %s: no properties.group.id: the offsets it resumes from belong to that group", tb.name)
						}
					case "upsert-kafka":
						kinds["upsert"] = true
						requireOptions(t, tb, wantUpsertSource)
					default:
						t.Errorf("table %s: connector %q", tb.name, tb.options["connector"])
					}
				}
				aggregates := groupJoin.MatchString(ins.body)
				switch {
				case kinds["kafka"] && !kinds["upsert"] && !aggregates:
					stateless++
					// Offsets are committed only with a completed
					// checkpoint, after the sink flushed (docs/deploy.md).
					if !checkpoints {
						t.Errorf("stateless job: no SET 'execution.checkpointing.interval': its group offsets would never be committed")
					}
					if g := sink.options["sink.delivery-guarantee"]; g != "at-least-once" && g != "exactly-once" {
						t.Errorf("sink %s: 'sink.delivery-guarantee' = %q; want at-least-once, so that a checkpoint waits for the sink", sink.name, g)
					}
				case kinds["upsert"] && !kinds["kafka"] && aggregates:
					stateful++
					// It rebuilds its state from the compacted topics.
					if checkpoints {
						t.Errorf("stateful job sets execution.checkpointing.interval: it rebuilds from the earliest offsets and needs no checkpoints")
					}
				case aggregates:
					t.Errorf("INSERT INTO %s joins or aggregates over debezium-json sources that resume from group offsets; a stateful job must read compacted topics from the earliest offset (upsert-kafka)", ins.target)
				}
			}
		})
	}
	if stateless == 0 {
		t.Error("no stateless job (debezium-json sources, group offsets, no join or aggregate)")
	}
	if stateful == 0 {
		t.Error("no stateful job (join or aggregate over upsert-kafka tables)")
	}
}

func requireOptions(t *testing.T, tb *sqlTable, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := tb.options[k]; got != v {
			t.Errorf("table %s: '%s' = %q, want %q", tb.name, k, got, v)
		}
	}
}

// relayConfigs loads deploy/configs/*.yaml through config.Load.
func relayConfigs(t *testing.T) map[string]*config.Config {
	t.Helper()
	t.Setenv("CDCRELAY_SOURCE_PASSWORD", "not-used-by-the-check")
	files, err := filepath.Glob(path(t, "deploy/configs/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no relay configs in deploy/configs (%v)", err)
	}
	out := map[string]*config.Config{}
	for _, f := range files {
		cfg, err := config.Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = cfg
	}
	return out
}

// TestFlinkSQLMatchesRelays: every topic a job reads is one a relay writes,
// in the value format the job's connector expects; every topic a job writes
// is created by deploy/kafka/create-topics.sh.
func TestFlinkSQLMatchesRelays(t *testing.T) {
	type produced struct {
		format string
		table  change.TableID
	}
	topics := map[string]produced{}
	for _, cfg := range relayConfigs(t) {
		for _, name := range cfg.Source.Tables {
			ns, tbl, ok := strings.Cut(name, ".")
			if !ok || strings.Contains(tbl, "*") {
				t.Fatalf("config %s: table %q: the check wants schema.table names", cfg.ID, name)
			}
			id := change.TableID{Namespace: ns, Name: tbl}
			topics[format.Topic(cfg.Kafka.TopicPrefix, id)] = produced{cfg.Format.Value, id}
		}
	}
	createTopics := string(read(t, "deploy/kafka/create-topics.sh"))
	for _, s := range loadScripts(t) {
		for _, ins := range s.inserts {
			for _, src := range ins.sources {
				tb := s.tables[src]
				if tb == nil {
					continue
				}
				topic := tb.options["topic"]
				p, ok := topics[topic]
				if !ok {
					t.Errorf("%s: table %s reads topic %q, which no relay in deploy/configs writes", s.file, tb.name, topic)
					continue
				}
				want := map[string]string{"debezium-json": "kafka", "upsert": "upsert-kafka"}[p.format]
				if tb.options["connector"] != want {
					t.Errorf("%s: table %s reads %s (format %s) with connector %q, want %q", s.file, tb.name, topic, p.format, tb.options["connector"], want)
				}
			}
			if sink := s.tables[ins.target]; sink != nil && !strings.Contains(createTopics, sink.options["topic"]) {
				t.Errorf("%s: sink topic %q is not created by deploy/kafka/create-topics.sh", s.file, sink.options["topic"])
			}
		}
	}
}

// TestFlinkSQLMatchesGenerator: the hand-written source tables carry every
// option that `cdcrelay flink-ddl` would generate for them (the group id
// aside, which each job names for itself).
func TestFlinkSQLMatchesGenerator(t *testing.T) {
	for _, s := range loadScripts(t) {
		for _, ins := range s.inserts {
			for _, src := range ins.sources {
				tb := s.tables[src]
				if tb == nil {
					continue
				}
				f := flinkddl.Debezium
				if tb.options["connector"] == "upsert-kafka" {
					f = flinkddl.Upsert
				}
				schema := change.TableSchema{ID: change.TableID{Namespace: "x", Name: tb.name}, Columns: tb.columns, Key: tb.key}
				var buf bytes.Buffer
				err := flinkddl.Write(&buf, []change.TableSchema{schema}, flinkddl.Options{
					Brokers:   strings.Split(tb.options["properties.bootstrap.servers"], ","),
					TopicName: func(change.TableID) string { return tb.options["topic"] },
					Format:    f,
				})
				if err != nil {
					t.Errorf("%s: table %s: flinkddl: %v", s.file, tb.name, err)
					continue
				}
				gen := parseScript(t, "generated", buf.String())
				g := gen.tables[flinkddl.Identifier(tb.name)]
				if g == nil {
					t.Fatalf("generated DDL has no table %s:\n%s", tb.name, buf.String())
				}
				for k, v := range g.options {
					if k == "properties.group.id" {
						continue
					}
					if tb.options[k] != v {
						t.Errorf("%s: table %s: '%s' = %q, the generator writes %q", s.file, tb.name, k, tb.options[k], v)
					}
				}
				if !slices.Equal(g.key, tb.key) {
					t.Errorf("%s: table %s: key %v, generated %v", s.file, tb.name, tb.key, g.key)
				}
			}
		}
	}
}

// TestRelayConfigs: the demo configs expose metrics to other containers and
// hold no password.
func TestRelayConfigs(t *testing.T) {
	for name, cfg := range relayConfigs(t) {
		if cfg.Metrics.Listen != "0.0.0.0:9187" {
			t.Errorf("%s: metrics.listen = %q, want 0.0.0.0:9187 so Prometheus and the health check reach it", name, cfg.Metrics.Listen)
		}
		raw := string(read(t, "deploy/configs/"+name))
		if regexp.MustCompile(`(?m)^\s*password\s*:`).MatchString(raw) {
			t.Errorf("%s holds a password key; passwords come from CDCRELAY_SOURCE_PASSWORD", name)
		}
		if regexp.MustCompile(`://[^/@\s]*:[^/@\s]*@`).MatchString(cfg.Source.DSN) {
			t.Errorf("%s: the DSN carries a password", name)
		}
	}
}
