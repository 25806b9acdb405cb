package mysql

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/cdcrelay/cdcrelay/change"
)

// BenchmarkDecodeRow measures the per-row cost of the streaming path after
// go-mysql's parse: encoding every column of a types-table row to JSON and
// building its key.
func BenchmarkDecodeRow(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzRowsEvent", "types-1"))
	if err != nil {
		b.Fatal(err)
	}
	var tmRaw, rowsRaw []byte
	if _, err := fmt.Sscanf(string(data), "go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", &tmRaw, &rowsRaw); err != nil {
		b.Fatal(err)
	}
	p := replication.NewBinlogParser()
	p.SetFlavor(flavorMariaDB)
	p.SetTimestampStringLocation(time.UTC)
	if _, err := p.Parse(loadFDE(b)); err != nil {
		b.Fatal(err)
	}
	ev, err := p.Parse(tmRaw)
	if err != nil {
		b.Fatal(err)
	}
	c, err := newTableCodec(ev.Event.(*replication.TableMapEvent), false, nil)
	if err != nil {
		b.Fatal(err)
	}
	ev, err = p.Parse(rowsRaw)
	if err != nil {
		b.Fatal(err)
	}
	vals := ev.Event.(*replication.RowsEvent).Rows[0]
	var a change.Alloc
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		row, err := c.row(&a, vals, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.keyOf(&a, row)
	}
}
