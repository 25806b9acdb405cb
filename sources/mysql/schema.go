package mysql

import (
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/cdcrelay/cdcrelay/change"
)

// binlogTypeNames names the column types of a TABLE_MAP event.
var binlogTypeNames = map[byte]string{
	gomysql.MYSQL_TYPE_DECIMAL: "decimal", gomysql.MYSQL_TYPE_TINY: "tinyint",
	gomysql.MYSQL_TYPE_SHORT: "smallint", gomysql.MYSQL_TYPE_LONG: "int",
	gomysql.MYSQL_TYPE_FLOAT: "float", gomysql.MYSQL_TYPE_DOUBLE: "double",
	gomysql.MYSQL_TYPE_NULL: "null", gomysql.MYSQL_TYPE_TIMESTAMP: "timestamp",
	gomysql.MYSQL_TYPE_LONGLONG: "bigint", gomysql.MYSQL_TYPE_INT24: "mediumint",
	gomysql.MYSQL_TYPE_DATE: "date", gomysql.MYSQL_TYPE_TIME: "time",
	gomysql.MYSQL_TYPE_DATETIME: "datetime", gomysql.MYSQL_TYPE_YEAR: "year",
	gomysql.MYSQL_TYPE_NEWDATE: "date", gomysql.MYSQL_TYPE_VARCHAR: "varchar",
	gomysql.MYSQL_TYPE_BIT: "bit", gomysql.MYSQL_TYPE_TIMESTAMP2: "timestamp",
	gomysql.MYSQL_TYPE_DATETIME2: "datetime", gomysql.MYSQL_TYPE_TIME2: "time",
	gomysql.MYSQL_TYPE_JSON: "json", gomysql.MYSQL_TYPE_NEWDECIMAL: "decimal",
	gomysql.MYSQL_TYPE_ENUM: "enum", gomysql.MYSQL_TYPE_SET: "set",
	gomysql.MYSQL_TYPE_TINY_BLOB: "tinyblob", gomysql.MYSQL_TYPE_MEDIUM_BLOB: "mediumblob",
	gomysql.MYSQL_TYPE_LONG_BLOB: "longblob", gomysql.MYSQL_TYPE_BLOB: "blob",
	gomysql.MYSQL_TYPE_VAR_STRING: "varchar", gomysql.MYSQL_TYPE_STRING: "char",
	gomysql.MYSQL_TYPE_GEOMETRY: "geometry",
}

// shapeOf describes the table version of tm for the schema fingerprint, with
// the Kafka key chosen for it. The types are those of the binlog, which
// gives string lengths in bytes, not characters.
func shapeOf(tm *replication.TableMapEvent, key []string) (shape string, err error) {
	defer func() {
		if p := recover(); p != nil {
			shape, err = "", fmt.Errorf("mysql: TABLE_MAP of %s.%s has inconsistent metadata: %v", tm.Schema, tm.Table, p)
		}
	}()
	names := tm.ColumnNameString()
	unsigned := tm.UnsignedMap()
	collations := tm.CollationMap()
	enums := tm.EnumStrValueMap()
	sets := tm.SetStrValueMap()
	cols := make([]change.ShapeColumn, len(names))
	for i, n := range names {
		meta := tm.ColumnMeta[i]
		tp := realType(tm.ColumnType[i], meta)
		name, ok := binlogTypeNames[tp]
		if !ok {
			name = fmt.Sprintf("type%d", tp)
		}
		if tp == gomysql.MYSQL_TYPE_BLOB && meta >= 1 && meta <= 4 {
			name = [...]string{"tinyblob", "blob", "mediumblob", "longblob"}[meta-1]
			if collations[i] != binaryCollation {
				name = strings.Replace(name, "blob", "text", 1)
			}
			meta = 0
		}
		var b strings.Builder
		b.WriteString(name)
		switch tp {
		case gomysql.MYSQL_TYPE_NEWDECIMAL:
			fmt.Fprintf(&b, "(%d,%d)", meta>>8, meta&0xff)
		case gomysql.MYSQL_TYPE_STRING:
			fmt.Fprintf(&b, "(%d bytes)", stringLength(meta))
		case gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VAR_STRING:
			fmt.Fprintf(&b, "(%d bytes)", meta)
		case gomysql.MYSQL_TYPE_ENUM:
			fmt.Fprintf(&b, "(%s)", strings.Join(enums[i], ","))
		case gomysql.MYSQL_TYPE_SET:
			fmt.Fprintf(&b, "(%s)", strings.Join(sets[i], ","))
		default:
			if meta != 0 {
				fmt.Fprintf(&b, "(%d)", meta)
			}
		}
		if unsigned[i] {
			b.WriteString(" unsigned")
		}
		if collations[i] == binaryCollation && tp != gomysql.MYSQL_TYPE_BLOB {
			b.WriteString(" binary")
		}
		cols[i] = change.ShapeColumn{Name: n, Type: b.String()}
	}
	return change.DescribeShape(cols, key), nil
}

// observeShape records the shape of the table version c describes, and logs
// and counts a change from the shape known before.
func (r *reader) observeShape(c *tableCodec) {
	id := c.id.String()
	changed, was := r.schemas.Observe(id, c.shape)
	if !changed {
		return
	}
	r.s.m.SchemaChanges.WithLabelValues(r.s.m.Table(id)).Inc()
	if was == "" {
		was = "(not in this run; changed since the stored position)"
	}
	r.s.log.Warn("mysql: schema of "+id+" changed; regenerate Flink DDL with cdcrelay flink-ddl",
		"table", id, "columns", c.shape, "before", was, "fingerprint", r.schemas.Fingerprint())
}
