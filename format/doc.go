// Package format turns change events into Kafka records: the topic name, the
// key, and the value in the debezium-json or upsert format.
//
// Invariant: encoding is a pure function of the event and the options; the
// same event always gives the same key bytes and the same topic, so per-key
// order holds through Kafka's key partitioning.
package format
