package mysql

import (
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// typeRow is everything this source knows about one column type, named by
// its information_schema DATA_TYPE. Every type rule reads it: the binlog
// encoder (columnEncoder), the SELECT encoder of snapshots and verify
// (textEncoderFor), the Flink type (FlinkType), the key order of snapshot
// chunks (kindOf) and whether verify compares it (refusal). Both encoders
// of a row write the same JSON for the same value; the golden test holds
// them to it.
type typeRow struct {
	// binlog returns the encoder of a column of this type as a binlog
	// row event decodes it.
	binlog func(c binlogCol) encoder
	// text returns the encoder of a column of this type read by a SELECT
	// (text protocol, time zone UTC, connection charset utf8mb4).
	text func(columnType, charset string) textEncoder
	// flink returns the Flink SQL type that reads the JSON.
	flink func(columnType string) string
	// key is how a key column of this type is ordered; keyOK is false when
	// snapshot chunks cannot be read in its order.
	key   keyKind
	keyOK bool
	// textLen is the binlog length of MariaDB's UUID, INET6 and INET4,
	// which the binlog carries as BINARY(n) (addr.go); 0 for other types.
	textLen int
	// spatial types are refused by verify.
	spatial bool
}

// binlogCol is what a TABLE_MAP event says of one column.
type binlogCol struct {
	tp         byte // realType of the column
	rawType    byte // the type byte as sent
	meta       uint16
	unsigned   bool
	collation  uint64
	enum, sets []string
}

func flinkIs(t string) func(string) string { return func(string) string { return t } }
func textIs(e textEncoder) func(string, string) textEncoder {
	return func(string, string) textEncoder { return e }
}
func binlogIs(e encoder) func(binlogCol) encoder { return func(binlogCol) encoder { return e } }

// integer returns the row of an integer type: Flink types signed and
// unsigned (one size up), and the binlog encoder of its unsigned form.
func integer(signed, unsigned string, unsignedEnc encoder) typeRow {
	return typeRow{
		binlog: func(c binlogCol) encoder {
			if c.unsigned {
				return unsignedEnc
			}
			return encSigned
		},
		text: textIs(txtInt),
		flink: func(ct string) string {
			if strings.Contains(ct, "unsigned") {
				return unsigned
			}
			return signed
		},
		key: kindInt, keyOK: true,
	}
}

// stringRow is a character or binary string type. In the binlog the
// collation tells text from bytes; in a SELECT a character type of charset
// binary is bytes.
func stringRow(flink string, key keyKind) typeRow {
	return typeRow{
		binlog: func(c binlogCol) encoder {
			switch {
			case c.collation == binaryCollation && c.rawType == gomysql.MYSQL_TYPE_STRING:
				return paddedBytes(stringLength(c.meta))
			case c.collation == binaryCollation:
				return encBytes
			case isLatin1(c.collation):
				return encLatin1
			}
			return encText
		},
		text: func(_, charset string) textEncoder {
			if charset == "binary" || key == kindBytes {
				return txtBytes
			}
			return txtString
		},
		flink: flinkIs(flink),
		key:   key, keyOK: true,
	}
}

// textTypedRow is MariaDB's UUID, INET6 or INET4: text in a SELECT, n bytes
// in the binlog.
func textTypedRow(dataType string, n int) typeRow {
	return typeRow{
		binlog:  binlogIs(textTypedEncoder(dataType, n)),
		text:    textIs(txtString),
		flink:   flinkIs("STRING"),
		key:     kindText,
		keyOK:   true,
		textLen: n,
	}
}

var (
	bytesRow   = typeRow{binlog: binlogIs(encBytes), text: textIs(txtBytes), flink: flinkIs("BYTES")}
	spatialRow = typeRow{binlog: binlogIs(encBytes), text: textIs(txtBytes), flink: flinkIs("BYTES"), spatial: true}
	textRow    = stringRow("STRING", kindText)
	binaryRow  = stringRow("BYTES", kindBytes)
)

// types holds the row of every DATA_TYPE; a type not listed is read as
// bytes (typeOf).
var types = map[string]typeRow{
	"tinyint":   integer("TINYINT", "SMALLINT", encUnsigned),
	"smallint":  integer("SMALLINT", "INT", encUnsigned),
	"mediumint": integer("INT", "INT", encUnsigned24),
	"int":       integer("INT", "BIGINT", encUnsigned),
	"integer":   integer("INT", "BIGINT", encUnsigned),
	"bigint":    integer("BIGINT", "DECIMAL(20, 0)", encUnsigned),
	"year":      {binlog: binlogIs(encSigned), text: textIs(txtInt), flink: flinkIs("INT"), key: kindInt, keyOK: true},
	"decimal":   decimalRow,
	"numeric":   decimalRow,
	"float":     {binlog: binlogIs(encFloat), text: textIs(txtFloat32), flink: flinkIs("FLOAT")},
	"double":    {binlog: binlogIs(encFloat), text: textIs(txtFloat64), flink: flinkIs("DOUBLE")},
	"real":      {binlog: binlogIs(encFloat), text: textIs(txtFloat64), flink: flinkIs("DOUBLE")},
	"bit": {
		binlog: func(c binlogCol) encoder {
			nbits := int(c.meta>>8)*8 + int(c.meta&0xFF)
			if nbits == 1 {
				return encBool
			}
			return bitEncoder((nbits + 7) / 8)
		},
		text: func(ct, _ string) textEncoder {
			if ct == "bit(1)" {
				return txtBool
			}
			return txtBytes
		},
		flink: func(ct string) string {
			if ct == "bit(1)" {
				return "BOOLEAN"
			}
			return "BYTES"
		},
	},
	"date": {binlog: binlogIs(encDate), text: textIs(txtDate), flink: flinkIs("DATE"), key: kindTime, keyOK: true},
	"datetime": {
		binlog: func(c binlogCol) encoder {
			if c.tp == gomysql.MYSQL_TYPE_DATETIME2 {
				return datetimeEncoder(int(c.meta))
			}
			return datetimeEncoder(0)
		},
		text:  textIs(txtDate),
		flink: func(ct string) string { p, _ := typeArgs(ct, 0, 0); return fmt.Sprintf("TIMESTAMP(%d)", p) },
		key:   kindTime, keyOK: true,
	},
	"timestamp": {
		binlog: func(c binlogCol) encoder {
			if c.tp == gomysql.MYSQL_TYPE_TIMESTAMP2 {
				return timestampEncoder(int(c.meta))
			}
			return timestampEncoder(0)
		},
		text:  textIs(txtTimestamp),
		flink: func(ct string) string { p, _ := typeArgs(ct, 0, 0); return fmt.Sprintf("TIMESTAMP_LTZ(%d)", p) },
		key:   kindTime, keyOK: true,
	},
	"time": {
		binlog: func(c binlogCol) encoder {
			if c.tp == gomysql.MYSQL_TYPE_TIME2 {
				return timeEncoder(int(c.meta))
			}
			return encText
		},
		text:  textIs(txtString),
		flink: flinkIs("STRING"),
	},
	"enum": {binlog: func(c binlogCol) encoder { return enumEncoder(c.enum) }, text: textIs(txtString), flink: flinkIs("STRING")},
	"set":  {binlog: func(c binlogCol) encoder { return setEncoder(c.sets) }, text: textIs(txtString), flink: flinkIs("STRING")},
	"json": {binlog: binlogIs(encJSONText), text: textIs(txtString), flink: flinkIs("STRING")},

	"char": textRow, "varchar": textRow, "tinytext": textRow, "text": textRow, "mediumtext": textRow, "longtext": textRow,
	"binary": binaryRow, "varbinary": binaryRow, "tinyblob": binaryRow, "blob": binaryRow, "mediumblob": binaryRow, "longblob": binaryRow,

	"uuid":  textTypedRow("uuid", 16),
	"inet6": textTypedRow("inet6", 16),
	"inet4": textTypedRow("inet4", 4),

	"geometry": spatialRow, "point": spatialRow, "linestring": spatialRow, "polygon": spatialRow,
	"multipoint": spatialRow, "multilinestring": spatialRow, "multipolygon": spatialRow, "geometrycollection": spatialRow,
	"vector": bytesRow,
}

var decimalRow = typeRow{
	binlog: binlogIs(encDecimal),
	text:   textIs(txtDecimal),
	flink: func(ct string) string {
		p, sc := typeArgs(ct, 10, 0)
		if p > 38 {
			return "STRING"
		}
		return fmt.Sprintf("DECIMAL(%d, %d)", p, sc)
	},
	key: kindDecimal, keyOK: true,
}

// typeOf returns the row of a DATA_TYPE (lower case).
func typeOf(dataType string) typeRow {
	if r, ok := types[dataType]; ok {
		return r
	}
	return bytesRow
}

// binlogTypes names the row of each binlog column type (after realType).
// A binlog type does not always tell one DATA_TYPE: the string types pass
// as the row of varchar, whose binlog encoder tells text from bytes by the
// collation, as the server does; UUID and INET columns arrive as BINARY
// and are told apart by newTableCodec.
var binlogTypes = map[byte]string{
	gomysql.MYSQL_TYPE_TINY:        "tinyint",
	gomysql.MYSQL_TYPE_SHORT:       "smallint",
	gomysql.MYSQL_TYPE_INT24:       "mediumint",
	gomysql.MYSQL_TYPE_LONG:        "int",
	gomysql.MYSQL_TYPE_LONGLONG:    "bigint",
	gomysql.MYSQL_TYPE_YEAR:        "year",
	gomysql.MYSQL_TYPE_NEWDECIMAL:  "decimal",
	gomysql.MYSQL_TYPE_FLOAT:       "float",
	gomysql.MYSQL_TYPE_DOUBLE:      "double",
	gomysql.MYSQL_TYPE_BIT:         "bit",
	gomysql.MYSQL_TYPE_DATE:        "date",
	gomysql.MYSQL_TYPE_NEWDATE:     "date",
	gomysql.MYSQL_TYPE_DATETIME:    "datetime",
	gomysql.MYSQL_TYPE_DATETIME2:   "datetime",
	gomysql.MYSQL_TYPE_TIMESTAMP:   "timestamp",
	gomysql.MYSQL_TYPE_TIMESTAMP2:  "timestamp",
	gomysql.MYSQL_TYPE_TIME:        "time",
	gomysql.MYSQL_TYPE_TIME2:       "time",
	gomysql.MYSQL_TYPE_ENUM:        "enum",
	gomysql.MYSQL_TYPE_SET:         "set",
	gomysql.MYSQL_TYPE_JSON:        "json",
	gomysql.MYSQL_TYPE_STRING:      "varchar",
	gomysql.MYSQL_TYPE_VARCHAR:     "varchar",
	gomysql.MYSQL_TYPE_VAR_STRING:  "varchar",
	gomysql.MYSQL_TYPE_BLOB:        "varchar",
	gomysql.MYSQL_TYPE_TINY_BLOB:   "varchar",
	gomysql.MYSQL_TYPE_MEDIUM_BLOB: "varchar",
	gomysql.MYSQL_TYPE_LONG_BLOB:   "varchar",
	gomysql.MYSQL_TYPE_GEOMETRY:    "geometry",
	gomysql.MYSQL_TYPE_VECTOR:      "vector",
}

// columnEncoder returns the binlog encoder of a column from its TABLE_MAP
// metadata.
func columnEncoder(tp byte, meta uint16, unsigned bool, collation uint64, enumVals, setVals []string) (encoder, error) {
	rt := realType(tp, meta)
	name, ok := binlogTypes[rt]
	if !ok {
		return nil, fmt.Errorf("binlog column type %d is not supported", tp)
	}
	return types[name].binlog(binlogCol{tp: rt, rawType: tp, meta: meta, unsigned: unsigned, collation: collation, enum: enumVals, sets: setVals}), nil
}

// textEncoderFor returns the encoder of a column read with a SELECT. It
// writes the same JSON as the binlog encoder of the same column.
func textEncoderFor(dataType, columnType, charset string) textEncoder {
	return typeOf(dataType).text(columnType, charset)
}

// FlinkType returns the Flink SQL type that reads the JSON this source
// writes for a column of the given information_schema DATA_TYPE and
// COLUMN_TYPE (see docs/types-mysql.md).
func FlinkType(dataType, columnType string) string {
	return typeOf(dataType).flink(columnType)
}

// kindOf returns how a key column is ordered, false when snapshot chunks
// cannot be read in its order.
func kindOf(col column) (keyKind, bool) {
	r := typeOf(col.dataType)
	return r.key, r.keyOK
}
