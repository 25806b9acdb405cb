package change

// TableSchema describes a captured table as it lands in Kafka: the columns in
// table order, with the Flink SQL type that reads each encoded value.
type TableSchema struct {
	ID      TableID
	Columns []ColumnSchema
	// Key lists the primary-key column names in key order.
	Key []string
}

// ColumnSchema is one column of a TableSchema.
type ColumnSchema struct {
	Name       string
	SourceType string // the database's type name, e.g. "numeric(12,2)"
	FlinkType  string // the Flink SQL type, e.g. "DECIMAL(12, 2)" or "STRING"
	Nullable   bool
}
