package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
)

// parityRow is one field of the change envelope as each setup wrote it for
// the same row: the snapshot read of id 1 and its last streamed update,
// from the restart runs' topics.
type parityRow struct {
	DB     string            `json:"db"`
	Event  string            `json:"event"`
	Field  string            `json:"field"`
	Values map[string]string `json:"values"`
	Same   bool              `json:"same"`
}

var errFound = errors.New("found")

// findRecord returns the value of the first record of topic whose
// envelope's after.id is id, or with id 0 the last record whose after.note
// is a marker: the last update of row 1, streamed.
func (b *bench) findRecord(ctx context.Context, topic string, id int64) (map[string]any, error) {
	var found map[string]any
	err := kafkaclient.ReadToEnd(ctx, []kgo.Opt{kgo.SeedBrokers(b.brokerAddr)}, []string{topic}, kafkaclient.ReadOptions{}, func(r *kgo.Record) error {
		var v map[string]any
		if json.Unmarshal(r.Value, &v) != nil {
			return nil
		}
		if p, ok := v["payload"].(map[string]any); ok {
			v = p // an envelope with its schema
		}
		after, _ := v["after"].(map[string]any)
		if id == 0 {
			if note, _ := after["note"].(string); strings.HasPrefix(note, resumeMarker) {
				found = v
			}
			return nil
		}
		if n, ok := after["id"].(float64); ok && int64(n) == id {
			found = v
			return errFound
		}
		return nil
	})
	if found != nil {
		return found, nil
	}
	if err == nil {
		err = fmt.Errorf("no record with after.id %d in %s", id, topic)
	}
	return nil, err
}

// flatten turns a JSON object into dotted paths and their JSON text.
func flatten(prefix string, v any, out map[string]string) {
	if m, ok := v.(map[string]any); ok {
		for k, x := range m {
			flatten(prefix+k+".", x, out)
		}
		return
	}
	data, _ := json.Marshal(v)
	out[strings.TrimSuffix(prefix, ".")] = string(data)
}

// encodingParity compares the envelopes the setups wrote for the same rows
// of db in the restart runs (tables of the same generator, so a field
// differs between setups only by its encoding, or for timestamps and
// source fields also by value).
func (b *bench) encodingParity(ctx context.Context, db string, n int, systems []string) ([]parityRow, error) {
	if len(systems) < 2 {
		return nil, nil
	}
	schema := map[string]string{"pg": "public", "mariadb": "bench"}[db]
	events := []struct {
		name string
		id   int64
	}{{"snapshot read of id 1", 1}, {"streamed update of id 1", 0}}
	var rows []parityRow
	for _, ev := range events {
		flat := map[string]map[string]string{}
		paths := map[string]bool{}
		for _, sys := range systems {
			id := peerID("rc", sys, db)
			topic := id + "." + schema + "." + id
			if sys == sysFlinkCDC {
				topic = id
			}
			v, err := b.findRecord(ctx, topic, ev.id)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sys, err)
			}
			f := map[string]string{}
			flatten("", v, f)
			flat[sys] = f
			for p := range f {
				paths[p] = true
			}
		}
		var sorted []string
		for p := range paths {
			sorted = append(sorted, p)
		}
		sort.Strings(sorted)
		for _, p := range sorted {
			r := parityRow{DB: db, Event: ev.name, Field: p, Values: map[string]string{}, Same: true}
			for _, sys := range systems {
				v, ok := flat[sys][p]
				if !ok {
					v = "(absent)"
				}
				r.Values[sys] = v
				if v != r.Values[systems[0]] {
					r.Same = false
				}
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// parityTable renders the fields that differ between the setups.
func parityTable(rows []parityRow, systems []string) string {
	var sb strings.Builder
	sb.WriteString("| db | event | field | " + strings.Join(systems, " | ") + " |\n|---|---|---|" + strings.Repeat("---|", len(systems)) + "\n")
	for _, r := range rows {
		if r.Same {
			continue
		}
		vals := make([]string, len(systems))
		for i, s := range systems {
			v := r.Values[s]
			if len(v) > 60 {
				v = v[:57] + "..."
			}
			vals[i] = "`" + strings.ReplaceAll(v, "|", "\\|") + "`"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", r.DB, r.Event, r.Field, strings.Join(vals, " | "))
	}
	return sb.String()
}
