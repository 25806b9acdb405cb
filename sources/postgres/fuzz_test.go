package postgres

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/format"
)

func jsonValid(b []byte) bool { return json.Valid(b) }

// FuzzDecode feeds arbitrary bytes through the pgoutput decoder and the row
// encoders. It must never panic, every encoded value must be valid JSON, and
// where both decoders accept the same bytes they must agree on the message
// type.
func FuzzDecode(f *testing.F) {
	for _, seed := range decodeSeeds() {
		f.Add(seed)
	}
	rel := testRelation()
	f.Fuzz(func(t *testing.T, data []byte) {
		var m pgMessage
		if err := m.parse(data); err != nil {
			return
		}
		// pglogrepl sizes its buffers from the lengths in the message before
		// it checks them against the data (a four-byte length of garbage
		// makes it allocate gigabytes), so it only sees what ours accepted.
		if other, ok := pglogreplParse(data); ok && byte(other.Type()) != m.kind {
			t.Fatalf("kind %q, pglogrepl says %q", m.kind, byte(other.Type()))
		}
		for _, tup := range [][]tupleCol{m.new, m.old} {
			if len(tup) == 0 {
				continue
			}
			var a change.Alloc
			for _, row := range []*change.Row{rel.row(&a, tup, m.old), rel.keyRow(&a, tup)} {
				for i, v := range row.Values {
					if v != nil && !json.Valid(v) {
						t.Fatalf("column %s: %q is not JSON", row.Names[i], v)
					}
				}
				want := format.AppendRow(nil, &change.Row{Names: row.Names, Values: row.Values})
				if string(row.JSON) != string(want) || !json.Valid(row.JSON) {
					t.Fatalf("row JSON %s, want %s", row.JSON, want)
				}
			}
		}
	})
}

// pglogreplParse runs pglogrepl's decoder, which panics on some truncated
// input; a panic counts as "not accepted".
func pglogreplParse(data []byte) (m pglogrepl.Message, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if len(data) == 0 {
		return nil, false
	}
	m, err := pglogrepl.Parse(data)
	return m, err == nil
}

// testRelation has one column of each encoder family.
func testRelation() *relation {
	rel := &relation{names: []string{"id", "b", "n", "f", "by", "d", "ts", "tz", "arr", "s"}}
	oids := []uint32{oidInt4, oidBool, oidNumeric, oidFloat8, oidBytea, oidDate, oidTimestamp, oidTimestamptz, 0, oidText}
	for _, o := range oids {
		ct, _ := resolveType(o, -1, nil)
		rel.encs = append(rel.encs, ct.enc)
	}
	rel.encs[8] = arrayEncoder(encNumber)
	rel.key = []int{0}
	rel.keyNames = []string{"id"}
	rel.keys = change.ObjectKeys(rel.names)
	return rel
}

func tuple(vals ...string) []byte {
	b := []byte{0, byte(len(vals))}
	for _, v := range vals {
		switch v {
		case "<null>":
			b = append(b, 'n')
		case "<toast>":
			b = append(b, 'u')
		default:
			b = append(b, 't', 0, 0, byte(len(v)>>8), byte(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

func decodeSeeds() [][]byte {
	relid := []byte{0, 0, 0x40, 0}
	ins := append([]byte{'I'}, relid...)
	ins = append(ins, 'N')
	ins = append(ins, tuple("1", "t", "1.50", "NaN", `\x00ff`, "infinity", "2024-01-31 12:00:00", "2024-01-31 12:00:00+00", `{1,NULL,"2"}`, "<toast>")...)
	upd := append([]byte{'U'}, relid...)
	upd = append(upd, 'O')
	upd = append(upd, tuple("1", "f", "<null>", "1e300", `\x`, "2024-01-01", "-infinity", "x", `{{1},{2}}`, "old")...)
	upd = append(upd, 'N')
	upd = append(upd, tuple("1", "t", "-0.5", "-Infinity", `\xzz`, "bad", "infinity", "infinity", `[0:1]={1,2}`, "<toast>")...)
	del := append([]byte{'D'}, relid...)
	del = append(del, 'K')
	del = append(del, tuple("1")...)
	rel := []byte{'R', 0, 0, 0x40, 0, 'p', 'u', 'b', 0, 't', 0, 'f', 0, 1, 1, 'i', 'd', 0, 0, 0, 0, 23, 0xff, 0xff, 0xff, 0xff}
	begin := []byte{'B', 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}
	commit := []byte{'C', 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	msg := append([]byte{'M', 1, 0, 0, 0, 0, 1, 0, 0, 0}, "cdcrelay.watermark\x00"...)
	msg = append(msg, 0, 0, 0, 5, 'l', 'o', 'w', ':', 'x')
	trunc := []byte{'T', 0, 0, 0, 1, 0, 0, 0, 0x40, 0}
	return [][]byte{ins, upd, del, rel, begin, commit, msg, trunc, {'Y', 0, 0, 0, 1, 's', 0, 't', 0}, {'O', 0, 0, 0, 0, 0, 0, 0, 1, 'o', 0}}
}

// TestFuzzCorpus writes the seeds to testdata/fuzz when -update is given,
// and otherwise checks the committed corpus exists.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range decodeSeeds() {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d-%c", i, s[0])), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
		t.Fatalf("no committed fuzz corpus in %s: %v", dir, err)
	}
}
