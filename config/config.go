package config

import "time"

// Config is the whole YAML file. The yaml tags are the public key names;
// `env` names follow from them: CDCRELAY_ plus the upper-cased path joined
// by underscores (kafka.tls.ca_file -> CDCRELAY_KAFKA_TLS_CA_FILE).
type Config struct {
	// ID is the source id: the offsets key, the transactional.id suffix
	// (cdcrelay-<id>) and the default slot and publication name stem.
	// Required; [a-z0-9_]+ and at most 48 characters.
	ID      string  `yaml:"id"`
	Source  Source  `yaml:"source"`
	Kafka   Kafka   `yaml:"kafka"`
	Format  Format  `yaml:"format"`
	Metrics Metrics `yaml:"metrics"`
	Log     Log     `yaml:"log"`
}

// Source is the database to capture.
type Source struct {
	// Type is postgres or mysql (mysql covers MariaDB). Required.
	Type string `yaml:"type"`
	// DSN is a URL without a password: postgres://user@host:port/db?sslmode=...
	// or mysql://user@host:port/db. Required.
	DSN string `yaml:"dsn"`
	// Password is never read from the YAML file. It comes from the
	// environment variable CDCRELAY_SOURCE_PASSWORD or from PasswordFile.
	Password Secret `yaml:"-"`
	// PasswordFile is a file whose content (trailing newline trimmed) is the
	// password. Default: none.
	PasswordFile string `yaml:"password_file"`
	// Tables is the include list: schema.table (PostgreSQL) or
	// database.table (MySQL); "schema.*" takes every table of a schema.
	// Required, at least one entry.
	Tables []string `yaml:"tables"`
	// Keyless lists captured tables without a primary key that are
	// accepted anyway; their events are keyed by the whole row. Default: none.
	Keyless []string `yaml:"keyless"`
	// KeyColumns chooses the columns of the Kafka key of a table, as
	// Debezium's message.key.columns: each entry is "schema.table:col1,col2"
	// (schema.* for every table of a schema). A table without an entry is
	// keyed by its primary key, or, when keyless, by the whole row. In the
	// environment, entries are separated by ";". Default: none.
	KeyColumns []string `yaml:"key_columns" envsep:";"`
	// ColumnInclude lists the only columns sent of their tables, as
	// schema.table.column; the other columns of those tables are left out.
	// ColumnExclude lists columns left out. A table may use one of the two.
	// Both apply to snapshot and stream events and to flink-ddl; a column of
	// the Kafka key cannot be left out. Default: none.
	ColumnInclude []string `yaml:"column_include"`
	ColumnExclude []string `yaml:"column_exclude"`
	// ColumnHash lists columns (schema.table.column) whose values are
	// replaced by the hex SHA-256 of the salt followed by the value's JSON
	// text: stable, so joins and keys still work, but not reversible
	// without the salt. Needs ColumnHashSalt. Default: none.
	ColumnHash []string `yaml:"column_hash"`
	// ColumnHashSalt is never read from the YAML file: it comes from
	// CDCRELAY_SOURCE_COLUMN_HASH_SALT or from ColumnHashSaltFile.
	ColumnHashSalt     Secret `yaml:"-"`
	ColumnHashSaltFile string `yaml:"column_hash_salt_file"`
	// ColumnTruncate cuts string values to at most N characters, entries
	// schema.table.column:N. Other values pass unchanged. Default: none.
	ColumnTruncate []string `yaml:"column_truncate"`
	// Snapshot is initial (take each table's existing rows once, then
	// stream) or never (stream only). Default: initial.
	Snapshot string `yaml:"snapshot"`
	// SnapshotChunkSize is the number of rows per snapshot chunk.
	// Default: 10000.
	SnapshotChunkSize int `yaml:"snapshot_chunk_size"`
	// SnapshotWatermark is how a MySQL/MariaDB snapshot chunk is placed in
	// the binlog: table (watermark rows written to cdcrelay_watermark),
	// binlog (a consistent read whose binlog position the server reports;
	// nothing is written, MariaDB only) or auto (binlog when the server is
	// read_only or the user cannot write the watermark table, else table).
	// Default: auto.
	SnapshotWatermark string `yaml:"snapshot_watermark"`
	// Slot is the PostgreSQL replication slot. Default: cdcrelay_<id>.
	Slot string `yaml:"slot"`
	// Publication is the PostgreSQL publication. Default: cdcrelay_<id>.
	Publication string `yaml:"publication"`
	// FailoverSlot creates the PostgreSQL replication slot with FAILOVER
	// (PostgreSQL 17 and later), so that standbys running
	// sync_replication_slots keep a copy of it and the relay can resume on
	// a promoted standby. Refused on older servers. Default: false.
	FailoverSlot bool `yaml:"failover_slot"`
	// UnchangedToast is what PostgreSQL's unchanged TOASTed values become
	// when no full old row can fill them (REPLICA IDENTITY other than
	// FULL): refuse (check and run refuse such tables, and an update that
	// carries one stops the relay before its transaction reaches Kafka) or
	// omit (the column is left out of the after image; a consumer that
	// reads rows whole, as Flink does, reads NULL). PostgreSQL only.
	// Default: refuse.
	UnchangedToast string `yaml:"unchanged_toast"`
	// HeartbeatInterval is, for PostgreSQL, how often a heartbeat is
	// written to the source so that an idle capture still advances its
	// position; 0 disables. For MySQL/MariaDB nothing is written: it is the
	// longest a position moved only by uncaptured tables waits for its
	// checkpoint while the binlog is busy; 0 means 10s. Default: 10s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// ServerID is the MySQL replica server id the relay announces; it must
	// be unique among the server's replicas. Default: derived from id.
	ServerID uint32 `yaml:"server_id"`
	// IncludeQuery puts the SQL statement that made a row change into
	// source.query (MySQL/MariaDB, from the binlog's row query annotations).
	// A statement that changes many rows is then repeated in every one of
	// them, so it is off by default, as in Debezium. Default: false.
	IncludeQuery bool `yaml:"include_query"`
	// TLS to the database. For PostgreSQL, sslmode in the DSN decides
	// whether TLS is used and whether the host name is verified; these
	// files supply the CA and client certificate.
	TLS TLS `yaml:"tls"`
}

// DefaultMaxRecordBytes is kafka.max_record_bytes when unset: the record
// batch limit of Kafka's own producer and of franz-go.
const DefaultMaxRecordBytes = 1000012

// DefaultCompression is kafka.compression when unset, chosen by the
// measurements in docs/benchmarks.md ("Compression codecs").
const DefaultCompression = "snappy"

// Compressions are the values kafka.compression accepts.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// Kafka is the destination cluster.
type Kafka struct {
	// Brokers is the seed list host:port. Required.
	Brokers []string `yaml:"brokers"`
	// TopicPrefix starts every topic name: <prefix>.<schema|database>.<table>.
	// Default: the id.
	TopicPrefix string `yaml:"topic_prefix"`
	// OffsetsTopic holds the relay positions. Default: cdcrelay_offsets.
	OffsetsTopic string `yaml:"offsets_topic"`
	// TopicPartitions for topics the relay creates. Default: 3.
	TopicPartitions int32 `yaml:"topic_partitions"`
	// TopicReplicationFactor for topics the relay creates. Default: 1.
	TopicReplicationFactor int16 `yaml:"topic_replication_factor"`
	// TopicCleanupPolicy for topics the relay creates: compact, delete or
	// compact,delete. Default: compact.
	TopicCleanupPolicy string `yaml:"topic_cleanup_policy"`
	// TransactionTimeout is the Kafka transaction timeout; a transaction
	// left open longer is aborted by the broker. Default: 60s.
	TransactionTimeout time.Duration `yaml:"transaction_timeout"`
	// A Kafka transaction is committed at a source transaction boundary
	// when the source has nothing more queued, or, under a backlog, once
	// the transaction holds BatchMaxEvents events or has been open
	// BatchLinger.
	//
	// BatchMaxEvents: default 2000.
	BatchMaxEvents int `yaml:"batch_max_events"`
	// BatchLinger: default 100ms.
	BatchLinger time.Duration `yaml:"batch_linger"`
	// MaxRecordBytes is the largest record batch the producer builds, and
	// so the largest record (an event of one row) it can send, before
	// compression. It must not exceed the topics' max.message.bytes.
	// Default: 1000012, as Kafka's producer and broker.
	MaxRecordBytes int32 `yaml:"max_record_bytes"`
	// Compression is the codec of the record batches the relay produces:
	// none, gzip, snappy, lz4 or zstd. Default: DefaultCompression.
	Compression string `yaml:"compression"`
	// ClientMetrics lets the Kafka clients push KIP-714 client metrics to
	// brokers that subscribe to them. Default: false; the relay's own
	// metrics are on its Prometheus endpoint.
	ClientMetrics bool `yaml:"client_metrics"`
	// TLS to the brokers.
	TLS TLS `yaml:"tls"`
	// SASL authentication to the brokers.
	SASL SASL `yaml:"sasl"`
	// Embedded runs the development broker (the cdcrelay-devbroker
	// command, beside cdcrelay or on PATH) listening on Brokers[0] for as
	// long as the relay runs. For demos and tests only.
	Embedded Embedded `yaml:"embedded"`
}

// TLS is a client TLS setup.
type TLS struct {
	// Enabled turns TLS on. Default: false (for kafka.tls); for
	// source.tls, see Source.TLS.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of CAs that sign the server certificate.
	// Default: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and key, for mutual
	// TLS. Both or neither. Default: none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server certificate.
	// Default: the host being dialled.
	ServerName string `yaml:"server_name"`
}

// SASL is the broker authentication.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Empty disables
	// SASL. Default: empty.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password comes from CDCRELAY_KAFKA_SASL_PASSWORD or PasswordFile,
	// never from the YAML file.
	Password     Secret `yaml:"-"`
	PasswordFile string `yaml:"password_file"`
}

// Embedded is the development broker that run starts beside the relay.
type Embedded struct {
	// Enabled starts it. Default: false.
	Enabled bool `yaml:"enabled"`
	// DataDir persists its data; empty keeps everything in memory.
	DataDir string `yaml:"data_dir"`
}

// Format is how events are encoded.
type Format struct {
	// Value is debezium-json (the Debezium envelope, read by Flink's
	// debezium-json format) or upsert (the after-row as plain JSON, null on
	// delete, for Flink's upsert-kafka). Default: debezium-json.
	Value string `yaml:"value"`
	// Tombstones writes a null-valued record after each delete so that
	// compaction can drop the key. Default: true.
	Tombstones *bool `yaml:"tombstones"`
	// Headers adds cdcrelay.position and cdcrelay.txid headers to each
	// record. Default: true.
	Headers *bool `yaml:"headers"`
	// Truncate is what a TRUNCATE of a captured table becomes: skip (a
	// warning and cdcrelay_truncates_skipped_total), event (a null-valued
	// record with the header cdcrelay.op=t, which Flink's debezium-json
	// skips; debezium-json only) or fail (the relay stops before it).
	// Default: skip.
	Truncate string `yaml:"truncate"`
}

// Values of source.unchanged_toast.
const (
	UnchangedToastRefuse = "refuse"
	UnchangedToastOmit   = "omit"
)

// Values of format.truncate.
const (
	TruncateSkip  = "skip"
	TruncateEvent = "event"
	TruncateFail  = "fail"
)

// Metrics is the Prometheus and health endpoint.
type Metrics struct {
	// Listen is host:port for /metrics, /healthz and /readyz; "off"
	// disables the server. Each relay on a host needs its own port; the
	// relay binds it before anything else. Default: 127.0.0.1:9187.
	Listen string `yaml:"listen"`
	// TableLimit bounds the values of the table label of the per-table
	// metrics: past that many tables, the others share the label _other.
	// 0 keeps one series per table. Default: 0.
	TableLimit int `yaml:"table_limit"`
}

// Log is the process log.
type Log struct {
	// Format is text or json. Default: text.
	Format string `yaml:"format"`
	// Level is debug, info, warn or error. Default: info.
	Level string `yaml:"level"`
}
