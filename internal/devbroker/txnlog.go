package devbroker

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfake writes a transaction's markers one partition after the other and
// keeps no record of the outcome before it starts. A SIGKILL in between
// leaves the transaction committed in some partitions and open in the
// others, and the crash repair would then abort the open part: a torn
// commit. Kafka avoids this with its transaction log: the coordinator
// writes PrepareCommit before any marker and, after a restart, completes
// every prepared commit.
//
// decisionLog is that log, cut down to what kfake lacks. Before kfake handles
// an EndTxn that commits, the broker writes the decision (producer id and
// epoch) to one small file; once the broker handles the next request that
// could start another transaction (Produce, AddPartitionsToTxn, EndTxn), the
// decision is settled and the file cleared, because kfake handles requests
// one at a time and had finished writing the markers by then. At start, a
// decision still in the file is completed: every partition where that
// producer still has a transaction of that epoch open gets a COMMIT marker,
// before kfake loads the data.
//
// The file holds at most one decision, because a decision is settled before
// the next request is handled.

// decisionFile is the name of the decision log in the data directory.
const decisionFile = "txn-decision"

// A decision record: "CDTX", a version byte, 'C', the producer epoch
// (int16), the producer id (int64), and the CRC-32C of the 16 bytes before
// it. A record of zeros, or an empty file, is no decision.
const decisionSize = 20

var crc32c = crc32.MakeTable(crc32.Castagnoli)

type decision struct {
	producerID int64
	epoch      int16
}

func encodeDecision(d decision) [decisionSize]byte {
	var b [decisionSize]byte
	copy(b[:4], "CDTX")
	b[4], b[5] = 1, 'C'
	binary.BigEndian.PutUint16(b[6:8], uint16(d.epoch))
	binary.BigEndian.PutUint64(b[8:16], uint64(d.producerID))
	binary.BigEndian.PutUint32(b[16:20], crc32.Checksum(b[:16], crc32c))
	return b
}

// decodeDecision reports the decision in b, if b holds a whole, intact one.
// A torn or partly cleared record is no decision: the write of a decision
// comes before any marker, so a crash that tore it happened before the
// outcome was visible anywhere.
func decodeDecision(b []byte) (decision, bool) {
	if len(b) < decisionSize || string(b[:4]) != "CDTX" || b[4] != 1 || b[5] != 'C' {
		return decision{}, false
	}
	if binary.BigEndian.Uint32(b[16:20]) != crc32.Checksum(b[:16], crc32c) {
		return decision{}, false
	}
	return decision{
		producerID: int64(binary.BigEndian.Uint64(b[8:16])),
		epoch:      int16(binary.BigEndian.Uint16(b[6:8])),
	}, true
}

// decisionLog writes and clears the decision file. Its methods are safe for
// concurrent use, though kfake calls them one at a time.
type decisionLog struct {
	mu      sync.Mutex
	f       *os.File
	sync    bool // fsync each write, as with Config.SyncWrites
	pending bool

	// afterDecide, if set, runs after a decision is written and before
	// kfake writes its markers. Tests use it to crash at that point.
	afterDecide func()
}

func openDecisionLog(dataDir string, sync bool) (*decisionLog, error) {
	f, err := os.OpenFile(filepath.Join(dataDir, decisionFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("devbroker: transaction decision log: %w", err)
	}
	return &decisionLog{f: f, sync: sync}, nil
}

// decide records that the producer's open transaction commits.
func (l *decisionLog) decide(d decision) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := encodeDecision(d)
	if err := l.write(rec[:]); err != nil {
		return err
	}
	l.pending = true
	if l.afterDecide != nil {
		l.afterDecide()
	}
	return nil
}

// settle clears a pending decision: its markers are all written.
func (l *decisionLog) settle() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.pending {
		return nil
	}
	var zero [decisionSize]byte
	if err := l.write(zero[:]); err != nil {
		return err
	}
	l.pending = false
	return nil
}

func (l *decisionLog) write(b []byte) error {
	if _, err := l.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("devbroker: transaction decision log: %w", err)
	}
	if l.sync {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("devbroker: transaction decision log: %w", err)
		}
	}
	return nil
}

func (l *decisionLog) Close() error { return l.f.Close() }

// install hooks the log into the cluster's request handling. A request the
// log cannot be written for is refused by closing the client's connection,
// so that no commit goes ahead unrecorded; the client retries.
func (l *decisionLog) install(c *kfake.Cluster, log *slog.Logger) {
	fail := func(err error) (kmsg.Response, error, bool) {
		log.Error("dev-broker: refusing a request", "err", err)
		c.KeepControl()
		return nil, err, true
	}
	settle := func(kmsg.Request) (kmsg.Response, error, bool) {
		if err := l.settle(); err != nil {
			return fail(err)
		}
		return nil, nil, false
	}
	c.ControlKey(kmsg.Produce.Int16(), settle)
	c.ControlKey(kmsg.AddPartitionsToTxn.Int16(), settle)
	c.ControlKey(kmsg.EndTxn.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if err := l.settle(); err != nil {
			return fail(err)
		}
		end := req.(*kmsg.EndTxnRequest)
		if !end.Commit {
			return nil, nil, false
		}
		if err := l.decide(decision{producerID: end.ProducerID, epoch: end.ProducerEpoch}); err != nil {
			return fail(err)
		}
		return nil, nil, false
	})
}

// completeDecision commits, before kfake loads dataDir, every transaction
// that the decision log says was committing when the broker stopped, and
// then clears the log. It returns the partitions it wrote a COMMIT marker
// to.
func completeDecision(dataDir string, log *slog.Logger) ([]openTxn, error) {
	path := filepath.Join(dataDir, decisionFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", decisionFile, err)
	}
	d, ok := decodeDecision(raw)
	if !ok {
		return nil, nil
	}
	open, err := findOpenTxns(dataDir)
	if err != nil {
		return nil, err
	}
	var committed []openTxn
	for _, t := range open {
		if t.producerID != d.producerID || t.epoch != d.epoch {
			continue
		}
		if err := appendCommitMarker(t.dir, t.producerID, t.epoch); err != nil {
			return committed, fmt.Errorf("commit %s/%d: %w", t.topic, t.partition, err)
		}
		committed = append(committed, t)
		log.Info("dev-broker: completed the commit of a transaction a crash interrupted",
			"topic", t.topic, "partition", t.partition, "producer_id", t.producerID, "epoch", t.epoch, "first_offset", t.first)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return committed, fmt.Errorf("clear %s: %w", decisionFile, err)
	}
	return committed, syncFile(path)
}

func syncFile(path string) error {
	return withSyncedFile(path, os.O_RDWR, func(*os.File) error { return nil })
}

// withSyncedFile opens path with flag, runs fn on it, then syncs and closes
// it, returning the first error.
func withSyncedFile(path string, flag int, fn func(*os.File) error) error {
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return err
	}
	err = fn(f)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Index entries, as kfake writes them next to each segment: a version byte,
// the low byte of the CRC-32C of the rest, the partition leader epoch
// (little-endian int32), the largest earlier timestamp (little-endian
// int64; kfake recomputes it at load) and flags (bit 0: the batch is part of
// a transaction).
const (
	indexEntrySize    = 15
	indexEntryVersion = 1
)

func encodeIndexEntry(epoch int32, ts int64, inTx bool) []byte {
	b := make([]byte, indexEntrySize)
	b[0] = indexEntryVersion
	binary.LittleEndian.PutUint32(b[2:6], uint32(epoch))
	binary.LittleEndian.PutUint64(b[6:14], uint64(ts))
	if inTx {
		b[14] = 1
	}
	b[1] = byte(crc32.Checksum(b[2:], crc32c))
	return b
}

// commitMarkerBatch is a control batch with one COMMIT marker, as a
// transaction coordinator writes it, at the given offset.
func commitMarkerBatch(offset, producerID int64, epoch int16, leaderEpoch int32, now int64) []byte {
	key := kmsg.ControlRecordKey{Type: kmsg.ControlRecordKeyTypeCommit}
	marker := kmsg.EndTxnMarker{}
	rec := kmsg.Record{Key: key.AppendTo(nil), Value: marker.AppendTo(nil)}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // the length varint itself is one byte
	b := kmsg.RecordBatch{
		FirstOffset:          offset,
		PartitionLeaderEpoch: leaderEpoch,
		Magic:                2,
		Attributes:           attrControl | attrTransactional,
		FirstTimestamp:       now,
		MaxTimestamp:         now,
		ProducerID:           producerID,
		ProducerEpoch:        epoch,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              rec.AppendTo(nil),
	}
	enc := b.AppendTo(nil)
	binary.BigEndian.PutUint32(enc[8:12], uint32(len(enc)-12))
	binary.BigEndian.PutUint32(enc[17:21], crc32.Checksum(enc[21:], crc32c))
	return enc
}

// appendCommitMarker appends a COMMIT marker for the producer's open
// transaction to the partition's last segment, with its index entry, and
// syncs both files.
// repairIndexes must have run on the partition first, so that the segment
// ends with a whole batch and its index has an entry for every batch.
func appendCommitMarker(dir string, producerID int64, epoch int16) error {
	segs, err := segments(dir)
	if err != nil || len(segs) == 0 {
		return errors.Join(err, errors.New("no segment"))
	}
	next, leaderEpoch, err := partitionEnd(segs)
	if err != nil {
		return err
	}
	last := segs[len(segs)-1]
	batch := commitMarkerBatch(next, producerID, epoch, leaderEpoch, time.Now().UnixMilli())
	if err := appendSync(last.dat, batch); err != nil {
		return err
	}
	return appendSync(last.idx, encodeIndexEntry(leaderEpoch, 0, false))
}

func appendSync(path string, b []byte) error {
	return withSyncedFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, func(f *os.File) error {
		_, err := f.Write(b)
		return err
	})
}

// partitionEnd returns the offset after the partition's last batch and the
// leader epoch of its last index entry.
func partitionEnd(segs []segment) (next int64, leaderEpoch int32, err error) {
	next = -1
	for _, s := range segs {
		raw, err := os.ReadFile(s.dat)
		if err != nil {
			return 0, 0, err
		}
		walkBatches(raw, func(b *kmsg.RecordBatch) {
			next = b.FirstOffset + int64(b.LastOffsetDelta) + 1
		})
		idx, err := os.ReadFile(s.idx)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, 0, err
		}
		if n := len(idx) / indexEntrySize; n > 0 {
			e := idx[(n-1)*indexEntrySize:]
			leaderEpoch = int32(binary.LittleEndian.Uint32(e[2:6]))
		}
	}
	if next < 0 {
		// Only empty segments: the next offset is the last one's base.
		next = segs[len(segs)-1].base
	}
	return next, leaderEpoch, nil
}

// repairIndexes makes a partition's files what kfake would have written had
// it not been killed: a segment's partial last batch is cut off (kfake would
// cut it at load), and a batch written to the segment whose index entry was
// not is given one. Without that entry kfake takes the batch for one outside
// any transaction: an open transaction's records would be served to
// read_committed readers.
func repairIndexes(dir string, log *slog.Logger) error {
	segs, err := segments(dir)
	if err != nil {
		return err
	}
	var leaderEpoch int32
	for _, s := range segs {
		raw, err := os.ReadFile(s.dat)
		if err != nil {
			return err
		}
		idx, err := os.ReadFile(s.idx)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		var missing []byte
		n, have := 0, len(idx)/indexEntrySize
		if have > 0 {
			leaderEpoch = int32(binary.LittleEndian.Uint32(idx[(have-1)*indexEntrySize+2:]))
		}
		end := walkBatches(raw, func(b *kmsg.RecordBatch) {
			if n >= have {
				inTx := b.Attributes&attrTransactional != 0 && b.Attributes&attrControl == 0
				missing = append(missing, encodeIndexEntry(leaderEpoch, 0, inTx)...)
			}
			n++
		})
		if end < len(raw) {
			log.Warn("dev-broker: cutting a partial batch a crash left at the end of a segment",
				"segment", s.dat, "bytes", len(raw)-end)
			if err := truncateSync(s.dat, int64(end)); err != nil {
				return err
			}
		}
		if have > n || len(idx)%indexEntrySize != 0 {
			if err := truncateSync(s.idx, int64(min(have, n)*indexEntrySize)); err != nil {
				return err
			}
		}
		if len(missing) > 0 {
			log.Warn("dev-broker: adding index entries a crash left unwritten",
				"segment", s.dat, "entries", len(missing)/indexEntrySize)
			if err := appendSync(s.idx, missing); err != nil {
				return err
			}
		}
	}
	return nil
}

func truncateSync(path string, size int64) error {
	return withSyncedFile(path, os.O_RDWR, func(f *os.File) error { return f.Truncate(size) })
}

// walkBatches calls fn for each whole record batch in a segment's bytes and
// returns where the whole batches end.
func walkBatches(raw []byte, fn func(b *kmsg.RecordBatch)) int {
	pos := 0
	for pos+12 <= len(raw) {
		size := 12 + int(binary.BigEndian.Uint32(raw[pos+8:pos+12]))
		if size < 12+49 || pos+size > len(raw) {
			break
		}
		if binary.BigEndian.Uint32(raw[pos+17:pos+21]) != crc32.Checksum(raw[pos+21:pos+size], crc32c) {
			break
		}
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw[pos : pos+size]); err != nil {
			break
		}
		fn(&b)
		pos += size
	}
	return pos
}

// segment is one of a partition's segment files and its index.
type segment struct {
	base     int64
	dat, idx string
}

// segments lists a partition directory's segments in offset order.
func segments(dir string) ([]segment, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.dat"))
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".dat")
		base, err := strconv.ParseInt(name, 10, 64)
		if err != nil {
			continue // not kfake's
		}
		segs = append(segs, segment{base: base, dat: p, idx: filepath.Join(dir, name+".idx")})
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.base, b.base) })
	return segs, nil
}

// testAfterDecide is set by builds with the cdcrelay_testing tag; see
// testing_hooks.go.
var testAfterDecide func()
