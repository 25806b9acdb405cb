package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
	"github.com/cdcrelay/cdcrelay/offsets"
	"github.com/cdcrelay/cdcrelay/sources"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// Config is what a verify run needs.
type Config struct {
	// Reader reads the source's tables. Required; Run does not close it.
	Reader sources.RowReader
	// Kafka holds the connection options of the broker.
	Kafka []kgo.Opt
	// OffsetsTopic and SourceID locate the stored position.
	OffsetsTopic, SourceID string
	// TopicPrefix names the tables' topics (format.Topic).
	TopicPrefix string
	// Upsert is true when the topics hold upsert rows, false for
	// debezium-json envelopes.
	Upsert bool
	// Only, when set, selects the tables to verify; the others are skipped.
	Only func(change.TableID) bool
	// Examples is how many examples of each kind of difference are printed.
	// Default: 0.
	Examples int
	// Settle is how long a re-check waits for the stored position to pass
	// its mark. Default: 0 (re-check at once).
	Settle time.Duration
	// ChunkSize is the number of rows per database read. Default: 10000.
	ChunkSize int
	// SortMemory bounds the memory of each of the two sorters of a table.
	// Default: DefaultSortMemory.
	SortMemory int
	// TempDir holds the sort runs of tables too big for SortMemory.
	// Default: os.TempDir().
	TempDir string
	// Out receives the report. Required.
	Out io.Writer
	// Progress receives progress lines; nil for none.
	Progress io.Writer
	// ProgressEvery is the time between two progress lines of one table.
	// Default: 10s.
	ProgressEvery time.Duration
}

// ErrDifferent is returned, wrapped with the count, when the database and
// Kafka differ.
var ErrDifferent = errors.New("difference(s) between the database and Kafka")

// ErrNotVerified is returned, wrapped with the count, when a table was
// refused (sources.RefusedError).
var ErrNotVerified = errors.New("table(s) not verified")

// ErrNoTable is returned when Only selects no captured table.
var ErrNoTable = errors.New("verify: no captured table selected")

const defaultChunkSize = 10000

// maxRecheck caps the keys remembered for the re-check.
const maxRecheck = 100000

// recheckRounds is how many times the keys still differing are re-checked.
const recheckRounds = 3

type verifier struct {
	cfg Config
}

// tableResult counts the differences of one table.
type tableResult struct {
	schema                 change.TableSchema
	hasher                 *rowHasher
	refused                string
	rows, keys             int
	missing, extra, differ int
	exMissing, exExtra     [][]byte
	exDiffer               [][]byte
	details                map[string][]colDiff // by key, for exDiffer
	recheck                [][]byte             // keys of differing, missing and extra rows
	recheckDropped         bool
}

func (r *tableResult) total() int { return r.missing + r.extra + r.differ }

func (r *tableResult) remember(key []byte) {
	if len(r.recheck) >= maxRecheck {
		r.recheckDropped = true
		return
	}
	r.recheck = append(r.recheck, append([]byte(nil), key...))
}

// Run compares every captured table with the latest state per key of its
// topic, re-checks the differences of a live system, and prints the report.
// It returns ErrDifferent when differences remain.
func Run(ctx context.Context, cfg Config) error {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = defaultChunkSize
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 10 * time.Second
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	v := &verifier{cfg: cfg}
	start, err := offsets.Load(ctx, cfg.Kafka, cfg.OffsetsTopic, cfg.SourceID)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "stored position at start: %s\n", positionOf(start))
	tables, err := cfg.Reader.Tables(ctx)
	if err != nil {
		return err
	}
	var results []*tableResult
	for _, ts := range tables {
		if cfg.Only != nil && !cfg.Only(ts.ID) {
			continue
		}
		res, err := v.verifyTable(ctx, ts)
		if err != nil {
			return fmt.Errorf("verify %s: %w", ts.ID, err)
		}
		results = append(results, res)
	}
	if cfg.Only != nil && len(results) == 0 {
		return ErrNoTable
	}
	// A live system: differences may only be changes the stream has not
	// delivered yet. Re-check those keys once the stored position has
	// passed a fresh read of them; a key written again between the re-read
	// and the mark differs once more, hence more than one round.
	for round := 0; round < recheckRounds && anyRecheck(results); round++ {
		passed, err := v.recheck(ctx, results)
		if err != nil {
			return err
		}
		if !passed {
			break
		}
	}
	for _, r := range results {
		if err := v.describe(ctx, r); err != nil {
			return fmt.Errorf("verify %s: %w", r.schema.ID, err)
		}
	}
	end, err := offsets.Load(ctx, cfg.Kafka, cfg.OffsetsTopic, cfg.SourceID)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "stored position at end:   %s\n", positionOf(end))
	bad, refused := 0, 0
	for _, r := range results {
		v.print(r)
		if r.refused != "" {
			refused++
			continue
		}
		bad += r.total()
	}
	switch {
	case bad > 0 && refused > 0:
		return fmt.Errorf("%d %w; %d %w", bad, ErrDifferent, refused, ErrNotVerified)
	case bad > 0:
		return fmt.Errorf("%d %w", bad, ErrDifferent)
	case refused > 0:
		return fmt.Errorf("%d %w", refused, ErrNotVerified)
	}
	fmt.Fprintf(cfg.Out, "verify: %d table(s) match\n", len(results))
	return nil
}

func anyRecheck(rs []*tableResult) bool {
	for _, r := range rs {
		if r.total() > 0 && len(r.recheck) > 0 {
			return true
		}
	}
	return false
}

func positionOf(r *offsets.Record) string {
	if r == nil {
		return "none (nothing committed yet)"
	}
	return fmt.Sprintf("%s (written %s)", r.Position, r.Written().UTC().Format(time.RFC3339))
}

func (v *verifier) topic(id change.TableID) string { return format.Topic(v.cfg.TopicPrefix, id) }

// verifyTable reads the topic's latest state per key and the table, each
// into a sorter by key hash, and merges the two.
func (v *verifier) verifyTable(ctx context.Context, ts change.TableSchema) (*tableResult, error) {
	res := &tableResult{schema: ts, hasher: newRowHasher(ts)}
	estimate, err := v.cfg.Reader.Estimate(ctx, ts.ID)
	var refused *sources.RefusedError
	if errors.As(err, &refused) {
		res.refused = refused.Reason
		return res, nil
	}
	topicSide := newSorter(v.cfg.TempDir, v.cfg.SortMemory)
	defer topicSide.close()
	dbSide := newSorter(v.cfg.TempDir, v.cfg.SortMemory)
	defer dbSide.close()

	var records int64
	if ends, starts, err := kafkaclient.StableEnds(ctx, v.cfg.Kafka, v.topic(ts.ID)); err == nil {
		for p, end := range ends[v.topic(ts.ID)] {
			records += max(0, end-starts[v.topic(ts.ID)][p]) // markers included: an upper bound
		}
	}
	prog := v.progress(ts.ID, "records read from "+v.topic(ts.ID), records)
	var seq uint64
	err = v.readTopic(ctx, v.topic(ts.ID), func(r *kgo.Record, row []byte) error {
		seq++
		prog.add(1)
		state := uint64(absent)
		if row != nil {
			var err error
			if state, err = res.hasher.topicRow(row); err != nil {
				return fmt.Errorf("%s key %s: %w", v.topic(ts.ID), r.Key, err)
			}
		}
		return topicSide.add(entry{hash: keyHash(r.Key), seq: seq, state: state, key: r.Key})
	})
	if err != nil {
		return nil, err
	}
	prog.done()

	prog = v.progress(ts.ID, "rows read from the database", estimate)
	var after snapshot.Key
	for {
		rows, err := v.cfg.Reader.ReadChunk(ctx, ts.ID, after, v.cfg.ChunkSize)
		if errors.As(err, &refused) {
			res.refused = refused.Reason
			return res, nil
		}
		if err != nil {
			return nil, err
		}
		for i, row := range rows {
			ev := row.Event
			err := dbSide.add(entry{hash: keyHash(ev.Key), seq: uint64(res.rows + i), state: res.hasher.dbRow(ev.After), key: ev.Key})
			if err != nil {
				return nil, err
			}
		}
		res.rows += len(rows)
		prog.add(len(rows))
		if len(rows) < v.cfg.ChunkSize {
			break
		}
		after = append(snapshot.Key(nil), rows[len(rows)-1].Key...)
	}
	prog.done()
	return res, v.merge(res, dbSide, topicSide)
}

// merge walks both sides in key-hash order and counts the differences.
func (v *verifier) merge(res *tableResult, dbSide, topicSide *sorter) error {
	dbIt, err := dbSide.iterate()
	if err != nil {
		return err
	}
	ti, err := topicSide.iterate()
	if err != nil {
		return err
	}
	tIt := &latest{it: ti}
	nextLive := func() (entry, bool, error) {
		for {
			e, ok, err := tIt.next()
			if err != nil || !ok || e.state != absent {
				return e, ok, err
			}
		}
	}
	d, dok, err := dbIt.next()
	if err != nil {
		return err
	}
	t, tok, err := nextLive()
	if err != nil {
		return err
	}
	for dok || tok {
		switch {
		case dok && (!tok || d.hash < t.hash):
			res.missing++
			if len(res.exMissing) < v.cfg.Examples {
				res.exMissing = append(res.exMissing, append([]byte(nil), d.key...))
			}
			res.remember(d.key)
			d, dok, err = dbIt.next()
		case tok && (!dok || t.hash < d.hash):
			res.keys++
			res.extra++
			if len(res.exExtra) < v.cfg.Examples {
				res.exExtra = append(res.exExtra, append([]byte(nil), t.key...))
			}
			res.remember(t.key)
			t, tok, err = nextLive()
		default:
			res.keys++
			if d.state != t.state {
				res.differ++
				if len(res.exDiffer) < v.cfg.Examples {
					res.exDiffer = append(res.exDiffer, append([]byte(nil), d.key...))
				}
				res.remember(d.key)
			}
			if d, dok, err = dbIt.next(); err != nil {
				return err
			}
			t, tok, err = nextLive()
		}
		if err != nil {
			return err
		}
	}
	return nil
}
