// Package kafkaconfig turns the kafka section of the config into franz-go
// client options (seeds, TLS, SASL, and the compression of produced batches),
// shared by every client the relay and its commands make, and holds the
// Kafka half of `cdcrelay check`.
//
// Invariant: the options never carry a secret into a log line: franz-go is
// given the SASL password through a closure, and no option is printed.
// Check changes nothing in the cluster and never fences a running relay.
package kafkaconfig
