package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// This file decodes pgoutput protocol version 1 messages. It does the same
// job as pglogrepl.Parse but checks every length against the buffer (a
// truncated or corrupt message is an error, never a panic) and does not copy
// tuple data: a message's slices point into the buffer it was parsed from
// and are valid until the next receive.

var errShort = errors.New("pgoutput: message truncated")

// tupleCol is one column of a tuple: kind is 'n' (null), 'u' (unchanged
// TOASTed value), 't' (text) or 'b' (binary).
type tupleCol struct {
	kind byte
	data []byte
}

// relationMsg is a decoded Relation message.
type relationMsg struct {
	id        uint32
	namespace string
	name      string
	identity  byte // d default, n nothing, f full, i index
	cols      []relationCol
}

type relationCol struct {
	key    bool
	name   string
	oid    uint32
	typmod int32
}

// pgMessage is one decoded message. Only the fields of its kind are set; the
// tuple slices are reused from one message to the next.
type pgMessage struct {
	kind byte

	lsn     uint64 // Begin: final LSN; Commit: commit LSN; Message: its LSN
	endLSN  uint64 // Commit: end of the transaction
	time    int64  // Begin, Commit: commit time, microseconds since 2000-01-01
	xid     uint32 // Begin
	relID   uint32 // Insert, Update, Delete
	oldKind byte   // Update, Delete: 'K', 'O' or 0
	old     []tupleCol
	new     []tupleCol

	rel      relationMsg // Relation
	relIDs   []uint32    // Truncate
	truncOpt byte

	transactional bool   // Message
	prefix        string // Message
	content       []byte // Message

	typeOID  uint32 // Type
	typeNS   string
	typeName string
	origin   string // Origin
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b) < n {
		r.err = errShort
		return false
	}
	return true
}

func (r *reader) u8() byte {
	if !r.need(1) {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) cstring() string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	r.err = errShort
	return ""
}

func (r *reader) tuple(dst []tupleCol) []tupleCol {
	n := int(r.u16())
	dst = dst[:0]
	for i := 0; i < n && r.err == nil; i++ {
		c := tupleCol{kind: r.u8()}
		switch c.kind {
		case 't', 'b':
			c.data = r.bytes(int(r.u32()))
		case 'n', 'u':
		default:
			if r.err == nil {
				r.err = fmt.Errorf("pgoutput: unknown tuple column kind %q", c.kind)
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// parse decodes one pgoutput message into m.
func (m *pgMessage) parse(b []byte) error {
	if len(b) == 0 {
		return errShort
	}
	r := reader{b: b[1:]}
	m.kind = b[0]
	switch m.kind {
	case 'B':
		m.lsn = r.u64()
		m.time = int64(r.u64())
		m.xid = r.u32()
	case 'C':
		r.u8()
		m.lsn = r.u64()
		m.endLSN = r.u64()
		m.time = int64(r.u64())
	case 'O':
		m.lsn = r.u64()
		m.origin = r.cstring()
	case 'R':
		m.rel.id = r.u32()
		m.rel.namespace = r.cstring()
		m.rel.name = r.cstring()
		m.rel.identity = r.u8()
		n := int(r.u16())
		m.rel.cols = m.rel.cols[:0]
		for i := 0; i < n && r.err == nil; i++ {
			c := relationCol{key: r.u8()&1 != 0}
			c.name = r.cstring()
			c.oid = r.u32()
			c.typmod = int32(r.u32())
			m.rel.cols = append(m.rel.cols, c)
		}
	case 'Y':
		m.typeOID = r.u32()
		m.typeNS = r.cstring()
		m.typeName = r.cstring()
	case 'I':
		m.relID = r.u32()
		if k := r.u8(); k != 'N' && r.err == nil {
			return fmt.Errorf("pgoutput: insert: tuple kind %q, want 'N'", k)
		}
		m.new = r.tuple(m.new)
	case 'U':
		m.relID = r.u32()
		m.oldKind = 0
		k := r.u8()
		if k == 'K' || k == 'O' {
			m.oldKind = k
			m.old = r.tuple(m.old)
			k = r.u8()
		}
		if k != 'N' && r.err == nil {
			return fmt.Errorf("pgoutput: update: tuple kind %q, want 'N'", k)
		}
		m.new = r.tuple(m.new)
	case 'D':
		m.relID = r.u32()
		m.oldKind = r.u8()
		if m.oldKind != 'K' && m.oldKind != 'O' && r.err == nil {
			return fmt.Errorf("pgoutput: delete: tuple kind %q, want 'K' or 'O'", m.oldKind)
		}
		m.old = r.tuple(m.old)
	case 'T':
		n := int(r.u32())
		m.truncOpt = r.u8()
		if n > len(r.b)/4 {
			return errShort
		}
		m.relIDs = m.relIDs[:0]
		for i := 0; i < n; i++ {
			m.relIDs = append(m.relIDs, r.u32())
		}
	case 'M':
		m.transactional = r.u8()&1 != 0
		m.lsn = r.u64()
		m.prefix = r.cstring()
		m.content = r.bytes(int(r.u32()))
	default:
		return fmt.Errorf("pgoutput: unsupported message type %q", m.kind)
	}
	return r.err
}
