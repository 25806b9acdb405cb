package mysql

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// stateVersion is the version of the state JSON; a reader refuses others.
const stateVersion = 1

// state is the resumable position of the source, stored verbatim in the
// offsets record as JSON. Every field names the point right after the last
// source transaction whose events are all in Kafka.
//
//	{
//	  "v": 1,
//	  "flavor": "mariadb",            // or "mysql"
//	  "gtid": "0-1-1234,1-7-88",      // MariaDB: last GTID per domain; MySQL: uuid:1-N,...
//	  "file": "mariadb-bin.000003",   // binlog file and the end offset of the
//	  "pos": 1234,                    //   transaction's last event in it
//	  "server_id": 1,                 // @@server_id of the source
//	  "domain_id": 0,                 // MariaDB @@gtid_domain_id
//	  "server_uuid": "",              // MySQL @@server_uuid
//	  "snapshot": {...}               // snapshot progress, owned by sources/snapshot
//	  "schemas": {"shop.t": "9f86d081884c7d65"} // digest of each table's shape
//	}
//
// When GTIDs are on, "gtid" is the resume point and file/pos are kept for
// logs and lag; when they are off (MySQL gtid_mode=OFF), file/pos is.
type state struct {
	V          int             `json:"v"`
	Flavor     string          `json:"flavor"`
	GTID       string          `json:"gtid,omitempty"`
	File       string          `json:"file,omitempty"`
	Pos        uint32          `json:"pos,omitempty"`
	ServerID   uint32          `json:"server_id"`
	DomainID   uint32          `json:"domain_id,omitempty"`
	ServerUUID string          `json:"server_uuid,omitempty"`
	Snapshot   json.RawMessage `json:"snapshot,omitempty"`
	// Schemas holds the digest of each captured table's shape as the
	// binlog last described it (change.Schemas).
	Schemas json.RawMessage `json:"schemas,omitempty"`
}

func decodeState(b []byte) (*state, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("mysql: stored position is not valid JSON: %v", err)
	}
	if st.V != stateVersion {
		return nil, fmt.Errorf("mysql: stored position has version %d; this build reads version %d", st.V, stateVersion)
	}
	if st.Flavor != flavorMariaDB && st.Flavor != flavorMySQL {
		return nil, fmt.Errorf("mysql: stored position has flavor %q", st.Flavor)
	}
	if st.GTID == "" && st.File == "" {
		return nil, fmt.Errorf("mysql: stored position has neither a GTID set nor a binlog file")
	}
	if st.GTID != "" {
		if _, err := gomysql.ParseGTIDSet(st.Flavor, st.GTID); err != nil {
			return nil, fmt.Errorf("mysql: stored GTID set %q: %v", st.GTID, err)
		}
	}
	return &st, nil
}

func (st *state) encode() []byte {
	b, err := json.Marshal(st)
	if err != nil {
		panic(err) // only plain fields
	}
	return b
}

func (st *state) clone() *state {
	c := *st
	c.Snapshot = append(json.RawMessage(nil), st.Snapshot...)
	return &c
}

// label is the short form of the position for logs and metrics.
func (st *state) label() string {
	if st.GTID != "" {
		return st.GTID
	}
	return st.File + ":" + strconv.FormatUint(uint64(st.Pos), 10)
}

const (
	flavorMariaDB = "mariadb"
	flavorMySQL   = "mysql"
)

// mariaPos is a MariaDB GTID position: the last GTID applied in each
// replication domain, the form that @@gtid_binlog_pos and
// @slave_connect_state use.
type mariaPos map[uint32]gomysql.MariadbGTID

func parseMariaPos(s string) (mariaPos, error) {
	p := mariaPos{}
	s = strings.TrimSpace(s)
	if s == "" {
		return p, nil
	}
	for _, part := range strings.Split(s, ",") {
		g, err := gomysql.ParseMariadbGTID(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		if old, dup := p[g.DomainID]; dup && old.SequenceNumber > g.SequenceNumber {
			continue
		}
		p[g.DomainID] = *g
	}
	return p, nil
}

// MariaDBSeqs reads a MariaDB GTID position, such as "0-1-1234,1-7-88" in
// the form of @@gtid_binlog_pos and of the stored position, into each
// replication domain's last sequence number. It is the one parser of that
// form; tools and tests that compare positions call it.
func MariaDBSeqs(pos string) (map[uint32]uint64, error) {
	p, err := parseMariaPos(pos)
	if err != nil {
		return nil, fmt.Errorf("mysql: MariaDB GTID position %q: %w", pos, err)
	}
	seqs := make(map[uint32]uint64, len(p))
	for d, g := range p {
		seqs[d] = g.SequenceNumber
	}
	return seqs, nil
}

func (p mariaPos) add(g gomysql.MariadbGTID) { p[g.DomainID] = g }

// covers reports whether every transaction up to g is at or before p.
func (p mariaPos) covers(g gomysql.MariadbGTID) bool {
	c, ok := p[g.DomainID]
	return ok && c.SequenceNumber >= g.SequenceNumber
}

func (p mariaPos) String() string {
	ds := make([]uint32, 0, len(p))
	for d := range p {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte(',')
		}
		g := p[d]
		fmt.Fprintf(&b, "%d-%d-%d", g.DomainID, g.ServerID, g.SequenceNumber)
	}
	return b.String()
}

func gtidString(g gomysql.MariadbGTID) string {
	return fmt.Sprintf("%d-%d-%d", g.DomainID, g.ServerID, g.SequenceNumber)
}
