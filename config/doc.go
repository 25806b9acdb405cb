// Package config loads the relay's one YAML file, applies defaults and
// CDCRELAY_* environment overrides, reads secrets from the environment or
// files, and validates the result before anything connects.
//
// Invariant: a *Config returned by Load is complete and valid, and its
// secrets never print: they are of type Secret.
package config
