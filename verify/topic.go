package verify

import (
	"bytes"
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
)

// latestRow returns the row object a record value leaves as its key's
// state, and false when it leaves the key deleted.
func latestRow(value []byte, upsert bool) ([]byte, bool, error) {
	if value == nil {
		return nil, false, nil // tombstone
	}
	if upsert {
		v := bytes.TrimSpace(value)
		return v, !bytes.Equal(v, []byte("null")), nil
	}
	var after, op []byte
	err := eachMember(value, func(name, v []byte) error {
		switch string(name) {
		case "after":
			after = v
		case "op":
			op = v
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("not a debezium-json value: %w", err)
	}
	if string(op) == `"d"` || len(after) == 0 || string(after) == "null" {
		return nil, false, nil
	}
	return after, true, nil
}

// position returns a record's cdcrelay.position header, "" without one.
func position(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == format.HeaderPosition {
			return string(h.Value)
		}
	}
	return ""
}

// fetchMaxBytes bounds what the Kafka client buffers for one fetch.
const fetchMaxBytes = 16 << 20

// readTopic calls fn for every committed record of topic up to its last
// stable offset (kafkaclient.ReadToEnd), with the row state the record
// leaves: the row object, or nil when it deletes its key.
func (v *verifier) readTopic(ctx context.Context, topic string, fn func(r *kgo.Record, row []byte) error) error {
	return kafkaclient.ReadToEnd(ctx, v.cfg.Kafka, []string{topic}, kafkaclient.ReadOptions{FetchMaxBytes: fetchMaxBytes}, func(r *kgo.Record) error {
		row, live, err := latestRow(r.Value, v.cfg.Upsert)
		if err != nil {
			return fmt.Errorf("%s key %s: %w", topic, r.Key, err)
		}
		if !live {
			row = nil
		}
		return fn(r, row)
	})
}
