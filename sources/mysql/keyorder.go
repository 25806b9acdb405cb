package mysql

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
)

// This file orders snapshot key values: how each kind of key column sorts
// in the chunk query's ORDER BY and in the snapshot's compare, and how a
// stored key value is written back as a SQL literal.

// keyKind is how a key column is ordered, in SQL and in compare.
type keyKind int

const (
	kindInt     keyKind = iota // integers: numeric
	kindDecimal                // decimal: numeric, exact
	kindText                   // character strings: UTF-8 bytes
	kindBytes                  // binary strings: bytes
	kindTime                   // date, datetime, timestamp: fixed-width text
)

// compareValue orders two JSON-encoded key values as the chunk query's
// ORDER BY does.
func compareValue(k keyKind, a, b string) int {
	switch k {
	case kindInt, kindDecimal:
		x, okx := new(big.Rat).SetString(a)
		y, oky := new(big.Rat).SetString(b)
		if okx && oky {
			return x.Cmp(y)
		}
		return strings.Compare(a, b)
	case kindBytes:
		return bytes.Compare(unbase64(a), unbase64(b))
	default:
		return strings.Compare(unquote(a), unquote(b))
	}
}

func unquote(s string) string {
	var out string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return s
	}
	return out
}

func unbase64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(unquote(s))
	if err != nil {
		return []byte(s)
	}
	return b
}

// orderExpr is the ORDER BY expression of a key column: the column itself
// for numbers and dates (index order), its bytes for strings, so that the
// order is the plain byte order that compare uses.
func orderExpr(k keyKind, col string) string {
	switch k {
	case kindText:
		return "CAST(CONVERT(" + quoteIdent(col) + " USING utf8mb4) AS BINARY)"
	case kindBytes:
		return "CAST(" + quoteIdent(col) + " AS BINARY)"
	}
	return quoteIdent(col)
}

// literal writes a JSON-encoded key value as a SQL literal of its kind.
func literal(k keyKind, v string) (string, error) {
	switch k {
	case kindInt, kindDecimal:
		if !isDecimal(v) {
			return "", fmt.Errorf("key value %s is not a number", v)
		}
		if k == kindDecimal {
			return "CAST(" + quoteString(v) + " AS DECIMAL(65,30))", nil
		}
		return v, nil
	case kindText:
		return "X'" + fmt.Sprintf("%x", unquote(v)) + "'", nil
	case kindBytes:
		return "X'" + fmt.Sprintf("%x", unbase64(v)) + "'", nil
	}
	return quoteString(strings.TrimSuffix(unquote(v), "Z")), nil
}
