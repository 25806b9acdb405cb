package postgres

import "strings"

// compareDecimal orders numeric text values as PostgreSQL does:
// -Infinity < numbers < Infinity < NaN.
func compareDecimal(a, b string) int {
	ra, rb := decimalRank(a), decimalRank(b)
	if ra != rb || ra != 1 {
		return cmpInt(ra, rb)
	}
	na, nb := strings.HasPrefix(a, "-"), strings.HasPrefix(b, "-")
	a, b = strings.TrimPrefix(a, "-"), strings.TrimPrefix(b, "-")
	if isZero(a) {
		na = false
	}
	if isZero(b) {
		nb = false
	}
	if na != nb {
		if na {
			return -1
		}
		return 1
	}
	c := compareAbs(a, b)
	if na {
		return -c
	}
	return c
}

func decimalRank(s string) int {
	switch s {
	case "-Infinity":
		return 0
	case "Infinity":
		return 2
	case "NaN":
		return 3
	}
	return 1
}

func isZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' && s[i] != '.' {
			return false
		}
	}
	return true
}

func compareAbs(a, b string) int {
	ai, af, _ := strings.Cut(a, ".")
	bi, bf, _ := strings.Cut(b, ".")
	ai, bi = strings.TrimLeft(ai, "0"), strings.TrimLeft(bi, "0")
	if len(ai) != len(bi) {
		return cmpInt(len(ai), len(bi))
	}
	if c := strings.Compare(ai, bi); c != 0 {
		return c
	}
	af, bf = strings.TrimRight(af, "0"), strings.TrimRight(bf, "0")
	return strings.Compare(af, bf) // a shorter fraction that is a prefix is smaller
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
