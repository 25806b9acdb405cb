package main

// verify compares each captured table with the latest state per key of its
// compacted topic. The memory bound is one hash map per table of
// 8-byte key hash -> 8-byte value hash for the topic side (about 40 bytes
// per key with Go's map overhead), plus one chunk of rows; see
// docs/verify.md.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math/big"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
	"github.com/cdcrelay/cdcrelay/metrics"
	"github.com/cdcrelay/cdcrelay/offsets"
)

func init() {
	register(&command{
		name:    "verify",
		summary: "compare each captured table with the latest state per key in its topic (read_committed); exits 1 on any difference",
		usage:   "--config F [--table schema.table] [--examples N] [--settle D]",
		flags: func(fs *flag.FlagSet) func(context.Context, *cliEnv) error {
			path := fs.String("config", "", "path of the YAML config `file` (required)")
			table := fs.String("table", "", "verify only this captured `table` (schema.table); default: every captured table")
			examples := fs.Int("examples", 5, "print up to `N` examples of each kind of difference")
			settle := fs.Duration("settle", 2*time.Minute, "how long the re-check of differing keys waits for the stored position to pass the table read")
			return func(ctx context.Context, env *cliEnv) error {
				cfg, err := loadConfig(*path)
				if err != nil {
					return err
				}
				v := &verifier{cfg: cfg, out: env.stdout, examples: *examples, settle: *settle}
				if *table != "" {
					ref, err := config.ParseTable(*table)
					if err != nil || ref.Name == "*" {
						return &exitError{code: 2, err: fmt.Errorf("--table %q: name one table as schema.table", *table)}
					}
					v.only = &ref
				}
				return v.run(ctx)
			}
		},
	})
}

// rowScanner reads captured tables in primary-key order, each row encoded
// exactly as the stream encodes it. Every source should implement it (see
// docs/verify.md); until one does, verify uses a built-in reader for its
// database type. Calls come from one goroutine.
type rowScanner interface {
	// Tables returns the captured tables that exist now, with their key
	// columns.
	Tables(ctx context.Context) ([]change.TableSchema, error)
	// ScanTable returns up to limit rows of table whose key is greater than
	// after (the Key of the last row of the previous call; nil for the
	// first), in key order, as op=r events with Key and After set.
	ScanTable(ctx context.Context, table change.TableID, after []byte, limit int) ([]*change.Event, error)
	// ReadKeys returns the current rows of the given keys (Key bytes as in
	// the events); absent keys are left out.
	ReadKeys(ctx context.Context, table change.TableID, keys [][]byte) ([]*change.Event, error)
	// Mark returns the source's current log position and a predicate on
	// position labels (an offsets record's Position, or a record's
	// cdcrelay.position header): true when the label is at or past it.
	Mark(ctx context.Context) (label string, reached func(position string) bool, err error)
	Close() error
}

// uncomparedColumns is implemented by a scanner that cannot encode some
// columns exactly as the stream does; those columns are left out of the
// comparison on both sides, and verify says so.
type uncomparedColumns interface {
	Uncompared(table change.TableID) []string
}

type verifier struct {
	cfg      *config.Config
	out      io.Writer
	only     *config.TableRef
	examples int
	settle   time.Duration
	kopts    []kgo.Opt
}

// tableResult counts the differences of one table.
type tableResult struct {
	table                  change.TableID
	rows, keys             int
	missing, extra, differ int
	exMissing, exExtra     []string
	exDiffer               []string
	recheck                [][]byte // keys of differing and missing rows
	recheckDropped         bool
	uncompared             []string
}

func (r *tableResult) total() int { return r.missing + r.extra + r.differ }

func (v *verifier) run(ctx context.Context) error {
	kopts, err := kafkaclient.Opts(&v.cfg.Kafka, nil)
	if err != nil {
		return err
	}
	v.kopts = kopts
	sc, err := v.scanner()
	if err != nil {
		return err
	}
	defer sc.Close()

	start, err := offsets.Load(ctx, kopts, v.cfg.Kafka.OffsetsTopic, v.cfg.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(v.out, "stored position at start: %s\n", positionOf(start))
	tables, err := sc.Tables(ctx)
	if err != nil {
		return err
	}
	var results []*tableResult
	for _, t := range tables {
		if v.only != nil && !v.only.Matches(t.ID.Namespace, t.ID.Name) {
			continue
		}
		res, err := v.verifyTable(ctx, sc, t)
		if err != nil {
			return fmt.Errorf("verify %s: %w", t.ID, err)
		}
		results = append(results, res)
	}
	if v.only != nil && len(results) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("--table %s is not a captured table", v.only)}
	}

	// A live system: differences may only be changes the stream has not
	// delivered yet. Re-check those keys once the stored position has
	// passed a fresh read of them.
	// Up to three rounds, each on the keys still differing: a key written
	// again between the re-read and the position mark differs once more.
	for round := 0; round < 3 && anyDiff(results); round++ {
		passed, err := v.recheck(ctx, sc, results)
		if err != nil {
			return err
		}
		if !passed {
			break
		}
	}
	end, err := offsets.Load(ctx, kopts, v.cfg.Kafka.OffsetsTopic, v.cfg.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(v.out, "stored position at end:   %s\n", positionOf(end))
	bad := 0
	for _, r := range results {
		v.print(r)
		bad += r.total()
	}
	if bad > 0 {
		return fmt.Errorf("%d difference(s) between the database and Kafka", bad)
	}
	fmt.Fprintf(v.out, "verify: %d table(s) match\n", len(results))
	return nil
}

func anyDiff(rs []*tableResult) bool {
	for _, r := range rs {
		if r.total() > 0 {
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

func (v *verifier) print(r *tableResult) {
	status := "ok"
	if r.total() > 0 {
		status = "DIFFERENT"
	}
	fmt.Fprintf(v.out, "%s: %s: %d rows in the database, %d keys in %s; missing %d, extra %d, differing %d\n",
		r.table, status, r.rows, r.keys, format.Topic(v.cfg.Kafka.TopicPrefix, r.table), r.missing, r.extra, r.differ)
	for _, ex := range r.exMissing {
		fmt.Fprintf(v.out, "  missing in Kafka: %s\n", ex)
	}
	for _, ex := range r.exExtra {
		fmt.Fprintf(v.out, "  extra in Kafka:   %s\n", ex)
	}
	for _, ex := range r.exDiffer {
		fmt.Fprintf(v.out, "  differing:        %s\n", ex)
	}
	if len(r.uncompared) > 0 {
		fmt.Fprintf(v.out, "  not compared (this build cannot encode them as the stream does): %s\n", strings.Join(r.uncompared, ", "))
	}
	if r.recheckDropped {
		fmt.Fprintf(v.out, "  (too many differences to re-check them all)\n")
	}
}

// maxRecheck caps the keys remembered for the re-check.
const maxRecheck = 100000

func (v *verifier) verifyTable(ctx context.Context, sc rowScanner, ts change.TableSchema) (*tableResult, error) {
	res := &tableResult{table: ts.ID}
	skip := v.skipped(sc, ts.ID)
	for c := range skip {
		res.uncompared = append(res.uncompared, c)
	}
	sort.Strings(res.uncompared)
	topic := format.Topic(v.cfg.Kafka.TopicPrefix, ts.ID)
	latest := map[uint64]uint64{}
	err := v.readTopic(ctx, topic, func(key, value []byte, _ string) error {
		kh := keyHash(key)
		row, live, err := v.latestRow(value)
		if err != nil {
			return fmt.Errorf("%s key %s: %w", topic, key, err)
		}
		if !live {
			delete(latest, kh)
			return nil
		}
		latest[kh] = rowHash(row, skip)
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.keys = len(latest)
	chunk := v.cfg.Source.SnapshotChunkSize
	if chunk <= 0 {
		chunk = 10000
	}
	var after []byte
	exampleKeys := map[uint64][]byte{}
	for {
		evs, err := sc.ScanTable(ctx, ts.ID, after, chunk)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			res.rows++
			kh := keyHash(ev.Key)
			got, ok := latest[kh]
			switch {
			case !ok:
				res.missing++
				if len(res.exMissing) < v.examples {
					res.exMissing = append(res.exMissing, string(ev.Key))
				}
				res.remember(ev.Key)
			case got != rowHash(rowJSON(ev.After), skip):
				res.differ++
				if len(exampleKeys) < v.examples {
					exampleKeys[kh] = ev.Key
				}
				res.remember(ev.Key)
			}
			delete(latest, kh)
		}
		if len(evs) < chunk {
			break
		}
		after = evs[len(evs)-1].Key
	}
	res.extra = len(latest)
	if res.extra == 0 && len(exampleKeys) == 0 {
		return res, nil
	}
	// A second read of the topic finds the key bytes of extra keys and the
	// topic's rows of differing keys, for the examples.
	extraLeft := latest
	err = v.readTopic(ctx, topic, func(key, _ []byte, _ string) error {
		kh := keyHash(key)
		if _, ok := extraLeft[kh]; ok {
			delete(extraLeft, kh)
			if len(res.exExtra) < v.examples {
				res.exExtra = append(res.exExtra, string(key))
			}
			res.remember(key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range exampleKeys {
		res.exDiffer = append(res.exDiffer, string(k))
	}
	sort.Strings(res.exDiffer)
	return res, nil
}

func (r *tableResult) remember(key []byte) {
	if len(r.recheck) >= maxRecheck {
		r.recheckDropped = true
		return
	}
	r.recheck = append(r.recheck, append([]byte(nil), key...))
}

// absent is the state hash of a key with no row.
const absent = 0

// recheck settles the differing keys of a live system. It marks the source
// position (M0), reads the keys from the database, marks again (M1), waits
// until the stored position passes M1, and reads the keys' history from the
// topic. The database read saw every transaction before M0, none after M1,
// and some of those between, so a key agrees when its database state is the
// topic's state as of M0 or after one of its records positioned in
// [M0, M1), and the topic's latest record is that state or a later
// positioned change. Records without a position header (snapshot rows, or
// anything not written by the relay) count as before M0 when they come
// before the first record at M0 or later, and as unexplained after it.
//
// It reports whether the stored position passed M1 in time.
func (v *verifier) recheck(ctx context.Context, sc rowScanner, results []*tableResult) (bool, error) {
	_, atM0, err := sc.Mark(ctx)
	if err != nil {
		return false, err
	}
	fresh := map[change.TableID]map[uint64]uint64{}
	for _, r := range results {
		if len(r.recheck) == 0 {
			continue
		}
		skip := v.skipped(sc, r.table)
		m := map[uint64]uint64{}
		for _, k := range r.recheck {
			m[keyHash(k)] = absent
		}
		for lo := 0; lo < len(r.recheck); lo += 1000 {
			evs, err := sc.ReadKeys(ctx, r.table, r.recheck[lo:min(lo+1000, len(r.recheck))])
			if err != nil {
				return false, err
			}
			for _, ev := range evs {
				m[keyHash(ev.Key)] = liveHash(rowJSON(ev.After), skip)
			}
		}
		fresh[r.table] = m
	}
	label, atM1, err := sc.Mark(ctx)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(v.out, "differences found; re-checking them once the stored position passes %s\n", label)
	passed, err := v.waitPosition(ctx, atM1)
	if err != nil {
		return false, err
	}
	if !passed {
		fmt.Fprintf(v.out, "the stored position did not pass %s within %s (is the relay running?); re-checking anyway\n", label, v.settle)
	}
	for _, r := range results {
		if len(r.recheck) == 0 {
			continue
		}
		db := fresh[r.table]
		skip := v.skipped(sc, r.table)
		hist := map[uint64]*keyHistory{}
		for kh := range db {
			hist[kh] = &keyHistory{ok: map[uint64]bool{}}
		}
		err := v.readTopic(ctx, format.Topic(v.cfg.Kafka.TopicPrefix, r.table), func(key, value []byte, pos string) error {
			h := hist[keyHash(key)]
			if h == nil {
				return nil
			}
			row, live, err := v.latestRow(value)
			if err != nil {
				return err
			}
			state := uint64(absent)
			if live {
				state = liveHash(row, skip)
			}
			h.observe(state, pos, atM0, atM1)
			return nil
		})
		if err != nil {
			return false, err
		}
		var left [][]byte
		var missing, extra, differ int
		for _, k := range r.recheck {
			kh := keyHash(k)
			h, want := hist[kh], db[kh]
			if h.agrees(want) {
				continue
			}
			left = append(left, k)
			switch {
			case want != absent && h.cur == absent:
				missing++
			case want == absent:
				extra++
			default:
				differ++
			}
		}
		still := func(key []byte) bool {
			kh := keyHash(key)
			return !hist[kh].agrees(db[kh])
		}
		r.recheck = left
		if !r.recheckDropped {
			r.missing, r.extra, r.differ = missing, extra, differ
			r.exMissing = filterExamples(r.exMissing, still)
			r.exExtra = filterExamples(r.exExtra, still)
			r.exDiffer = filterExamples(r.exDiffer, still)
		}
	}
	return passed, nil
}

// liveHash is rowHash, never equal to absent.
func liveHash(row []byte, skip map[string]bool) uint64 {
	if h := rowHash(row, skip); h != absent {
		return h
	}
	return 1
}

// keyHistory follows one key through the topic during a re-check.
type keyHistory struct {
	cur       uint64          // the state after the last record
	asOfM0    uint64          // the state before the first record at M0 or later
	reachedM0 bool            // a record positioned at M0 or later was seen
	ok        map[uint64]bool // states after records positioned in [M0, M1)
	newer     bool            // the last record is positioned at M0 or later
}

func (h *keyHistory) observe(state uint64, pos string, atM0, atM1 func(string) bool) {
	if pos != "" && atM0(pos) {
		if !h.reachedM0 {
			h.reachedM0, h.asOfM0 = true, h.cur
		}
		if !atM1(pos) {
			h.ok[state] = true
		}
		h.newer = true
	} else {
		// Before M0, or a record without position after M0 that nothing
		// explains: either way the latest state must match by itself.
		h.newer = false
	}
	h.cur = state
}

// agrees reports whether the database state want is explained by the
// key's history.
func (h *keyHistory) agrees(want uint64) bool {
	if h == nil {
		return want == absent
	}
	if h.cur == want {
		return true
	}
	if !h.newer {
		return false
	}
	return want == h.asOfM0 || h.ok[want]
}

// waitPosition waits up to --settle until the stored position reaches a
// mark, and reports whether it did.
func (v *verifier) waitPosition(ctx context.Context, reached func(string) bool) (bool, error) {
	deadline := time.Now().Add(v.settle)
	for {
		rec, err := offsets.Load(ctx, v.kopts, v.cfg.Kafka.OffsetsTopic, v.cfg.ID)
		if err != nil {
			return false, err
		}
		if rec != nil && reached(rec.Position) {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func filterExamples(ex []string, keep func([]byte) bool) []string {
	var out []string
	for _, e := range ex {
		if keep([]byte(e)) {
			out = append(out, e)
		}
	}
	return out
}

func (v *verifier) skipped(sc rowScanner, t change.TableID) map[string]bool {
	u, ok := sc.(uncomparedColumns)
	if !ok {
		return nil
	}
	cols := u.Uncompared(t)
	if len(cols) == 0 {
		return nil
	}
	m := map[string]bool{}
	for _, c := range cols {
		m[c] = true
	}
	return m
}

// latestRow returns the row a record leaves as its key's latest state, and
// false when it leaves the key deleted.
func (v *verifier) latestRow(value []byte) ([]byte, bool, error) {
	if value == nil {
		return nil, false, nil
	}
	if v.cfg.Format.Value == format.Upsert {
		return value, !bytes.Equal(bytes.TrimSpace(value), []byte("null")), nil
	}
	var env struct {
		After json.RawMessage `json:"after"`
		Op    string          `json:"op"`
	}
	if err := json.Unmarshal(value, &env); err != nil {
		return nil, false, fmt.Errorf("not a debezium-json value: %w", err)
	}
	if env.Op == "d" || len(env.After) == 0 || string(env.After) == "null" {
		return nil, false, nil
	}
	return env.After, true, nil
}

// readTopic calls fn for every committed record of topic, partition by
// partition in offset order, up to the last stable offset at the call.
func (v *verifier) readTopic(ctx context.Context, topic string, fn func(key, value []byte, pos string) error) error {
	adm, err := kgo.NewClient(v.kopts...)
	if err != nil {
		return err
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list the end of %s: %w", topic, err)
	}
	want := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	var lerr error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		case o.Err != nil:
			lerr = o.Err
		case o.Offset > 0:
			want[o.Partition] = kgo.NewOffset().AtStart()
			left[o.Partition] = o.Offset
		}
	})
	if lerr != nil {
		return fmt.Errorf("list the end of %s: %w", topic, lerr)
	}
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, v.kopts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: want}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	idle := 0
	for len(left) > 0 {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("read %s: %w", topic, ferr)
		}
		n := 0
		var cbErr error
		fs.EachRecord(func(r *kgo.Record) {
			n++
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if r.Attrs.IsControl() || cbErr != nil {
				return
			}
			pos := ""
			for _, h := range r.Headers {
				if h.Key == format.HeaderPosition {
					pos = string(h.Value)
				}
			}
			cbErr = fn(r.Key, r.Value, pos)
		})
		if cbErr != nil {
			return cbErr
		}
		if n > 0 {
			idle = 0
		} else if idle++; idle >= 100 { // aborted records are dropped silently: allow 5 minutes of them
			return fmt.Errorf("read %s: %d partition(s) did not reach their last stable offset; is the broker healthy?", topic, len(left))
		}
	}
	return nil
}

// keyHash hashes a key after canonicalizing its JSON, so two encodings of
// the same key object hash alike.
func keyHash(key []byte) uint64 {
	h := fnv.New64a()
	h.Write(canonical(key, nil))
	return h.Sum64()
}

func rowHash(row []byte, skip map[string]bool) uint64 {
	h := fnv.New64a()
	h.Write(canonical(row, skip))
	return h.Sum64()
}

// rowJSON is the row image as the encoder writes it.
func rowJSON(r *change.Row) []byte { return format.AppendRow(nil, r) }

// canonical re-encodes a JSON value with object members sorted by name and
// numbers in lowest terms, leaving out the top-level members in skip. Bytes
// that are not JSON are returned as they are.
func canonical(b []byte, skip map[string]bool) []byte {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return b
	}
	if m, ok := v.(map[string]any); ok {
		for k := range skip {
			delete(m, k)
		}
	}
	var out bytes.Buffer
	writeCanonical(&out, v)
	return out.Bytes()
}

func writeCanonical(w *bytes.Buffer, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				w.WriteByte(',')
			}
			w.Write(change.String(k))
			w.WriteByte(':')
			writeCanonical(w, x[k])
		}
		w.WriteByte('}')
	case []any:
		w.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				w.WriteByte(',')
			}
			writeCanonical(w, e)
		}
		w.WriteByte(']')
	case json.Number:
		if r, ok := new(big.Rat).SetString(string(x)); ok {
			w.WriteString(r.RatString())
		} else {
			w.WriteString(string(x))
		}
	case string:
		w.Write(change.String(x))
	case bool:
		w.WriteString(strconv.FormatBool(x))
	case nil:
		w.WriteString("null")
	}
}

// scanner returns the source's own rowScanner when it has one, else the
// built-in reader for the database type.
func (v *verifier) scanner() (rowScanner, error) {
	if f, ok := sourceFactories[v.cfg.Source.Type]; ok {
		src, err := f(v.cfg, newLogger(v.cfg, io.Discard), metrics.Discard())
		if err == nil {
			if sc, ok := src.(rowScanner); ok {
				return sc, nil
			}
			src.Close()
		}
	}
	switch v.cfg.Source.Type {
	case "postgres":
		return newPGScanner(v.cfg)
	case "mysql":
		return newMyScanner(v.cfg)
	}
	return nil, fmt.Errorf("verify: source type %q has no row reader in this build (see docs/verify.md)", v.cfg.Source.Type)
}

// pgScanner is the built-in PostgreSQL reader: it encodes the types whose
// stream encoding is plain (integers, booleans, text, json) and leaves every
// other column out of the comparison, saying which.
type pgScanner struct {
	cfg    *config.Config
	conn   *pgx.Conn
	tables map[change.TableID]*pgTable
}

type pgTable struct {
	ident      string
	cols       []string
	oids       []uint32
	key        []int // indexes into cols
	uncompared []string
}

func newPGScanner(cfg *config.Config) (*pgScanner, error) {
	cc, err := pgx.ParseConfig(cfg.Source.DSN)
	if err != nil {
		return nil, fmt.Errorf("source.dsn: %w", err)
	}
	if pw := cfg.Source.Password.Reveal(); pw != "" {
		cc.Password = pw
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &pgScanner{cfg: cfg, conn: conn, tables: map[change.TableID]*pgTable{}}, nil
}

func (p *pgScanner) Close() error { return p.conn.Close(context.Background()) }

func (p *pgScanner) Uncompared(t change.TableID) []string {
	if pt := p.tables[t]; pt != nil {
		return pt.uncompared
	}
	return nil
}

// pgPlain holds the type OIDs whose text form the stream encodes in an
// obvious way: integers and oid as numbers, bool, text types as strings,
// json and jsonb as JSON.
var pgPlain = map[uint32]string{20: "num", 21: "num", 23: "num", 26: "num", 16: "bool", 25: "str", 1043: "str", 1042: "str", 19: "str", 114: "json", 3802: "json"}

func (p *pgScanner) Tables(ctx context.Context) ([]change.TableSchema, error) {
	rows, err := p.conn.Query(ctx, `SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') ORDER BY 2, 3`)
	if err != nil {
		return nil, err
	}
	type rel struct {
		oid      uint32
		ns, name string
	}
	var rels []rel
	for rows.Next() {
		var r rel
		if err := rows.Scan(&r.oid, &r.ns, &r.name); err != nil {
			return nil, err
		}
		for _, ref := range p.cfg.Source.TableRefs() {
			if ref.Matches(r.ns, r.name) {
				rels = append(rels, r)
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []change.TableSchema
	for _, r := range rels {
		id := change.TableID{Namespace: r.ns, Name: r.name}
		pt := &pgTable{ident: pgx.Identifier{r.ns, r.name}.Sanitize()}
		ts := change.TableSchema{ID: id}
		crows, err := p.conn.Query(ctx, `SELECT attname, atttypid, format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, r.oid)
		if err != nil {
			return nil, err
		}
		for crows.Next() {
			var name, typ string
			var oid uint32
			if err := crows.Scan(&name, &oid, &typ); err != nil {
				return nil, err
			}
			pt.cols = append(pt.cols, name)
			pt.oids = append(pt.oids, oid)
			ts.Columns = append(ts.Columns, change.ColumnSchema{Name: name, SourceType: typ})
			if _, ok := pgPlain[oid]; !ok {
				pt.uncompared = append(pt.uncompared, name)
			}
		}
		if err := crows.Err(); err != nil {
			return nil, err
		}
		var key []string
		err = p.conn.QueryRow(ctx, `SELECT coalesce(array_agg(a.attname ORDER BY k.i), '{}') FROM pg_index x
			CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, i)
			JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
			WHERE x.indrelid = $1 AND x.indisprimary`, r.oid).Scan(&key)
		if err != nil {
			return nil, err
		}
		if len(key) == 0 {
			return nil, fmt.Errorf("postgres: table %s has no primary key; verify needs one", id)
		}
		for _, k := range key {
			for i, c := range pt.cols {
				if c == k {
					pt.key = append(pt.key, i)
				}
			}
		}
		ts.Key = key
		p.tables[id] = pt
		out = append(out, ts)
	}
	return out, nil
}

func (p *pgScanner) keyExprs(pt *pgTable) []string {
	ex := make([]string, len(pt.key))
	for i, k := range pt.key {
		ex[i] = pgx.Identifier{pt.cols[k]}.Sanitize()
		if pgPlain[pt.oids[k]] == "str" {
			ex[i] += ` COLLATE "C"`
		}
	}
	return ex
}

func (p *pgScanner) selectList(pt *pgTable) string {
	cols := make([]string, len(pt.cols))
	for i, c := range pt.cols {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + pt.ident
}

func (p *pgScanner) ScanTable(ctx context.Context, t change.TableID, after []byte, limit int) ([]*change.Event, error) {
	pt := p.tables[t]
	if pt == nil {
		return nil, fmt.Errorf("postgres: table %s not listed", t)
	}
	ex := p.keyExprs(pt)
	q := p.selectList(pt)
	var params [][]byte
	if after != nil {
		vals, err := p.keyParams(pt, after)
		if err != nil {
			return nil, err
		}
		params = vals
		ph := make([]string, len(vals))
		for i := range ph {
			ph[i] = "$" + strconv.Itoa(i+1)
		}
		q += " WHERE (" + strings.Join(ex, ", ") + ") > (" + strings.Join(ph, ", ") + ")"
	}
	q += " ORDER BY " + strings.Join(ex, ", ") + " LIMIT " + strconv.Itoa(limit)
	return p.query(ctx, t, pt, q, params)
}

func (p *pgScanner) ReadKeys(ctx context.Context, t change.TableID, keys [][]byte) ([]*change.Event, error) {
	pt := p.tables[t]
	if pt == nil {
		return nil, fmt.Errorf("postgres: table %s not listed", t)
	}
	var out []*change.Event
	for _, k := range keys {
		vals, err := p.keyParams(pt, k)
		if err != nil {
			return nil, err
		}
		cond := make([]string, len(pt.key))
		for i, ki := range pt.key {
			cond[i] = pgx.Identifier{pt.cols[ki]}.Sanitize() + " = $" + strconv.Itoa(i+1)
		}
		evs, err := p.query(ctx, t, pt, p.selectList(pt)+" WHERE "+strings.Join(cond, " AND "), vals)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

// keyParams turns a key object back into text parameters, one per key
// column.
func (p *pgScanner) keyParams(pt *pgTable, key []byte) ([][]byte, error) {
	d := json.NewDecoder(bytes.NewReader(key))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	out := make([][]byte, len(pt.key))
	for i, k := range pt.key {
		switch x := m[pt.cols[k]].(type) {
		case string:
			out[i] = []byte(x)
		case json.Number:
			out[i] = []byte(x)
		case bool:
			out[i] = []byte(strconv.FormatBool(x))
		default:
			return nil, fmt.Errorf("key %s: column %s cannot be read back", key, pt.cols[k])
		}
	}
	return out, nil
}

func (p *pgScanner) query(ctx context.Context, t change.TableID, pt *pgTable, q string, params [][]byte) ([]*change.Event, error) {
	rr := p.conn.PgConn().ExecParams(ctx, q, params, nil, nil, nil)
	var out []*change.Event
	keyNames := make([]string, len(pt.key))
	for i, k := range pt.key {
		keyNames[i] = pt.cols[k]
	}
	for rr.NextRow() {
		vals := rr.Values()
		row := &change.Row{Names: pt.cols, Values: make([][]byte, len(vals))}
		for i, raw := range vals {
			row.Values[i] = pgEncode(pt.oids[i], raw)
		}
		kv := make([][]byte, len(pt.key))
		for i, k := range pt.key {
			kv[i] = row.Values[k]
			if kv[i] == nil { // a key of a type left out: compare its text
				kv[i] = change.String(string(vals[k]))
			}
		}
		out = append(out, &change.Event{Table: t, Op: change.OpRead, Key: change.EncodeKey(keyNames, kv), After: row})
	}
	if _, err := rr.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// pgEncode encodes a text-format value of a plain type; nil (left out) for
// the others.
func pgEncode(oid uint32, raw []byte) []byte {
	if raw == nil {
		if _, ok := pgPlain[oid]; ok {
			return change.Null
		}
		return nil
	}
	switch pgPlain[oid] {
	case "num", "json":
		return append([]byte(nil), raw...)
	case "bool":
		if string(raw) == "t" {
			return []byte("true")
		}
		return []byte("false")
	case "str":
		return change.String(string(raw))
	}
	return nil
}

func (p *pgScanner) Mark(ctx context.Context) (string, func(string) bool, error) {
	var s string
	if err := p.conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		return "", nil, err
	}
	at, err := pglogrepl.ParseLSN(s)
	if err != nil {
		return "", nil, err
	}
	return s, func(pos string) bool {
		got, err := pglogrepl.ParseLSN(pos)
		return err == nil && got >= at
	}, nil
}

// myScanner is the built-in MySQL/MariaDB reader: integers, utf8 text types
// and json are encoded as the stream encodes them, every other column is
// left out of the comparison.
type myScanner struct {
	cfg    *config.Config
	conn   *client.Conn
	tables map[change.TableID]*myTable
}

type myTable struct {
	ident      string
	cols       []string
	kinds      []string // num, str, json, or "" (not compared)
	key        []int
	uncompared []string
}

func newMyScanner(cfg *config.Config) (*myScanner, error) {
	u, err := url.Parse(cfg.Source.DSN)
	if err != nil {
		return nil, fmt.Errorf("source.dsn: %w", err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "3306")
	}
	var tc *tls.Config
	if t := cfg.Source.TLS; t.Enabled || t.CAFile != "" || t.CertFile != "" {
		if tc, err = kafkaclient.TLSConfig(&cfg.Source.TLS, "source.tls"); err != nil {
			return nil, err
		}
		if tc.ServerName == "" {
			tc.ServerName = u.Hostname()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.ConnectWithContext(ctx, host, u.User.Username(), cfg.Source.Password.Reveal(), "", 10*time.Second, func(c *client.Conn) error {
		c.ReadTimeout, c.WriteTimeout = time.Minute, time.Minute
		if tc != nil {
			c.SetTLSConfig(tc)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mysql: connect: %w", err)
	}
	if _, err := c.Execute("SET NAMES utf8mb4"); err != nil {
		c.Close()
		return nil, err
	}
	return &myScanner{cfg: cfg, conn: c, tables: map[change.TableID]*myTable{}}, nil
}

func (m *myScanner) Close() error { return m.conn.Close() }

func (m *myScanner) Uncompared(t change.TableID) []string {
	if mt := m.tables[t]; mt != nil {
		return mt.uncompared
	}
	return nil
}

func (m *myScanner) rows(q string, args ...any) ([][]any, error) {
	r, err := m.conn.Execute(q, args...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make([][]any, len(r.Values))
	for i := range r.Values {
		out[i] = make([]any, len(r.Values[i]))
		for j := range r.Values[i] {
			v := r.Values[i][j].Value()
			if b, ok := v.([]byte); ok {
				v = bytes.Clone(b) // the result's buffers are reused after Close
			}
			out[i][j] = v
		}
	}
	return out, nil
}

func myText(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func myKind(dataType, charset string) string {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		return "num"
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		if strings.HasPrefix(charset, "utf8") || charset == "ascii" || charset == "latin1" {
			return "str"
		}
	case "json":
		return "json"
	}
	return ""
}

func (m *myScanner) Tables(ctx context.Context) ([]change.TableSchema, error) {
	var out []change.TableSchema
	for _, ref := range m.cfg.Source.TableRefs() {
		names, err := m.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name", ref.Namespace)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			name := myText(n[0])
			if !ref.Matches(ref.Namespace, name) || name == "cdcrelay_watermark" {
				continue
			}
			id := change.TableID{Namespace: ref.Namespace, Name: name}
			if _, dup := m.tables[id]; dup {
				continue
			}
			ts, err := m.describe(id)
			if err != nil {
				return nil, err
			}
			out = append(out, ts)
		}
	}
	return out, nil
}

func myQuote(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func (m *myScanner) describe(id change.TableID) (change.TableSchema, error) {
	ts := change.TableSchema{ID: id}
	mt := &myTable{ident: myQuote(id.Namespace) + "." + myQuote(id.Name)}
	cols, err := m.rows(`SELECT column_name, data_type, column_type, coalesce(character_set_name, '') FROM information_schema.columns
		WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position`, id.Namespace, id.Name)
	if err != nil {
		return ts, err
	}
	for _, c := range cols {
		name := myText(c[0])
		kind := myKind(strings.ToLower(myText(c[1])), myText(c[3]))
		if strings.Contains(myText(c[2]), "unsigned") && myText(c[1]) == "bigint" {
			kind = "" // encoded as a decimal; not compared here
		}
		mt.cols = append(mt.cols, name)
		mt.kinds = append(mt.kinds, kind)
		if kind == "" {
			mt.uncompared = append(mt.uncompared, name)
		}
		ts.Columns = append(ts.Columns, change.ColumnSchema{Name: name, SourceType: myText(c[2])})
	}
	keys, err := m.rows(`SELECT column_name FROM information_schema.key_column_usage
		WHERE table_schema = ? AND table_name = ? AND constraint_name = 'PRIMARY' ORDER BY ordinal_position`, id.Namespace, id.Name)
	if err != nil {
		return ts, err
	}
	if len(keys) == 0 {
		return ts, fmt.Errorf("mysql: table %s has no primary key; verify needs one", id)
	}
	for _, k := range keys {
		for i, c := range mt.cols {
			if c == myText(k[0]) {
				mt.key = append(mt.key, i)
				ts.Key = append(ts.Key, c)
			}
		}
	}
	m.tables[id] = mt
	return ts, nil
}

func (m *myScanner) keyArgs(mt *myTable, key []byte) ([]any, error) {
	d := json.NewDecoder(bytes.NewReader(key))
	d.UseNumber()
	var obj map[string]any
	if err := d.Decode(&obj); err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	out := make([]any, len(mt.key))
	for i, k := range mt.key {
		switch x := obj[mt.cols[k]].(type) {
		case string:
			out[i] = x
		case json.Number:
			out[i] = string(x)
		default:
			return nil, fmt.Errorf("key %s: column %s cannot be read back", key, mt.cols[k])
		}
	}
	return out, nil
}

func (m *myScanner) selectList(mt *myTable) string {
	cols := make([]string, len(mt.cols))
	for i, c := range mt.cols {
		cols[i] = myQuote(c)
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + mt.ident
}

func (m *myScanner) ScanTable(ctx context.Context, t change.TableID, after []byte, limit int) ([]*change.Event, error) {
	mt := m.tables[t]
	if mt == nil {
		return nil, fmt.Errorf("mysql: table %s not listed", t)
	}
	keyCols := make([]string, len(mt.key))
	ph := make([]string, len(mt.key))
	for i, k := range mt.key {
		keyCols[i], ph[i] = myQuote(mt.cols[k]), "?"
	}
	q := m.selectList(mt)
	var args []any
	if after != nil {
		var err error
		if args, err = m.keyArgs(mt, after); err != nil {
			return nil, err
		}
		q += " WHERE (" + strings.Join(keyCols, ", ") + ") > (" + strings.Join(ph, ", ") + ")"
	}
	q += " ORDER BY " + strings.Join(keyCols, ", ") + " LIMIT " + strconv.Itoa(limit)
	return m.query(t, mt, q, args...)
}

func (m *myScanner) ReadKeys(ctx context.Context, t change.TableID, keys [][]byte) ([]*change.Event, error) {
	mt := m.tables[t]
	if mt == nil {
		return nil, fmt.Errorf("mysql: table %s not listed", t)
	}
	cond := make([]string, len(mt.key))
	for i, k := range mt.key {
		cond[i] = myQuote(mt.cols[k]) + " = ?"
	}
	var out []*change.Event
	for _, k := range keys {
		args, err := m.keyArgs(mt, k)
		if err != nil {
			return nil, err
		}
		evs, err := m.query(t, mt, m.selectList(mt)+" WHERE "+strings.Join(cond, " AND "), args...)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

func (m *myScanner) query(t change.TableID, mt *myTable, q string, args ...any) ([]*change.Event, error) {
	rows, err := m.rows(q, args...)
	if err != nil {
		return nil, err
	}
	keyNames := make([]string, len(mt.key))
	for i, k := range mt.key {
		keyNames[i] = mt.cols[k]
	}
	out := make([]*change.Event, 0, len(rows))
	for _, r := range rows {
		row := &change.Row{Names: mt.cols, Values: make([][]byte, len(r))}
		for i, v := range r {
			switch {
			case mt.kinds[i] == "":
			case v == nil:
				row.Values[i] = change.Null
			case mt.kinds[i] == "str":
				row.Values[i] = change.String(myText(v))
			default:
				row.Values[i] = []byte(myText(v))
			}
		}
		kv := make([][]byte, len(mt.key))
		for i, k := range mt.key {
			kv[i] = row.Values[k]
			if kv[i] == nil {
				kv[i] = change.String(myText(r[k]))
			}
		}
		out = append(out, &change.Event{Table: t, Op: change.OpRead, Key: change.EncodeKey(keyNames, kv), After: row})
	}
	return out, nil
}

// Mark reads MariaDB's @@gtid_binlog_pos, or the binlog file and position,
// and compares positions of the same form.
func (m *myScanner) Mark(ctx context.Context) (string, func(string) bool, error) {
	if rows, err := m.rows("SELECT @@gtid_binlog_pos"); err == nil && len(rows) == 1 && myText(rows[0][0]) != "" {
		label := myText(rows[0][0])
		want := mariaSeqs(label)
		return label, func(pos string) bool {
			got := mariaSeqs(pos)
			if len(got) == 0 {
				return false
			}
			for dom, seq := range want {
				if got[dom] < seq {
					return false
				}
			}
			return true
		}, nil
	}
	rows, err := m.rows("SHOW MASTER STATUS")
	if err != nil || len(rows) == 0 {
		return "", nil, fmt.Errorf("mysql: read the binlog position: %v", err)
	}
	file, pos := myText(rows[0][0]), myText(rows[0][1])
	p, _ := strconv.ParseUint(pos, 10, 64)
	return file + ":" + pos, func(label string) bool {
		f, ps, ok := strings.Cut(label, ":")
		n, _ := strconv.ParseUint(ps, 10, 64)
		return ok && (f > file || f == file && n >= p)
	}, nil
}

// mariaSeqs reads "domain-server-seq,..." into domain -> seq.
func mariaSeqs(s string) map[string]uint64 {
	out := map[string]uint64{}
	for _, g := range strings.Split(s, ",") {
		p := strings.Split(strings.TrimSpace(g), "-")
		if len(p) == 3 {
			n, _ := strconv.ParseUint(p[2], 10, 64)
			out[p[0]] = n
		}
	}
	return out
}
