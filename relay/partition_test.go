package relay

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The relay's partitioner puts every key where franz-go's Kafka-compatible
// StickyKeyPartitioner puts it, for keys of every length modulo 4 and
// several partition counts.
func TestKeyPartitionerMatchesKafka(t *testing.T) {
	ours := keyPartitioner().ForTopic("t")
	theirs := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 3, 12, 100} {
		for i := range 2000 {
			key := []byte(fmt.Sprintf(`{"id":%d}`, i*7919))
			key = key[:len(key)-i%4]
			r := &kgo.Record{Key: key}
			if got, want := ours.Partition(r, n), theirs.Partition(r, n); got != want {
				t.Fatalf("key %q over %d partitions: partition %d, Kafka's is %d", key, n, got, want)
			}
		}
	}
	// Known values of Kafka's murmur2 (Java Utils.murmur2, as its tests
	// and other clients list them).
	for key, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := int32(murmur2([]byte(key))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", key, got, want)
		}
	}
}
