package config

import "log/slog"

// Secret is a password. It never prints itself: String, GoString, its
// slog value and its YAML and JSON forms all show a fixed mask.
type Secret string

const mask = "[redacted]"

// Reveal returns the secret for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return mask
}

func (s Secret) GoString() string { return s.String() }

func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
