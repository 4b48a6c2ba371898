package commitlog

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// kafkaMurmur2Vectors are the expected hashes of Kafka's
// UtilsTest.testMurmur2, as signed 32-bit values; franz-go tests its
// murmur2 against the same ones.
var kafkaMurmur2Vectors = []struct {
	key  string
	hash int32
}{
	{"21", -973932308},
	{"foobar", -790332482},
	{"a-little-bit-long-string", -985981536},
	{"a-little-bit-longer-string", -1486304829},
	{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
	{"abc", 479470107},
}

func TestMurmur2KafkaVectors(t *testing.T) {
	for _, c := range kafkaMurmur2Vectors {
		require.Equal(t, c.hash, int32(murmur2([]byte(c.key))), "murmur2(%q)", c.key)
	}
}

// TestKeyPartitionJavaVectors checks placements among 1000 partitions that
// kafka-python's test suite took from the Java client's partitioner.
func TestKeyPartitionJavaVectors(t *testing.T) {
	for _, c := range []struct {
		key  []byte
		want int32
	}{
		{[]byte(""), 681},
		{[]byte("a"), 524},
		{[]byte("ab"), 434},
		{[]byte("abc"), 107},
		{[]byte("123456789"), 566},
		{[]byte("\x00 "), 742},
	} {
		require.Equal(t, c.want, KeyPartition(c.key, 1000), "key %q", c.key)
	}
	for _, c := range kafkaMurmur2Vectors {
		for _, n := range []int32{1, 2, 3, 7, 12, 100} {
			want := (c.hash & 0x7fffffff) % n // Utils.toPositive(hash) % n
			require.Equal(t, want, KeyPartition([]byte(c.key), n))
		}
	}
	require.Equal(t, int32(0), KeyPartition([]byte("x"), 0))
}

func TestDefaultPartitionerKeys(t *testing.T) {
	p := DefaultPartitioner()
	for _, c := range kafkaMurmur2Vectors {
		r := &Record{Topic: "t", Key: []byte(c.key), Partition: 99}
		require.Equal(t, (c.hash&0x7fffffff)%5, p.Partition(r, 5))
	}
	// An empty key is a key: hashed, not sticky.
	r := &Record{Topic: "t", Key: []byte{}}
	for range 10 {
		require.Equal(t, int32(681), p.Partition(r, 1000))
		p.(batchObserver).batchCut("t", 681, 1000)
	}
}

func TestDefaultPartitionerSticky(t *testing.T) {
	p := DefaultPartitioner()
	obs := p.(batchObserver)
	r := &Record{Topic: "t"}
	first := p.Partition(r, 4)
	require.Less(t, first, int32(4))
	for range 10 {
		require.Equal(t, first, p.Partition(r, 4), "sticks until a batch is cut")
	}
	obs.batchCut("t", (first+1)%4, 4)
	require.Equal(t, first, p.Partition(r, 4), "another partition's batch does not move it")
	obs.batchCut("other", first, 4)
	require.Equal(t, first, p.Partition(r, 4), "nor another topic's")
	for i := range int32(8) {
		cur := p.Partition(r, 4)
		require.Equal(t, (first+i)%4, cur)
		obs.batchCut("t", cur, 4)
	}
	// Topics are independent.
	other := &Record{Topic: "u"}
	o := p.Partition(other, 3)
	obs.batchCut("u", o, 3)
	require.Equal(t, (o+1)%3, p.Partition(other, 3))
	require.Equal(t, first, p.Partition(r, 4))
	// More partitions later: the choice stays in range.
	require.Less(t, p.Partition(&Record{Topic: "t"}, 2), int32(2))
}

func TestRoundRobinPartitioner(t *testing.T) {
	p := RoundRobinPartitioner()
	for i := range 10 {
		require.Equal(t, int32(i%3), p.Partition(&Record{Topic: "a", Key: []byte("k")}, 3))
	}
	require.Equal(t, int32(0), p.Partition(&Record{Topic: "b"}, 3), "a counter per topic")

	// Concurrent callers share the turns evenly.
	counts := make([]int, 4)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			local := make([]int, 4)
			for range 1000 {
				local[p.Partition(&Record{Topic: "c"}, 4)]++
			}
			mu.Lock()
			for i, n := range local {
				counts[i] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Equal(t, []int{2000, 2000, 2000, 2000}, counts)
}

func TestManualPartitioner(t *testing.T) {
	p := ManualPartitioner()
	for _, id := range []int32{0, 3, -1, 42} {
		require.Equal(t, id, p.Partition(&Record{Partition: id, Key: []byte("k")}, 4))
	}
}

func BenchmarkKeyPartition(b *testing.B) {
	for _, size := range []int{16, 128} {
		key := make([]byte, size)
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				KeyPartition(key, 12)
			}
		})
	}
}
