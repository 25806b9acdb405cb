package format

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/cdcrelay/cdcrelay/change"
)

// maxTopicLen is Kafka's limit on a topic name.
const maxTopicLen = 249

// Topic returns the topic of a table: <prefix>.<namespace>.<table>.
//
// Kafka allows only a-z, A-Z, 0-9, '.', '_' and '-' in topic names, so each
// name part keeps letters, digits and '_' as they are and writes every other
// byte of its UTF-8 form, '-' and '.' included, as '-' and two lowercase hex
// digits: "Order Items" becomes "Order-20Items", "a.b" becomes "a-2eb" and
// "x-y" becomes "x-2dy". Since '-' only ever starts an escape, the mapping is
// reversible and so free of collisions. A name longer than 249 bytes is cut
// to 232 and ends with '-' and 16 hex digits of its SHA-256 instead.
func Topic(prefix string, t change.TableID) string {
	name := prefix + "." + escapePart(t.Namespace) + "." + escapePart(t.Name)
	if len(name) <= maxTopicLen {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:maxTopicLen-17] + "-" + hex.EncodeToString(sum[:8])
}

func escapePart(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('-')
		b.WriteByte(hexDigit[c>>4])
		b.WriteByte(hexDigit[c&0xF])
	}
	return b.String()
}

const hexDigit = "0123456789abcdef"

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
