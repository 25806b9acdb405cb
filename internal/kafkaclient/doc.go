// Package kafkaclient turns the kafka section of the config into franz-go
// client options (seeds, TLS, SASL, and the compression of produced batches),
// shared by every client the relay and its commands make, and holds the one
// way to read topics to their last stable offset (ReadToEnd).
//
// Invariant: the options never carry a secret into a log line: franz-go is
// given the SASL password through a closure, and no option is printed.
package kafkaclient
