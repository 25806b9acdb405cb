package postgres

import (
	"bytes"
	"testing"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/format"
)

// benchRow is a row of the bench's orders table, as pgoutput sends it.
func benchRow() (*relation, []tupleCol) {
	rel := &relation{names: []string{"id", "customer", "status", "qty", "amount", "created_at", "updated_at", "note", "payload"}, key: []int{0}, keyNames: []string{"id"}}
	oids := []uint32{oidInt8, oidText, oidText, oidInt4, oidNumeric, oidTimestamptz, oidTimestamptz, oidText, oidText}
	for _, o := range oids {
		ct, _ := resolveType(o, -1, nil)
		rel.encs = append(rel.encs, ct.enc)
	}
	rel.keys = change.ObjectKeys(rel.names)
	text := []string{"123456", "customer-23456", "paid", "456", "29320.00", "2026-11-24 12:20:46.123456+00", "2026-11-24 12:20:46.123456+00",
		"order note 123456 shipped by ground", string(bytes.Repeat([]byte("e10adc3949ba59abbe56e057f20f883e"), 6))}
	tup := make([]tupleCol, len(text))
	for i, s := range text {
		tup[i] = tupleCol{kind: 't', data: []byte(s)}
	}
	return rel, tup
}

// TestRowValuesStayPut checks that rows built from one slab do not share or
// overwrite each other's bytes, while the decoder's buffer is reused.
func TestRowValuesStayPut(t *testing.T) {
	rel, tup := benchRow()
	var a change.Alloc
	first := rel.row(&a, tup, nil)
	want := make([]string, len(first.Values))
	for i, v := range first.Values {
		want[i] = string(v)
	}
	wantJSON := string(format.AppendRow(nil, &change.Row{Names: first.Names, Values: first.Values}))
	if string(first.JSON) != wantJSON {
		t.Fatalf("row JSON %s, want %s", first.JSON, wantJSON)
	}
	for n := 0; n < 2000; n++ {
		for i := range tup {
			tup[i].data = bytes.Repeat([]byte{'7'}, len(tup[i].data))
		}
		rel.row(&a, tup, nil)
	}
	for i, v := range first.Values {
		if string(v) != want[i] {
			t.Fatalf("column %s changed to %s, was %s", first.Names[i], v, want[i])
		}
		if cap(v) != len(v) {
			t.Fatalf("column %s: cap %d > len %d", first.Names[i], cap(v), len(v))
		}
	}
	if string(first.JSON) != wantJSON {
		t.Fatalf("row JSON changed to %s, was %s", first.JSON, wantJSON)
	}
	if k := a.Key(rel.keyNames, rel.key, first.Values); string(k) != `{"id":123456}` {
		t.Fatalf("key %s", k)
	}
}

// BenchmarkRow encodes one row image of the bench table; one op is one row.
func BenchmarkRow(b *testing.B) {
	rel, tup := benchRow()
	var a change.Alloc
	b.ReportAllocs()
	for b.Loop() {
		rel.row(&a, tup, nil)
	}
}
