package checker

import (
	"encoding/json"
	"fmt"
)

// The workload's tables have the columns id (the key), ver (the version)
// and txid (the workload transaction that wrote the row), among others.
type rowImage struct {
	Ver  *int64 `json:"ver"`
	TxID *int64 `json:"txid"`
}

type envelope struct {
	Before *rowImage `json:"before"`
	After  *rowImage `json:"after"`
	Op     string    `json:"op"`
}

// Decode turns one debezium-json record of a workload table into an Event.
// A tombstone (null value) returns ok=false: it repeats the delete before
// it.
func Decode(table string, key, value []byte) (ev Event, ok bool, err error) {
	if value == nil {
		return Event{}, false, nil
	}
	var k struct {
		ID *int64 `json:"id"`
	}
	if err := json.Unmarshal(key, &k); err != nil || k.ID == nil {
		return Event{}, false, fmt.Errorf("checker: key %s of %s is not {\"id\":N}", key, table)
	}
	var env envelope
	if err := json.Unmarshal(value, &env); err != nil {
		return Event{}, false, fmt.Errorf("checker: value of %s key %s: %w", table, key, err)
	}
	ev = Event{Row: RowID{Table: table, Key: *k.ID}}
	switch env.Op {
	case "c", "u", "r":
		if env.After == nil || env.After.Ver == nil {
			return Event{}, false, fmt.Errorf("checker: %s key %s op=%s without after.ver", table, key, env.Op)
		}
		ev.Version = *env.After.Ver
		if env.After.TxID != nil {
			ev.TxID = *env.After.TxID
		}
		ev.Snapshot = env.Op == "r"
	case "d":
		if env.Before == nil || env.Before.Ver == nil {
			return Event{}, false, fmt.Errorf("checker: %s key %s op=d without before.ver (needs full before images)", table, key)
		}
		ev.Version = *env.Before.Ver + 1
		ev.Delete = true
	default:
		return Event{}, false, fmt.Errorf("checker: %s key %s: unknown op %q", table, key, env.Op)
	}
	return ev, true, nil
}
