package postgres

import (
	"encoding/json"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// stateVersion is the version of the checkpoint state layout.
const stateVersion = 1

// state is the checkpoint State, stored verbatim in the offsets record. See
// the package doc for the meaning of each field.
type state struct {
	Version  int            `json:"v"`
	LSN      string         `json:"lsn"`
	SystemID string         `json:"system_id"`
	Timeline int32          `json:"timeline"`
	Slot     string         `json:"slot"`
	Snapshot snapshot.State `json:"snapshot"`
	// Schemas holds the digest of each captured table's shape
	// (change.Schemas), from which the checkpoint's fingerprint comes.
	Schemas json.RawMessage `json:"schemas,omitempty"`

	lsn pglogrepl.LSN
}

func decodeState(b []byte) (*state, error) {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("postgres: stored position is not valid JSON: %w", err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("postgres: stored position has version %d, this build reads %d", st.Version, stateVersion)
	}
	lsn, err := pglogrepl.ParseLSN(st.LSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: stored position: %w", err)
	}
	st.lsn = lsn
	return &st, nil
}

func (st *state) encode() []byte {
	st.Version = stateVersion
	st.LSN = st.lsn.String()
	b, err := json.Marshal(st)
	if err != nil {
		panic(err) // only strings and numbers
	}
	return b
}
