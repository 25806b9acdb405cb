package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// extraSourceTypes are source types that test builds add.
var extraSourceTypes = map[string]bool{}

// AllowSourceType accepts one more source.type. Only test builds call it,
// for the generator source used to test the relay without a database.
func AllowSourceType(name string) { extraSourceTypes[name] = true }

var idPattern = regexp.MustCompile(`^[a-z0-9_]{1,48}$`)

// SetDefaults fills every unset key with its documented default.
func (c *Config) SetDefaults() {
	// Names derived from a bad id would only repeat the id's error.
	id := c.ID
	if !idPattern.MatchString(id) {
		id = ""
	}
	s := &c.Source
	if s.Snapshot == "" {
		s.Snapshot = "initial"
	}
	if s.SnapshotWatermark == "" {
		s.SnapshotWatermark = "auto"
	}
	if s.SnapshotChunkSize == 0 {
		s.SnapshotChunkSize = 10000
	}
	if s.Slot == "" && id != "" {
		s.Slot = "cdcrelay_" + id
	}
	if s.Publication == "" && id != "" {
		s.Publication = "cdcrelay_" + id
	}
	if s.HeartbeatInterval == 0 {
		s.HeartbeatInterval = 10 * time.Second
	}
	if s.UnchangedToast == "" {
		s.UnchangedToast = UnchangedToastRefuse
	}
	k := &c.Kafka
	if k.TopicPrefix == "" {
		k.TopicPrefix = id
	}
	if k.OffsetsTopic == "" {
		k.OffsetsTopic = "cdcrelay_offsets"
	}
	if k.TopicPartitions == 0 {
		k.TopicPartitions = 3
	}
	if k.TopicReplicationFactor == 0 {
		k.TopicReplicationFactor = 1
	}
	if k.TopicCleanupPolicy == "" {
		k.TopicCleanupPolicy = "compact"
	}
	if k.TransactionTimeout == 0 {
		k.TransactionTimeout = 60 * time.Second
	}
	if k.BatchMaxEvents == 0 {
		k.BatchMaxEvents = 2000
	}
	if k.MaxRecordBytes == 0 {
		k.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if k.BatchLinger == 0 {
		k.BatchLinger = 100 * time.Millisecond
	}
	if k.Compression == "" {
		k.Compression = DefaultCompression
	}
	f := &c.Format
	if f.Value == "" {
		f.Value = "debezium-json"
	}
	if f.Tombstones == nil {
		t := true
		f.Tombstones = &t
	}
	if f.Headers == nil {
		t := true
		f.Headers = &t
	}
	if f.Truncate == "" {
		f.Truncate = TruncateSkip
	}
	if c.Metrics.Listen == "" {
		c.Metrics.Listen = "127.0.0.1:9187"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
}

// Validate returns one error per problem, each naming its key and what is
// allowed. It does no I/O beyond checking that named files exist.
func (c *Config) Validate() Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.ID == "" {
		bad("id", "required; a short name for this source, e.g. shop")
	} else if !idPattern.MatchString(c.ID) {
		bad("id", "%q is not allowed; use 1 to 48 of a-z, 0-9 and _", c.ID)
	}

	validateSource(&c.Source, bad)
	validateKafka(&c.Kafka, bad)
	validateFormat(&c.Format, bad)
	validateMetricsLog(c, bad)
	return errs
}

// validateSource checks the source section.
func validateSource(s *Source, bad func(key, format string, args ...any)) {
	switch {
	case s.Type == "postgres" || s.Type == "mysql" || extraSourceTypes[s.Type]:
	case s.Type == "":
		bad("source.type", "required; one of postgres, mysql")
	default:
		bad("source.type", "%q is not supported; one of postgres, mysql", s.Type)
	}
	validateDSN(s, bad)
	if s.FailoverSlot && s.Type != "postgres" {
		bad("source.failover_slot", "only applies to source.type postgres (PostgreSQL 17 failover slots); remove it")
	}
	validateTableLists(s, bad)
	validateColumns(s, bad)
	validateSnapshot(s, bad)
	if s.HeartbeatInterval < 0 {
		bad("source.heartbeat_interval", "must not be negative; 0 disables heartbeats")
	}
	for _, n := range []struct{ key, v string }{{"source.slot", s.Slot}, {"source.publication", s.Publication}} {
		if n.v != "" && !regexp.MustCompile(`^[a-z0-9_]{1,63}$`).MatchString(n.v) {
			bad(n.key, "%q is not allowed; PostgreSQL needs 1 to 63 of a-z, 0-9 and _", n.v)
		}
	}
	switch s.UnchangedToast {
	case UnchangedToastRefuse, UnchangedToastOmit:
	default:
		bad("source.unchanged_toast", "%q is not allowed; one of refuse, omit", s.UnchangedToast)
	}
	validateTLS("source.tls", &s.TLS, bad)
}

// validateTableLists checks source.tables, source.keyless and
// source.key_columns.
func validateTableLists(s *Source, bad func(key, format string, args ...any)) {
	if len(s.Tables) == 0 {
		bad("source.tables", "required; list the tables to capture, e.g. [public.orders] or [shop.*]")
	}
	for i, t := range s.Tables {
		if err := checkTableName(t); err != nil {
			bad(fmt.Sprintf("source.tables[%d]", i), "%v", err)
		}
	}
	for i, t := range s.Keyless {
		if r, err := ParseTable(t); err != nil || r.Name == "*" {
			bad(fmt.Sprintf("source.keyless[%d]", i), "%q must name one table as schema.table", t)
		}
	}
	for i, e := range s.KeyColumns {
		if _, err := ParseKeyColumns(e); err != nil {
			bad(fmt.Sprintf("source.key_columns[%d]", i), "%v", err)
		}
	}
}

// validateSnapshot checks the snapshot keys of the source section.
func validateSnapshot(s *Source, bad func(key, format string, args ...any)) {
	switch s.Snapshot {
	case "initial", "never":
	default:
		bad("source.snapshot", "%q is not allowed; one of initial, never", s.Snapshot)
	}
	switch s.SnapshotWatermark {
	case "auto":
	case "table", "binlog":
		if s.Type == "postgres" {
			bad("source.snapshot_watermark", "applies to MySQL/MariaDB only; PostgreSQL writes its watermarks as logical decoding messages, so remove the key")
		}
	default:
		bad("source.snapshot_watermark", "%q is not allowed; one of auto, table, binlog", s.SnapshotWatermark)
	}
	if s.SnapshotChunkSize < 1 || s.SnapshotChunkSize > 1_000_000 {
		bad("source.snapshot_chunk_size", "%d is out of range; use 1 to 1000000", s.SnapshotChunkSize)
	}
}

// validateFormat checks the format section.
func validateFormat(f *Format, bad func(key, format string, args ...any)) {
	switch f.Value {
	case "debezium-json", "upsert":
	default:
		bad("format.value", "%q is not supported; one of debezium-json, upsert", f.Value)
	}
	switch f.Truncate {
	case TruncateSkip, TruncateFail:
	case TruncateEvent:
		if f.Value == "upsert" {
			bad("format.truncate", "event needs format.value debezium-json: upsert-kafka has no record that empties a table (a null value deletes one key); use skip or fail")
		}
	default:
		bad("format.truncate", "%q is not allowed; one of skip, event, fail", f.Truncate)
	}
}

// validateMetricsLog checks the metrics and log sections.
func validateMetricsLog(c *Config, bad func(key, format string, args ...any)) {
	if c.Metrics.Listen != "off" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%q is not host:port (or off)", c.Metrics.Listen)
		}
	}
	if c.Metrics.TableLimit < 0 {
		bad("metrics.table_limit", "%d is negative; use 0 for one series per table, or the number of tables that keep their own", c.Metrics.TableLimit)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not allowed; one of text, json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not allowed; one of debug, info, warn, error", c.Log.Level)
	}
}

// validateKafka checks the kafka section.
func validateKafka(k *Kafka, bad func(key, format string, args ...any)) {
	if len(k.Brokers) == 0 {
		bad("kafka.brokers", "required; list host:port seeds, e.g. [127.0.0.1:9092]")
	}
	for i, b := range k.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			bad(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if k.TopicPrefix != "" && !validTopic(k.TopicPrefix) {
		bad("kafka.topic_prefix", "%q is not allowed; use a-z, A-Z, 0-9, '.', '_' and '-'", k.TopicPrefix)
	}
	if !validTopic(k.OffsetsTopic) {
		bad("kafka.offsets_topic", "%q is not a valid topic name; use a-z, A-Z, 0-9, '.', '_' and '-'", k.OffsetsTopic)
	}
	if k.TopicPartitions < 1 {
		bad("kafka.topic_partitions", "must be at least 1")
	}
	if k.TopicReplicationFactor < 1 {
		bad("kafka.topic_replication_factor", "must be at least 1")
	}
	switch k.TopicCleanupPolicy {
	case "compact", "delete", "compact,delete", "delete,compact":
	default:
		bad("kafka.topic_cleanup_policy", "%q is not allowed; one of compact, delete, compact,delete", k.TopicCleanupPolicy)
	}
	if k.TransactionTimeout < time.Second || k.TransactionTimeout > 15*time.Minute {
		bad("kafka.transaction_timeout", "%s is out of range; use 1s to 15m", k.TransactionTimeout)
	}
	if k.BatchMaxEvents < 1 {
		bad("kafka.batch_max_events", "must be at least 1")
	}
	if k.BatchLinger < 0 || k.BatchLinger > time.Minute {
		bad("kafka.batch_linger", "%s is out of range; use 0 to 1m", k.BatchLinger)
	}
	if k.MaxRecordBytes < 1<<10 || k.MaxRecordBytes > 1<<30 {
		bad("kafka.max_record_bytes", "%d is out of range; use 1024 to 1073741824", k.MaxRecordBytes)
	}
	if !slices.Contains(Compressions, k.Compression) {
		bad("kafka.compression", "%q is not supported; one of %s", k.Compression, strings.Join(Compressions, ", "))
	}
	validateTLS("kafka.tls", &k.TLS, bad)
	switch k.SASL.Mechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if k.SASL.Username == "" {
			bad("kafka.sasl.username", "required when kafka.sasl.mechanism is set")
		}
		if k.SASL.Password == "" {
			bad("kafka.sasl.password_file", "no SASL password; set CDCRELAY_KAFKA_SASL_PASSWORD or kafka.sasl.password_file")
		}
	default:
		bad("kafka.sasl.mechanism", "%q is not supported; one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", k.SASL.Mechanism)
	}
	if k.Embedded.Enabled && (k.TLS.Enabled || k.SASL.Mechanism != "") {
		bad("kafka.embedded.enabled", "the embedded broker has no TLS or SASL; turn off kafka.tls and kafka.sasl")
	}
}

func validateDSN(s *Source, bad func(key, format string, args ...any)) {
	if s.DSN == "" {
		bad("source.dsn", "required; e.g. postgres://cdc@127.0.0.1:5432/shop or mysql://cdc@127.0.0.1:3306/shop")
		return
	}
	u, err := url.Parse(s.DSN)
	if err != nil || u.Host == "" {
		// Never echo the DSN: it may hold a password by mistake.
		bad("source.dsn", "not a URL of the form scheme://user@host:port/database")
		return
	}
	if _, hasPw := u.User.Password(); hasPw {
		bad("source.dsn", "holds a password; remove it and set CDCRELAY_SOURCE_PASSWORD or source.password_file")
	}
	if u.Query().Has("password") {
		bad("source.dsn", "holds a password parameter; remove it and set CDCRELAY_SOURCE_PASSWORD or source.password_file")
	}
	want := map[string][]string{"postgres": {"postgres", "postgresql"}, "mysql": {"mysql"}}[s.Type]
	if want != nil {
		ok := false
		for _, w := range want {
			ok = ok || u.Scheme == w
		}
		if !ok {
			bad("source.dsn", "scheme %q does not match source.type %s; use %s://", u.Scheme, s.Type, want[0])
		}
	}
	if u.User == nil || u.User.Username() == "" {
		bad("source.dsn", "no user; write it as scheme://user@host:port/database")
	}
	if strings.Trim(u.Path, "/") == "" {
		bad("source.dsn", "no database; end the URL with /database")
	}
}

func checkTableName(t string) error {
	_, err := ParseTable(t)
	return err
}

func validateTLS(key string, t *TLS, bad func(key, format string, args ...any)) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad(key+".cert_file", "cert_file and key_file go together; set both or neither")
	}
	for _, f := range []struct{ k, v string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.v == "" {
			continue
		}
		if err := fileReadable(f.v); err != nil {
			bad(key+"."+f.k, "cannot read %s: %v", f.v, err)
		}
	}
}

var topicPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func validTopic(s string) bool { return topicPattern.MatchString(s) && s != "." && s != ".." }

// validateColumns checks source.column_*: each entry names one column, a
// table uses an include list or an exclude list, not both, a column is
// hashed or truncated, not both, and hashing has a salt.
func validateColumns(s *Source, bad func(key, format string, args ...any)) {
	parsed := func(key string, list []string) map[string]ColumnRef {
		out := map[string]ColumnRef{}
		for i, e := range list {
			ref, err := ParseColumn(e)
			if err != nil {
				bad(fmt.Sprintf("%s[%d]", key, i), "%v", err)
				continue
			}
			out[ref.String()] = ref
		}
		return out
	}
	inc := parsed("source.column_include", s.ColumnInclude)
	exc := parsed("source.column_exclude", s.ColumnExclude)
	hash := parsed("source.column_hash", s.ColumnHash)
	incTables := map[string]bool{}
	for _, r := range inc {
		incTables[r.Table.String()] = true
	}
	for i, e := range s.ColumnExclude {
		if r, err := ParseColumn(e); err == nil && incTables[r.Table.String()] {
			bad(fmt.Sprintf("source.column_exclude[%d]", i), "table %s also has source.column_include; list the columns to keep or the ones to drop, not both", r.Table)
		}
	}
	for i, e := range s.ColumnTruncate {
		ref, _, err := ParseTruncate(e)
		if err != nil {
			bad(fmt.Sprintf("source.column_truncate[%d]", i), "%v", err)
			continue
		}
		if _, ok := hash[ref.String()]; ok {
			bad(fmt.Sprintf("source.column_truncate[%d]", i), "%s is also in source.column_hash; a column is hashed or truncated, not both", ref)
		}
	}
	_ = exc
	if len(hash) > 0 && s.ColumnHashSalt == "" {
		bad("source.column_hash_salt_file", "source.column_hash needs a salt; set CDCRELAY_SOURCE_COLUMN_HASH_SALT or source.column_hash_salt_file")
	}
}
