package flinkddl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/format"
)

// Describer reports the schema of every captured table as it lands in Kafka.
// Describe may be called from one goroutine at a time; it reads the source's
// catalog and must honour ctx for every round trip it makes.
type Describer interface {
	Describe(ctx context.Context) ([]change.TableSchema, error)
}

// Format is how the relay encodes record values, and so which Flink connector
// reads them.
type Format string

const (
	// Debezium is the Debezium envelope, read with the kafka connector and
	// 'format'='debezium-json'.
	Debezium Format = "debezium-json"
	// Upsert is the plain after-row, null on delete, read with the
	// upsert-kafka connector and 'value.format'='json'.
	Upsert Format = "upsert"
)

// ParseFormat accepts the names used by the config key format.value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Debezium, Upsert:
		return f, nil
	}
	return "", fmt.Errorf("flinkddl: unknown format %q (want %q or %q)", s, Debezium, Upsert)
}

// Options says where the topics are and how they are read.
type Options struct {
	// Brokers is the bootstrap list, host:port. Required.
	Brokers []string
	// TopicPrefix starts every topic name. Required unless TopicName is set.
	TopicPrefix string
	// TopicName maps a table to its topic. Default: format.Topic with
	// TopicPrefix, the rule the relay names its topics by.
	TopicName func(change.TableID) string
	// Format selects the connector. Default: Debezium.
	Format Format
	// GroupID is the consumer group of debezium-json tables; Flink commits
	// offsets under it and a restarted job resumes from them.
	// Default: "flink-" + TopicPrefix.
	GroupID string
}

func (o *Options) validate() error {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("flinkddl: no brokers"))
	}
	for i, b := range o.Brokers {
		if strings.TrimSpace(b) == "" {
			errs = append(errs, fmt.Errorf("flinkddl: brokers[%d] is empty", i))
		}
	}
	if o.TopicName == nil && o.TopicPrefix == "" {
		errs = append(errs, errors.New("flinkddl: no topic prefix"))
	}
	switch o.Format {
	case "", Debezium, Upsert:
	default:
		errs = append(errs, fmt.Errorf("flinkddl: unknown format %q", o.Format))
	}
	return errors.Join(errs...)
}

func (o Options) topic(id change.TableID) string {
	if o.TopicName != nil {
		return o.TopicName(id)
	}
	return format.Topic(o.TopicPrefix, id)
}

func (o Options) groupID() string {
	if o.GroupID != "" {
		return o.GroupID
	}
	return "flink-" + o.TopicPrefix
}

// Write prints one CREATE TABLE statement per table to w, ordered by
// namespace and name, each followed by a blank line. It checks every table
// first and writes nothing when any is unusable.
//
// Flink table names are the source table names with every character other
// than a letter, digit or underscore replaced by an underscore (and an
// underscore put in front of a leading digit). Where two tables would get the
// same name, both are named <namespace>_<name> instead, and a numeric suffix
// settles any clash left. Identifiers are always quoted with backticks.
//
// Key columns are declared NOT NULL whatever the source says, because Flink
// treats primary-key columns as NOT NULL. A table without a key gets no
// PRIMARY KEY clause in the debezium-json format and is refused in the upsert
// format, which cannot read it.
func Write(w io.Writer, tables []change.TableSchema, opts Options) error {
	if err := opts.validate(); err != nil {
		return err
	}
	if opts.Format == "" {
		opts.Format = Debezium
	}
	sorted := slices.Clone(tables)
	slices.SortStableFunc(sorted, func(a, b change.TableSchema) int {
		if c := strings.Compare(a.ID.Namespace, b.ID.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.ID.Name, b.ID.Name)
	})
	var errs []error
	for _, t := range sorted {
		if err := checkTable(t, opts.Format); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	names := tableNames(sorted)
	var b strings.Builder
	for i, t := range sorted {
		writeTable(&b, names[i], t, opts)
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func checkTable(t change.TableSchema, f Format) error {
	var errs []error
	if t.ID.Name == "" {
		errs = append(errs, fmt.Errorf("flinkddl: table %q has no name", t.ID))
	}
	if len(t.Columns) == 0 {
		errs = append(errs, fmt.Errorf("flinkddl: table %s has no columns", t.ID))
	}
	seen := make(map[string]bool, len(t.Columns))
	for i, c := range t.Columns {
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("flinkddl: table %s column %d has no name", t.ID, i))
		case seen[c.Name]:
			errs = append(errs, fmt.Errorf("flinkddl: table %s has column %q twice", t.ID, c.Name))
		}
		seen[c.Name] = true
		if strings.TrimSpace(c.FlinkType) == "" {
			errs = append(errs, fmt.Errorf("flinkddl: table %s column %q (%s) has no Flink type", t.ID, c.Name, c.SourceType))
		}
	}
	for _, k := range t.Key {
		if !seen[k] {
			errs = append(errs, fmt.Errorf("flinkddl: table %s key column %q is not a column", t.ID, k))
		}
	}
	if f == Upsert && len(t.Key) == 0 {
		errs = append(errs, fmt.Errorf("flinkddl: table %s has no primary key; upsert-kafka needs one (read it with the debezium-json format instead)", t.ID))
	}
	return errors.Join(errs...)
}

// tableNames picks the Flink table name of each table, in order.
func tableNames(tables []change.TableSchema) []string {
	short := make([]string, len(tables))
	count := map[string]int{}
	for i, t := range tables {
		short[i] = Identifier(t.ID.Name)
		count[short[i]]++
	}
	names := make([]string, len(tables))
	used := map[string]bool{}
	for i, t := range tables {
		n := short[i]
		if count[n] > 1 {
			n = Identifier(t.ID.Namespace + "_" + t.ID.Name)
		}
		base := n
		for k := 2; used[n]; k++ {
			n = fmt.Sprintf("%s_%d", base, k)
		}
		used[n] = true
		names[i] = n
	}
	return names
}

// Identifier turns a source name into a plain Flink identifier: letters,
// digits and underscores, not starting with a digit.
func Identifier(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out == "" {
		return "_"
	}
	if unicode.IsDigit([]rune(out)[0]) {
		out = "_" + out
	}
	return out
}

// Quote quotes an identifier with backticks, doubling any backtick inside.
func Quote(ident string) string {
	return "`" + strings.ReplaceAll(ident, "`", "``") + "`"
}

// literal quotes a SQL string literal, doubling any single quote inside.
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// comment makes s safe inside a -- comment line.
func comment(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func writeTable(b *strings.Builder, name string, t change.TableSchema, opts Options) {
	topic := opts.topic(t.ID)
	fmt.Fprintf(b, "-- %s: topic %s\n", comment(t.ID.String()), comment(topic))
	if len(t.Key) == 0 {
		b.WriteString("-- no primary key: the relay keys these records by the whole row\n")
	}
	fmt.Fprintf(b, "CREATE TABLE %s (\n", Quote(name))
	key := make(map[string]bool, len(t.Key))
	for _, k := range t.Key {
		key[k] = true
	}
	lines := make([]string, 0, len(t.Columns)+1)
	for _, c := range t.Columns {
		l := "  " + Quote(c.Name) + " " + strings.TrimSpace(c.FlinkType)
		if !c.Nullable || key[c.Name] {
			l += " NOT NULL"
		}
		lines = append(lines, l)
	}
	if len(t.Key) > 0 {
		quoted := make([]string, len(t.Key))
		for i, k := range t.Key {
			quoted[i] = Quote(k)
		}
		lines = append(lines, "  PRIMARY KEY ("+strings.Join(quoted, ", ")+") NOT ENFORCED")
	}
	b.WriteString(strings.Join(lines, ",\n"))
	b.WriteString("\n) WITH (\n")
	opt := options(topic, opts)
	for i, kv := range opt {
		fmt.Fprintf(b, "  %s = %s", literal(kv[0]), literal(kv[1]))
		if i < len(opt)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString(");\n")
}

// options lists the connector options of one table in a fixed order.
func options(topic string, opts Options) [][2]string {
	brokers := strings.Join(opts.Brokers, ",")
	if opts.Format == Upsert {
		return [][2]string{
			{"connector", "upsert-kafka"},
			{"topic", topic},
			{"properties.bootstrap.servers", brokers},
			// The relay writes in Kafka transactions; without this Flink
			// also reads records of aborted transactions.
			{"properties.isolation.level", "read_committed"},
			{"key.format", "json"},
			{"value.format", "json"},
			{"value.fields-include", "ALL"},
		}
	}
	return [][2]string{
		{"connector", "kafka"},
		{"topic", topic},
		{"properties.bootstrap.servers", brokers},
		{"properties.group.id", opts.groupID()},
		{"properties.isolation.level", "read_committed"},
		// Offsets are committed by Flink when a checkpoint completes,
		// which is after the sink flushed what was read before it; a
		// restarted job resumes from them and loses nothing. The
		// consumer's own auto-commit commits what it fetched, so a crash
		// could skip records in flight. Without checkpoints nothing is
		// committed and a restart reads from the earliest offset.
		{"properties.enable.auto.commit", "false"},
		{"properties.auto.offset.reset", "earliest"},
		{"scan.startup.mode", "group-offsets"},
		{"format", "debezium-json"},
		{"debezium-json.schema-include", "false"},
	}
}
