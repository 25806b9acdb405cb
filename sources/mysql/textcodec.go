package mysql

import (
	"encoding/base64"
	"strconv"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/cdcrelay/cdcrelay/change"
)

// The encoders of values read with a SELECT (text protocol), which
// snapshots and verify use; textEncoderFor (types.go) picks one per column.

type textEncoder func(b []byte, fv *gomysql.FieldValue) []byte

func txtInt(b []byte, fv *gomysql.FieldValue) []byte {
	switch fv.Type {
	case gomysql.FieldValueTypeSigned:
		return strconv.AppendInt(b, fv.AsInt64(), 10)
	case gomysql.FieldValueTypeUnsigned:
		return strconv.AppendUint(b, fv.AsUint64(), 10)
	}
	return txtDecimal(b, fv)
}

func txtDecimal(b []byte, fv *gomysql.FieldValue) []byte {
	raw := fv.AsString()
	if s := trimZerofill(raw); change.IsNumber(s) {
		return append(b, s...)
	}
	return change.AppendBytes(b, raw)
}

// trimZerofill drops the zeros that MySQL pads a ZEROFILL column's text
// with ("000012.50" becomes "12.50", "000000.00" becomes "0.00"); the
// binlog carries the value without them.
func trimZerofill(s []byte) []byte {
	i := 0
	for i+1 < len(s) && s[i] == '0' && s[i+1] != '.' {
		i++
	}
	return s[i:]
}

func txtFloat32(b []byte, fv *gomysql.FieldValue) []byte {
	if fv.Type == gomysql.FieldValueTypeFloat {
		return appendFloat(b, float64(float32(fv.AsFloat64())), 32)
	}
	f, err := strconv.ParseFloat(string(fv.AsString()), 32)
	if err != nil {
		return append(b, "null"...)
	}
	return appendFloat(b, f, 32)
}

func txtFloat64(b []byte, fv *gomysql.FieldValue) []byte {
	if fv.Type == gomysql.FieldValueTypeFloat {
		return appendFloat(b, fv.AsFloat64(), 64)
	}
	f, err := strconv.ParseFloat(string(fv.AsString()), 64)
	if err != nil {
		return append(b, "null"...)
	}
	return appendFloat(b, f, 64)
}

func txtBool(b []byte, fv *gomysql.FieldValue) []byte {
	raw := fv.AsString()
	return strconv.AppendBool(b, len(raw) > 0 && raw[len(raw)-1] != 0)
}

func txtBytes(b []byte, fv *gomysql.FieldValue) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, fv.AsString())
	return append(b, '"')
}

func txtDate(b []byte, fv *gomysql.FieldValue) []byte {
	return encDate(b, string(fv.AsString()))
}

func txtTimestamp(b []byte, fv *gomysql.FieldValue) []byte {
	return encTimestamp(b, string(fv.AsString()))
}

func txtString(b []byte, fv *gomysql.FieldValue) []byte {
	return change.AppendBytes(b, fv.AsString())
}
