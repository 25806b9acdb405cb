package verify

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cdcrelay/cdcrelay/change"
)

// maxShown is the longest value or key a report line shows; longer ones
// are cut and say how long they were.
const maxShown = 80

// shown cuts b to maxShown bytes (at a character boundary); nil is
// "(absent)".
func shown(b []byte) string {
	if b == nil {
		return "(absent)"
	}
	if len(b) <= maxShown {
		return string(b)
	}
	n := maxShown
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return fmt.Sprintf("%s… (%d bytes)", b[:n], len(b))
}

func (v *verifier) print(r *tableResult) {
	out := v.cfg.Out
	if r.refused != "" {
		fmt.Fprintf(out, "%s: NOT VERIFIED: %s\n", r.schema.ID, r.refused)
		return
	}
	status := "ok"
	if r.total() > 0 {
		status = "DIFFERENT"
	}
	for _, ex := range [][][]byte{r.exMissing, r.exExtra, r.exDiffer} {
		slices.SortFunc(ex, bytes.Compare)
	}
	fmt.Fprintf(out, "%s: %s: %d rows in the database, %d keys in %s; missing %d, extra %d, differing %d\n",
		r.schema.ID, status, r.rows, r.keys, v.topic(r.schema.ID), r.missing, r.extra, r.differ)
	for _, k := range r.exMissing {
		fmt.Fprintf(out, "  missing in Kafka: %s\n", shown(k))
	}
	for _, k := range r.exExtra {
		fmt.Fprintf(out, "  extra in Kafka:   %s\n", shown(k))
	}
	for _, k := range r.exDiffer {
		d, ok := r.details[string(k)]
		if !ok {
			fmt.Fprintf(out, "  differing:        %s\n", shown(k))
			continue
		}
		names := make([]string, len(d))
		for i, c := range d {
			names[i] = c.name
		}
		fmt.Fprintf(out, "  differing:        %s: %s\n", shown(k), strings.Join(names, ", "))
		for _, c := range d {
			fmt.Fprintf(out, "    %s: database %s\n", c.name, shown(c.db))
			fmt.Fprintf(out, "    %s  Kafka    %s\n", strings.Repeat(" ", len(c.name)), shown(c.topic))
		}
	}
	if r.recheckDropped {
		fmt.Fprintf(out, "  (too many differences to re-check them all)\n")
	}
}

// progress prints a line about one phase of one table at most every
// ProgressEvery, and one when the phase is done. With an estimate of the
// total, the lines show a percentage and the time left.
type progress struct {
	w     func(format string, args ...any)
	every time.Duration
	table change.TableID
	what  string
	total int64 // estimate; 0 when unknown
	n     int64
	start time.Time
	last  time.Time
}

func (v *verifier) progress(t change.TableID, what string, total int64) *progress {
	now := time.Now()
	return &progress{
		w:     func(f string, a ...any) { fmt.Fprintf(v.cfg.Progress, f, a...) },
		every: v.cfg.ProgressEvery, table: t, what: what, total: total, start: now, last: now,
	}
}

func (p *progress) add(n int) {
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.line("")
	}
}

func (p *progress) line(suffix string) {
	el := time.Since(p.start)
	rate := float64(p.n) / max(el.Seconds(), 1e-3)
	est := ""
	if p.total > 0 && suffix == "" && p.n < p.total {
		left := time.Duration(float64(p.total-p.n) / max(rate, 1e-3) * float64(time.Second))
		est = fmt.Sprintf(", ~%d%%, about %s left", p.n*100/p.total, left.Round(time.Second))
	}
	p.w("verify: %s: %d %s (%.0f/s, %s%s)%s\n", p.table, p.n, p.what, rate, el.Round(time.Second), est, suffix)
}

func (p *progress) done() { p.line(", done") }
