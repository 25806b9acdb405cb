// Package metrics defines the relay's Prometheus metrics and serves them with
// the health endpoints.
//
// Invariant: metrics are registered on the Registerer passed in, never on the
// global one, so two relays in one process (as in tests) never collide.
package metrics
