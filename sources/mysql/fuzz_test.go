package mysql

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/cdcrelay/cdcrelay/change"
)

// The fuzz target feeds a TABLE_MAP event and a row event, as raw binlog
// events, through go-mysql's parser and this package's codecs: the path
// every streamed row takes. Seeds are real events of the types table,
// captured with -update from a MariaDB 10.11 server; the format description
// event that frames them is testdata/fde.bin.

func loadFDE(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "fde.bin"))
	if err != nil {
		t.Fatalf("%v (run TestCaptureFuzzSeeds with -update)", err)
	}
	return b
}

// decodeForFuzz parses the two events and encodes every row image. It
// returns the rows as JSON objects. A panic inside go-mysql's parser is
// recovered (the binlog syncer does the same and ends the stream); a panic
// in the codecs is not.
func decodeForFuzz(fde, tableMap, rows []byte) (out []string, err error) {
	p := replication.NewBinlogParser()
	p.SetFlavor(flavorMariaDB)
	p.SetTimestampStringLocation(time.UTC)
	parse := func(b []byte) (ev *replication.BinlogEvent, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("parser panic: %v", r)
			}
		}()
		return p.Parse(b)
	}
	if _, err := parse(fde); err != nil {
		return nil, err
	}
	ev, err := parse(tableMap)
	if err != nil {
		return nil, err
	}
	tm, ok := ev.Event.(*replication.TableMapEvent)
	if !ok {
		return nil, fmt.Errorf("not a TABLE_MAP event")
	}
	c, err := newTableCodec(tm, true, nil)
	if err != nil {
		return nil, err
	}
	ev, err = parse(rows)
	if err != nil {
		return nil, err
	}
	re, ok := ev.Event.(*replication.RowsEvent)
	if !ok {
		return nil, fmt.Errorf("not a row event")
	}
	var a change.Alloc
	for i, vals := range re.Rows {
		var skipped []int
		if i < len(re.SkippedColumns) {
			skipped = re.SkippedColumns[i]
		}
		if len(vals) != len(c.enc) {
			return nil, fmt.Errorf("row has %d values for %d columns", len(vals), len(c.enc))
		}
		row := c.encodeRow(&a, vals, skipped)
		plain := rowJSON(&change.Row{Names: row.Names, Values: row.Values})
		if string(row.JSON) != plain {
			return nil, fmt.Errorf("%w: %s, written value by value %s", errRowJSON, row.JSON, plain)
		}
		out = append(out, plain)
		c.keyOf(&a, row)
	}
	return out, nil
}

// errRowJSON is a row whose JSON object (change.Row.JSON) is not what its
// values give.
var errRowJSON = errors.New("row JSON differs from its values")

func FuzzRowsEvent(f *testing.F) {
	fde := loadFDE(f)
	f.Fuzz(func(t *testing.T, tableMap, rows []byte) {
		out, err := decodeForFuzz(fde, tableMap, rows)
		if errors.Is(err, errRowJSON) {
			t.Fatal(err)
		}
		if err != nil {
			return
		}
		for _, o := range out {
			if !json.Valid([]byte(o)) {
				t.Fatalf("row encodes to invalid JSON: %s", o)
			}
		}
	})
}

// TestCaptureFuzzSeeds (with -update) reads the binlog of the types golden
// rows and writes each TABLE_MAP + row event pair as a seed under
// testdata/fuzz/FuzzRowsEvent, and the format description as testdata/fde.bin.
// Without -update it decodes the committed seeds and checks them.
func TestCaptureFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRowsEvent")
	if !*update {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("no seeds in %s (%v); run with -update", dir, err)
		}
		fde := loadFDE(t)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "types-") {
				continue // regression inputs found by fuzzing
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			var tm, rows []byte
			if _, err := fmt.Sscanf(string(data), "go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", &tm, &rows); err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			out, err := decodeForFuzz(fde, tm, rows)
			if err != nil || len(out) == 0 {
				t.Fatalf("seed %s does not decode: %v", e.Name(), err)
			}
		}
		return
	}
	m := startMaria(t)
	m.Exec(t, "SET GLOBAL sql_mode = 'NO_ENGINE_SUBSTITUTION'")
	m.Exec(t, typesDDL)
	m.Exec(t, fmt.Sprintf(typesRow, 1))
	m.Exec(t, fmt.Sprintf(typesEdge, 2))
	m.Exec(t, "UPDATE shop.types SET vc = 'x', nul = 3 WHERE id = 1")
	m.Exec(t, "DELETE FROM shop.types WHERE id = 2")
	src, _ := newSource(t, testConfig(m, "shop.types"))
	syncer := replication.NewBinlogSyncer(src.syncerConfig(flavorMariaDB))
	defer syncer.Close()
	st, err := syncer.StartSync(gomysqlPosition("binlog.000001", 4))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var tm []byte
	n := 0
	for n < 4 {
		ev, err := st.GetEvent(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		switch e := ev.Event.(type) {
		case *replication.FormatDescriptionEvent:
			if err := os.WriteFile(filepath.Join("testdata", "fde.bin"), ev.RawData, 0o644); err != nil {
				t.Fatal(err)
			}
		case *replication.TableMapEvent:
			if string(e.Table) == "types" {
				tm = append([]byte(nil), ev.RawData...)
			}
		case *replication.RowsEvent:
			if string(e.Table.Table) != "types" {
				continue
			}
			n++
			seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", tm, ev.RawData)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("types-%d", n)), []byte(seed), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func gomysqlPosition(name string, pos uint32) gomysql.Position {
	return gomysql.Position{Name: name, Pos: pos}
}
