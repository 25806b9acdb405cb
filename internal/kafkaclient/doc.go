// Package kafkaclient holds the franz-go helpers that every part reading
// Kafka shares, without knowing the config file: the one way to read topics
// to their last stable offset (ReadToEnd, StableEnds) and the classification
// of connection errors that no retry fixes (ConnectFatal, Permanent). The
// client options themselves come from internal/kafkaconfig, so that the
// relay and the offsets store depend on this package and not on config.
//
// Invariant: a read is read_committed and stops at the last stable offsets
// taken when it starts.
package kafkaclient
