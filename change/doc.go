// Package change holds the events that sources hand to the relay, and the
// table schemas they describe.
//
// Invariant: an event is self-contained and immutable once sent; every value
// in it is already encoded as the JSON that lands in Kafka, so the relay never
// needs to know which database it came from.
package change
