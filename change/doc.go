// Package change holds the events that sources hand to the relay, and the
// table schemas they describe.
//
// Invariant: an event is self-contained, and nobody changes it between its
// send and the Ack of a checkpoint at or after it; every value in it is
// already encoded as the JSON that lands in Kafka, so the relay never needs
// to know which database it came from. After that Ack the source may reuse
// its memory (see sources.Stream): whoever keeps an event longer copies it
// with Event.Clone.
package change
