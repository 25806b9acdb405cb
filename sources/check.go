package sources

import (
	"fmt"
	"io"
)

// Level grades one preflight finding.
type Level int

const (
	OK    Level = iota // the setting is as required
	Warn               // works, but a user should know (e.g. unlimited WAL retention)
	Block              // run refuses to start
)

func (l Level) String() string {
	switch l {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	}
	return "FAIL"
}

// Finding is one line of a preflight report.
type Finding struct {
	Level Level
	// Subject is the setting, privilege or object checked, e.g. "wal_level"
	// or "table public.orders".
	Subject string
	// Detail says what was found and, when it is not OK, how to fix it, in
	// one line.
	Detail string
}

// Report is the result of a source's preflight.
type Report []Finding

// Blocking returns the findings that stop run from starting.
func (r Report) Blocking() []Finding {
	var out []Finding
	for _, f := range r {
		if f.Level == Block {
			out = append(out, f)
		}
	}
	return out
}

// Print writes one line per finding.
func (r Report) Print(w io.Writer) {
	for _, f := range r {
		fmt.Fprintf(w, "%-4s  %s: %s\n", f.Level, f.Subject, f.Detail)
	}
}
