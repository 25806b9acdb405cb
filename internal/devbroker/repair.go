package devbroker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// After a SIGKILL, kfake treats a transaction that has records but no
// marker as aborted: it lists it among the partition's aborted transactions
// and bumps the producer's epoch. It writes no ABORT marker, though, and
// consumers filter aborted records on their side: from an aborted
// transaction's first offset they drop every record of that producer id
// until they meet its ABORT marker. Without the marker, every later record of
// that producer id (the next transactions of the same transactional id, all
// committed) stays invisible to read_committed readers for ever.
//
// repairCrashAborts writes the missing markers, as Kafka's transaction
// coordinator does when it aborts a transaction after a restart. It runs
// before the real broker starts, on a private loopback listener, and only for
// transactions kfake itself reports as aborted: a transaction kept open
// across a clean shutdown is left alone.

// openTxn is a transaction that has records in a partition and no marker
// after them.
type openTxn struct {
	topic      string
	partition  int32
	producerID int64
	epoch      int16
	first      int64 // offset of its first batch in this partition
}

// Record batch attributes, from the Kafka protocol.
const (
	attrTransactional = 0x10
	attrControl       = 0x20
)

// findOpenTxns scans kfake's segment files, read only, for transactions
// without a marker. A truncated or corrupt tail ends a segment, as it does
// when kfake loads it.
func findOpenTxns(dataDir string) ([]openTxn, error) {
	dirs, err := filepath.Glob(filepath.Join(dataDir, "partitions", "*"))
	if err != nil {
		return nil, err
	}
	var open []openTxn
	for _, dir := range dirs {
		name := filepath.Base(dir)
		i := strings.LastIndexByte(name, '-')
		if i < 0 {
			continue
		}
		topic, err1 := url.PathUnescape(name[:i])
		part, err2 := strconv.ParseInt(name[i+1:], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		txns, err := scanPartition(dir)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", dir, err)
		}
		for _, t := range txns {
			t.topic, t.partition = topic, int32(part)
			open = append(open, t)
		}
	}
	return open, nil
}

func scanPartition(dir string) ([]openTxn, error) {
	segs, err := filepath.Glob(filepath.Join(dir, "*.dat"))
	if err != nil {
		return nil, err
	}
	base := func(path string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSuffix(filepath.Base(path), ".dat"), 10, 64)
		return n
	}
	slices.SortFunc(segs, func(a, b string) int { return int(base(a) - base(b)) })

	open := map[int64]openTxn{}
	for _, seg := range segs {
		raw, err := os.ReadFile(seg)
		if err != nil {
			return nil, err
		}
		for pos := 0; pos+12 <= len(raw); {
			size := 12 + int(binary.BigEndian.Uint32(raw[pos+8:pos+12]))
			if size < 12 || pos+size > len(raw) {
				break
			}
			var b kmsg.RecordBatch
			if err := b.ReadFrom(raw[pos : pos+size]); err != nil {
				break
			}
			pos += size
			switch {
			case b.Attributes&attrControl != 0:
				delete(open, b.ProducerID)
			case b.Attributes&attrTransactional != 0:
				if _, ok := open[b.ProducerID]; !ok {
					open[b.ProducerID] = openTxn{producerID: b.ProducerID, epoch: b.ProducerEpoch, first: b.FirstOffset}
				}
			}
		}
	}
	txns := make([]openTxn, 0, len(open))
	for _, t := range open {
		txns = append(txns, t)
	}
	return txns, nil
}

// repairCrashAborts writes an ABORT marker for every open transaction that
// kfake reports as aborted. It returns how many it wrote.
func repairCrashAborts(dataDir string, log *slog.Logger) (int, error) {
	open, err := findOpenTxns(dataDir)
	if err != nil || len(open) == 0 {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(ln.Addr().(*net.TCPAddr).Port),
		kfake.ListenFn(func(string, string) (net.Listener, error) { return ln, nil }),
		kfake.WithLogger(&kfakeLogger{log: log}),
		kfake.DataDir(dataDir),
	)
	if err != nil {
		ln.Close()
		return 0, err
	}
	defer cluster.Close()

	cl, err := kgo.NewClient(kgo.SeedBrokers(ln.Addr().String()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	topics, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		return 0, fmt.Errorf("list topics: %w", err)
	}
	wrote := 0
	for _, t := range open {
		td, ok := topics[t.topic]
		if !ok {
			continue // deleted topic; kfake ignores its directory
		}
		aborted, err := listedAborted(ctx, cl, td.ID, t)
		if err != nil {
			return wrote, err
		}
		if !aborted {
			continue // kept open across a clean shutdown
		}
		if err := writeAbortMarker(ctx, cl, t); err != nil {
			return wrote, err
		}
		wrote++
		log.Info("dev-broker: wrote the missing ABORT marker of a transaction open at a crash",
			"topic", t.topic, "partition", t.partition, "producer_id", t.producerID, "first_offset", t.first)
	}
	return wrote, nil
}

// listedAborted reports whether a read_committed fetch from the
// transaction's first offset lists it as aborted.
func listedAborted(ctx context.Context, cl *kgo.Client, id kadm.TopicID, t openTxn) (bool, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxBytes = 1
	req.IsolationLevel = 1
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = t.topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = t.partition, t.first, 1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return false, fmt.Errorf("fetch %s/%d: %w", t.topic, t.partition, err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			for _, a := range rp.AbortedTransactions {
				if a.ProducerID == t.producerID && a.FirstOffset >= t.first {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

func writeAbortMarker(ctx context.Context, cl *kgo.Client, t openTxn) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = t.producerID, t.epoch, false
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = t.topic, []int32{t.partition}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("write abort marker %s/%d: %w", t.topic, t.partition, err)
	}
	var errs []error
	for _, m := range resp.Markers {
		for _, mt := range m.Topics {
			for _, p := range mt.Partitions {
				if p.ErrorCode != 0 {
					errs = append(errs, fmt.Errorf("write abort marker %s/%d: %w", mt.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode)))
				}
			}
		}
	}
	return errors.Join(errs...)
}
