package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is every metric the relay and its sources export. All fields are
// safe for concurrent use.
type Metrics struct {
	// Events counts events committed to Kafka, by table and op (c, u, d, r).
	Events *prometheus.CounterVec
	// Transactions counts Kafka transactions by result: commit or abort.
	Transactions *prometheus.CounterVec
	// TransactionSeconds is the time from BeginTransaction to a finished
	// EndTransaction.
	TransactionSeconds prometheus.Histogram
	// BatchEvents is the number of events per committed Kafka transaction.
	BatchEvents prometheus.Histogram
	// SourceLagBytes is, for PostgreSQL, the server's current WAL LSN minus
	// the last acked LSN; for MySQL, the bytes of binlog not yet committed.
	SourceLagBytes prometheus.Gauge
	// SourceLagSeconds is now minus the source commit time of the last
	// transaction committed to Kafka, while changes are pending.
	SourceLagSeconds prometheus.Gauge
	// Snapshot progress per table.
	SnapshotRowsDone      *prometheus.GaugeVec
	SnapshotRowsEstimated *prometheus.GaugeVec
	SnapshotChunksDone    *prometheus.GaugeVec
	SnapshotRowsPerSecond *prometheus.GaugeVec
	// SnapshotSecondsLeft is the estimated time left of the table being
	// snapshotted, at its rate so far; -1 when unknown, 0 when done.
	SnapshotSecondsLeft *prometheus.GaugeVec
	// SnapshotChunksReread counts snapshot chunks dropped and read again
	// because their read could not be proven to see every transaction
	// committed before the chunk's low watermark.
	SnapshotChunksReread prometheus.Counter
	// Reconnects counts reconnects to the source or Kafka, by cause.
	Reconnects *prometheus.CounterVec
	// Restarts counts restarts of the relay loop, by cause.
	Restarts *prometheus.CounterVec
	// CommittedLSN is the numeric position of the last committed checkpoint
	// (PostgreSQL LSN); 0 for sources without one.
	CommittedLSN prometheus.Gauge
	// CommittedTimestamp is the source commit time of the last committed
	// checkpoint, in Unix seconds.
	CommittedTimestamp prometheus.Gauge
	// Up is 1 while the relay streams.
	Up prometheus.Gauge
	// TruncatesSkipped counts TRUNCATEs of captured tables that sent
	// nothing to Kafka (format.truncate: skip), by table.
	TruncatesSkipped *prometheus.CounterVec
	// SchemaChanges counts changes of a captured table's columns, types or
	// key seen in the stream, by table.
	SchemaChanges *prometheus.CounterVec
	// SnapshotTables counts the tables waiting for their snapshot (state
	// waiting, the one being read included) and those finished (done), in
	// series whose number does not grow with the tables.
	SnapshotTables *prometheus.GaugeVec

	tables tableLabels
}

// OtherTable is the table label of every table past the limit set with
// LimitTables.
const OtherTable = "_other"

// tableLabels bounds the values of the table label.
type tableLabels struct {
	mu    sync.Mutex
	limit int
	seen  map[string]bool
}

// LimitTables bounds the table label to n values: the first n tables a
// metric is recorded for keep their name, every later one is counted under
// OtherTable. Counters of those tables add up there; gauges hold the last
// value set. 0, the default, keeps every name. It must be called before the
// metrics are used.
func (m *Metrics) LimitTables(n int) {
	m.tables.limit = n
	m.tables.seen = map[string]bool{}
}

// Table returns the table label value for table (see LimitTables).
func (m *Metrics) Table(table string) string {
	t := &m.tables
	if t.limit <= 0 {
		return table
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[table] {
		return table
	}
	if len(t.seen) < t.limit {
		t.seen[table] = true
		return table
	}
	return OtherTable
}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcrelay_events_total", Help: "Events committed to Kafka, by table and op.",
		}, []string{"table", "op"}),
		Transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcrelay_kafka_transactions_total", Help: "Kafka transactions ended, by result (commit or abort).",
		}, []string{"result"}),
		TransactionSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cdcrelay_kafka_transaction_seconds", Help: "Duration of Kafka transactions, begin to end.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		BatchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cdcrelay_batch_events", Help: "Events per committed Kafka transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		SourceLagBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdcrelay_source_lag_bytes", Help: "Source log bytes not yet acknowledged (PostgreSQL: current WAL LSN minus acked LSN).",
		}),
		SourceLagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdcrelay_source_lag_seconds", Help: "Now minus the source commit time of the last change committed to Kafka.",
		}),
		SnapshotRowsDone: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcrelay_snapshot_rows_done", Help: "Snapshot rows committed to Kafka, by table.",
		}, []string{"table"}),
		SnapshotRowsEstimated: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcrelay_snapshot_rows_estimated", Help: "Estimated rows of the table being snapshotted.",
		}, []string{"table"}),
		SnapshotChunksDone: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcrelay_snapshot_chunks_done", Help: "Snapshot chunks committed to Kafka, by table.",
		}, []string{"table"}),
		SnapshotRowsPerSecond: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcrelay_snapshot_rows_per_second", Help: "Recent snapshot read rate, by table.",
		}, []string{"table"}),
		SnapshotSecondsLeft: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcrelay_snapshot_seconds_left", Help: "Estimated seconds left of the table's snapshot (estimated rows over the rate so far); -1 when unknown, 0 when done.",
		}, []string{"table"}),
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcrelay_reconnects_total", Help: "Reconnects to the source or Kafka, by cause.",
		}, []string{"cause"}),
		Restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcrelay_restarts_total", Help: "Restarts of the relay loop from the stored offsets, by cause.",
		}, []string{"cause"}),
		CommittedLSN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdcrelay_committed_lsn", Help: "PostgreSQL LSN of the last checkpoint committed to Kafka.",
		}),
		CommittedTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdcrelay_committed_timestamp_seconds", Help: "Source commit time of the last checkpoint committed to Kafka.",
		}),
		Up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdcrelay_up", Help: "1 while the relay is streaming.",
		}),
		TruncatesSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcrelay_truncates_skipped_total", Help: "TRUNCATEs of captured tables that sent nothing to Kafka (format.truncate: skip), by table.",
		}, []string{"table"}),
		SchemaChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcrelay_schema_changes_total", Help: "Changes of a captured table's columns, types or key seen in the stream, by table.",
		}, []string{"table"}),
		SnapshotChunksReread: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cdcrelay_snapshot_chunks_reread_total", Help: "Snapshot chunks dropped and read again because their read missed a transaction committed before the chunk's low watermark (PostgreSQL).",
		}),
		SnapshotTables: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcrelay_snapshot_tables", Help: "Tables waiting for their snapshot (the one being read included) and finished, by state.",
		}, []string{"state"}),
	}
	reg.MustRegister(m.Events, m.Transactions, m.TransactionSeconds, m.BatchEvents,
		m.SourceLagBytes, m.SourceLagSeconds, m.SnapshotRowsDone, m.SnapshotRowsEstimated,
		m.SnapshotChunksDone, m.SnapshotRowsPerSecond, m.SnapshotSecondsLeft, m.Reconnects, m.Restarts,
		m.CommittedLSN, m.CommittedTimestamp, m.Up, m.TruncatesSkipped, m.SchemaChanges, m.SnapshotTables, m.SnapshotChunksReread)
	return m
}

// Discard returns metrics registered on a throwaway registry, for tools and
// tests that do not export them.
func Discard() *Metrics { return New(prometheus.NewRegistry()) }
