// Package flinkddl writes the Flink SQL CREATE TABLE statements that read the
// topics cdcrelay produces.
//
// Invariant: the options in every statement read only committed Kafka data
// (properties.isolation.level=read_committed) and need no Flink checkpoint to
// resume: debezium-json tables restart from the consumer group's committed
// offsets, upsert-kafka tables rebuild from the earliest offset of their
// compacted topic.
package flinkddl
