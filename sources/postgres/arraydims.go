package postgres

import (
	"bytes"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/sources"
)

// PostgreSQL records the dimensions an array column is declared with
// (attndims) but does not enforce them: an int8[] column accepts
// '{{1,2},{3,4}}'. flink-ddl declares ARRAY<T> nested once per declared
// dimension, and Flink's JSON formats fail the whole job on a value nested
// otherwise, again at every restart, since the record stays in the topic.
// A value whose dimensions differ from the declaration therefore stops the
// relay before it reaches Kafka, with a line naming the column and the fix.

// arrayDims returns the number of dimensions of an array value in
// PostgreSQL's text output ("{{1,2},{3,4}}" has 2, "[0:1]={7,8}" 1), and 0
// for an empty array, which reads as an empty ARRAY at any nesting.
func arrayDims(v []byte) int {
	if len(v) > 0 && v[0] == '[' {
		if i := bytes.IndexByte(v, '='); i >= 0 {
			v = v[i+1:]
		}
	}
	n := 0
	for n < len(v) && v[n] == '{' {
		n++
	}
	if n == 1 && len(v) > 1 && v[1] == '}' {
		return 0
	}
	return n
}

// dimsError returns the error for a value of got dimensions in column c,
// declared with c.dims; where says which row.
func dimsError(t *tableMeta, c *colMeta, got int, where string) error {
	return sources.Fatal(fmt.Errorf("postgres: column %s of %s is declared with %d array dimension(s), so flink-ddl declares it %s, but %s holds a value of %d dimension(s), which Flink's JSON formats fail the job on; stopped before it reached Kafka. Change the value, or declare the column with %d dimension(s); CHECK (array_ndims(%s) = %d) makes PostgreSQL refuse such values",
		c.name, t.ident, c.dims, c.typ.flink, where, got, got, c.name, c.dims))
}

// checkDims checks v, the text of column i of a row read by a snapshot. The
// caller skips columns the column rules leave out.
func (t *tableMeta) checkDims(i int, v []byte) error {
	c := &t.cols[i]
	if c.dims == 0 || v == nil {
		return nil
	}
	if got := arrayDims(v); got != 0 && got != c.dims {
		return dimsError(t, c, got, "a row read by the snapshot")
	}
	return nil
}

// checkDims checks the array values of the tuples of the change being
// decoded against the declarations of its table; columns the column rules
// leave out do not count.
func (r *runner) checkDims(rel *relation, walStart pglogrepl.LSN) error {
	t := r.tables[rel.ident]
	if t == nil || !rel.arrays {
		return nil
	}
	for _, tup := range [][]tupleCol{r.msg.new, r.msg.old} {
		for i, c := range tup {
			if c.kind != 't' || i >= len(t.cols) || t.cols[i].dims == 0 {
				continue
			}
			if got := arrayDims(c.data); got != 0 && got != t.cols[i].dims && r.s.rules.Keeps(t.id(), t.cols[i].name) {
				return dimsError(t, &t.cols[i], got, "the change at "+walStart.String())
			}
		}
	}
	return nil
}
