package verify

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/offsets"
)

// readKeysBatch is how many keys one ReadKeys call asks for.
const readKeysBatch = 1000

// positionPoll is the time between two reads of the stored position while
// a re-check waits for it.
const positionPoll = 500 * time.Millisecond

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
func (v *verifier) recheck(ctx context.Context, results []*tableResult) (bool, error) {
	_, atM0, err := v.cfg.Reader.Mark(ctx)
	if err != nil {
		return false, err
	}
	fresh := map[change.TableID]map[uint64]uint64{}
	for _, r := range results {
		if r.refused != "" || len(r.recheck) == 0 {
			continue
		}
		m := map[uint64]uint64{}
		for _, k := range r.recheck {
			m[keyHash(k)] = absent
		}
		for lo := 0; lo < len(r.recheck); lo += readKeysBatch {
			evs, err := v.cfg.Reader.ReadKeys(ctx, r.schema.ID, r.recheck[lo:min(lo+readKeysBatch, len(r.recheck))])
			if err != nil {
				return false, err
			}
			for _, ev := range evs {
				m[keyHash(ev.Key)] = r.hasher.dbRow(ev.After)
			}
		}
		fresh[r.schema.ID] = m
	}
	label, atM1, err := v.cfg.Reader.Mark(ctx)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(v.cfg.Out, "differences found; re-checking them once the stored position passes %s\n", label)
	passed, err := v.waitPosition(ctx, atM1)
	if err != nil {
		return false, err
	}
	if !passed {
		fmt.Fprintf(v.cfg.Out, "the stored position did not pass %s within %s (is the relay running?); re-checking anyway\n", label, v.cfg.Settle)
	}
	for _, r := range results {
		if db := fresh[r.schema.ID]; db != nil {
			if err := v.settle(ctx, r, db, atM0, atM1); err != nil {
				return false, err
			}
		}
	}
	return passed, nil
}

// settle re-judges the keys of one table against their topic history.
func (v *verifier) settle(ctx context.Context, r *tableResult, db map[uint64]uint64, atM0, atM1 func(string) bool) error {
	hist := map[uint64]*keyHistory{}
	for kh := range db {
		hist[kh] = &keyHistory{ok: map[uint64]bool{}}
	}
	err := v.readTopic(ctx, v.topic(r.schema.ID), func(rec *kgo.Record, row []byte) error {
		h := hist[keyHash(rec.Key)]
		if h == nil {
			return nil
		}
		state := uint64(absent)
		if row != nil {
			var err error
			if state, err = r.hasher.topicRow(row); err != nil {
				return err
			}
		}
		h.observe(state, position(rec), atM0, atM1)
		return nil
	})
	if err != nil {
		return err
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
		case want != absent && (h == nil || h.cur == absent):
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
	return nil
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

// waitPosition waits up to Settle until the stored position reaches a
// mark, and reports whether it did.
func (v *verifier) waitPosition(ctx context.Context, reached func(string) bool) (bool, error) {
	deadline := time.Now().Add(v.cfg.Settle)
	for {
		rec, err := offsets.Load(ctx, v.cfg.Kafka, v.cfg.OffsetsTopic, v.cfg.SourceID)
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
		case <-time.After(positionPoll):
		}
	}
}

func filterExamples(ex [][]byte, keep func([]byte) bool) [][]byte {
	var out [][]byte
	for _, e := range ex {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// describe finds, for each differing example, the columns that differ: it
// reads the row from the database and the key's latest row from the topic.
func (v *verifier) describe(ctx context.Context, r *tableResult) error {
	if len(r.exDiffer) == 0 {
		return nil
	}
	evs, err := v.cfg.Reader.ReadKeys(ctx, r.schema.ID, r.exDiffer)
	if err != nil {
		return err
	}
	db := map[string]*change.Row{}
	for _, ev := range evs {
		db[string(ev.Key)] = ev.After
	}
	topic := map[string][]byte{}
	for _, k := range r.exDiffer {
		topic[string(k)] = nil
	}
	err = v.readTopic(ctx, v.topic(r.schema.ID), func(rec *kgo.Record, row []byte) error {
		if _, ok := topic[string(rec.Key)]; ok {
			topic[string(rec.Key)] = bytes.Clone(row)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.details = map[string][]colDiff{}
	for _, k := range r.exDiffer {
		row, obj := db[string(k)], topic[string(k)]
		if row == nil || obj == nil {
			continue // changed since: the counts say what the re-check found
		}
		d, err := r.hasher.diff(row, obj)
		if err != nil {
			return err
		}
		r.details[string(k)] = d
	}
	return nil
}
