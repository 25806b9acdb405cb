// Package gensource is a test-only sources.Source that generates numbered
// transactions of events, so that relay tests can check the output for loss,
// duplicates and per-key order without a database.
//
// Invariant: the stream is a pure function of its parameters: transaction n
// always holds the same events, so any prefix of it can be checked exactly.
package gensource
