package relay

import "github.com/twmb/franz-go/pkg/kgo"

// keyPartitioner places a record by its key the way Kafka's Java producer
// does (murmur2, sign bit masked, modulo the partitions), so that a key
// lands where any Kafka client would put it. Unlike franz-go's
// StickyKeyPartitioner it keeps no state per topic: that one gives every
// topic a random source of about 5 KB for records without a key, which the
// relay never writes, and with one topic per table that grows with the
// tables. A record without a key goes where the empty key would.
func keyPartitioner() kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return partitionOf
	})
}

func partitionOf(r *kgo.Record, n int) int {
	return int(murmur2(r.Key)&0x7fffffff) % n
}

// murmur2 is MurmurHash2 with Kafka's seed, as
// org.apache.kafka.common.utils.Utils.murmur2 computes it.
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
