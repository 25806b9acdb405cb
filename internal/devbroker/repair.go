package devbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
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
// repairCrash finishes what the crash interrupted, as Kafka's transaction
// coordinator does after a restart. It writes the missing ABORT markers; the
// epoch kfake bumped for those producers is stored when the repair cluster
// closes. A transaction that completeDecision committed was never open as
// far as kfake can tell, so repairCrash bumps its producer's epoch itself:
// the client that sent the EndTxn learns the outcome when it retries
// (KIP-890's retry detection), and any other use of the old epoch is
// fenced. It runs before the real broker starts, on a private loopback
// listener, and aborts only transactions kfake itself reports as aborted: a
// transaction kept open across a clean shutdown is left alone.

// openTxn is a transaction that has records in a partition and no marker
// after them.
type openTxn struct {
	dir        string // the partition's directory
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
	segs, err := segments(dir)
	if err != nil {
		return nil, err
	}
	open := map[int64]openTxn{}
	for _, seg := range segs {
		raw, err := os.ReadFile(seg.dat)
		if err != nil {
			return nil, err
		}
		walkBatches(raw, func(b *kmsg.RecordBatch) {
			switch {
			case b.Attributes&attrControl != 0:
				delete(open, b.ProducerID)
			case b.Attributes&attrTransactional != 0:
				if _, ok := open[b.ProducerID]; !ok {
					open[b.ProducerID] = openTxn{dir: dir, producerID: b.ProducerID, epoch: b.ProducerEpoch, first: b.FirstOffset}
				}
			}
		})
	}
	txns := make([]openTxn, 0, len(open))
	for _, t := range open {
		txns = append(txns, t)
	}
	return txns, nil
}

// repairCrash writes an ABORT marker for every open transaction that kfake
// reports as aborted, and fences the producers of committed, the
// transactions completeDecision committed. It returns how many markers it
// wrote.
func repairCrash(dataDir string, committed []openTxn, log *slog.Logger) (int, error) {
	open, err := findOpenTxns(dataDir)
	if err != nil || len(open)+len(committed) == 0 {
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
		kfake.BrokerConfigs(map[string]string{"transaction.max.timeout.ms": transactionMaxTimeout}),
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
	fence := map[int64]bool{}
	for _, t := range committed {
		fence[t.producerID] = true
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
	for pid := range fence {
		if err := fenceProducer(ctx, cl, pid, log); err != nil {
			return wrote, err
		}
	}
	return wrote, nil
}

// fenceProducer bumps the epoch of a transactional producer id, as a client
// initialising with its transactional id would; kfake stores the new epoch.
// A producer id without a transactional id is left alone.
func fenceProducer(ctx context.Context, cl *kgo.Client, pid int64, log *slog.Logger) error {
	list := kmsg.NewPtrListTransactionsRequest()
	list.ProducerIDFilters = []int64{pid}
	lresp, err := list.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(lresp.ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("fence producer %d: list transactions: %w", pid, err)
	}
	for _, ts := range lresp.TransactionStates {
		desc := kmsg.NewPtrDescribeTransactionsRequest()
		desc.TransactionalIDs = []string{ts.TransactionalID}
		dresp, err := desc.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("fence producer %d: describe transaction %q: %w", pid, ts.TransactionalID, err)
		}
		for _, d := range dresp.TransactionStates {
			if err := kerr.ErrorForCode(d.ErrorCode); err != nil {
				return fmt.Errorf("fence producer %d: describe transaction %q: %w", pid, ts.TransactionalID, err)
			}
			init := kmsg.NewPtrInitProducerIDRequest()
			init.TransactionalID = kmsg.StringPtr(d.TransactionalID)
			init.TransactionTimeoutMillis = d.TimeoutMillis
			init.ProducerID, init.ProducerEpoch = d.ProducerID, d.ProducerEpoch
			iresp, err := init.RequestWith(ctx, cl)
			if err == nil {
				err = kerr.ErrorForCode(iresp.ErrorCode)
			}
			if err != nil {
				return fmt.Errorf("fence producer %d of transactional id %q: %w", pid, d.TransactionalID, err)
			}
			log.Info("dev-broker: fenced the producer whose commit a crash interrupted",
				"transactional_id", d.TransactionalID, "producer_id", iresp.ProducerID, "epoch", iresp.ProducerEpoch)
		}
	}
	return nil
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
