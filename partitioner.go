package commitlog

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Partitioner chooses the partition of each record a Producer sends.
//
// Partition returns a partition number in [0, numPartitions), numPartitions
// being the topic's current partition count; the Producer fails a record
// with ErrUnknownPartition when the result is out of range. The Producer
// calls it from the goroutines that call Send and SendAsync, concurrently,
// so an implementation must be safe for concurrent use. It must not keep r,
// which the Producer reuses.
//
// Custom partitioners are the hook for placement the built-in ones do not
// cover (a partition per tenant, a hash other than Kafka's).
type Partitioner interface {
	Partition(r *Record, numPartitions int32) int32
}

// batchObserver is implemented by partitioners whose choice depends on the
// Producer's batches: the Producer tells them each time it cuts a batch of
// a partition (closes it to further records). Kafka's producer has the same
// hook (Partitioner.onNewBatch, franz-go's TopicPartitionerOnNewBatch).
type batchObserver interface {
	batchCut(topic string, partition, numPartitions int32)
}

// DefaultPartitioner returns Kafka's default partitioner:
//
//   - a record with a key (non-nil Key; an empty key is a key) goes to
//     partition toPositive(murmur2(Key)) % numPartitions, exactly as the Java
//     client's BuiltInPartitioner and franz-go's StickyKeyPartitioner place
//     it, so producers of every language agree on a key's partition;
//   - records without a key (nil Key) stick to one partition of their
//     topic until the Producer cuts that partition's batch, then move on to
//     the next partition (sticky round robin, after KIP-480): they fill
//     whole batches instead of spreading one record per partition. A record
//     that would overflow the batch cuts it and goes to the next partition,
//     as with Kafka's producer.
//
// It keeps the sticky choice per topic; one DefaultPartitioner may serve
// several producers. It is the Producer's default.
func DefaultPartitioner() Partitioner { return &defaultPartitioner{} }

// ManualPartitioner returns a partitioner that sends every record to the
// partition its Partition field names.
func ManualPartitioner() Partitioner { return manualPartitioner{} }

// RoundRobinPartitioner returns a partitioner that ignores keys and sends
// each topic's records to its partitions in turn, starting at partition 0
// (Kafka's RoundRobinPartitioner). It spreads records evenly, at the cost
// of small batches: consecutive records never share one.
func RoundRobinPartitioner() Partitioner { return &roundRobinPartitioner{} }

// defaultPartitioner is DefaultPartitioner: murmur2 for keys, sticky round
// robin otherwise.
type defaultPartitioner struct {
	sticky topicStates[stickyState]
}

// stickyState is the partition a topic's keyless records currently go to.
type stickyState struct{ cur atomic.Int32 }

func (d *defaultPartitioner) Partition(r *Record, n int32) int32 {
	if r.Key != nil {
		return KeyPartition(r.Key, n)
	}
	if n <= 0 {
		return 0
	}
	s := d.sticky.get(r.Topic, func(s *stickyState) { s.cur.Store(rand.Int32N(n)) })
	// Partition counts only grow, so the modulo only matters for a caller
	// that passes different counts for one topic.
	return s.cur.Load() % n
}

// batchCut moves the topic's keyless records on to the next partition when
// the batch cut is the one they were filling.
func (d *defaultPartitioner) batchCut(topic string, partition, n int32) {
	s := d.sticky.lookup(topic)
	if s == nil || n <= 0 {
		return
	}
	s.cur.CompareAndSwap(partition, (partition+1)%n)
}

type manualPartitioner struct{}

func (manualPartitioner) Partition(r *Record, _ int32) int32 { return r.Partition }

// roundRobinPartitioner is RoundRobinPartitioner: one counter per topic.
type roundRobinPartitioner struct {
	counters topicStates[atomic.Uint32]
}

func (rr *roundRobinPartitioner) Partition(r *Record, n int32) int32 {
	if n <= 0 {
		return 0
	}
	c := rr.counters.get(r.Topic, nil)
	return int32((c.Add(1) - 1) % uint32(n))
}

// topicStates maps topic names to per-topic state. Lookups read an
// immutable map through an atomic pointer and take no lock; a new topic
// copies the map, which happens once per topic.
type topicStates[T any] struct {
	mu sync.Mutex // serialises inserts
	m  atomic.Pointer[map[string]*T]
}

// lookup returns the state of topic, or nil when there is none yet.
func (s *topicStates[T]) lookup(topic string) *T {
	if m := s.m.Load(); m != nil {
		return (*m)[topic]
	}
	return nil
}

// get returns the state of topic, creating it, and running init on it,
// the first time.
func (s *topicStates[T]) get(topic string, init func(*T)) *T {
	if v := s.lookup(topic); v != nil {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	if old != nil {
		if v := (*old)[topic]; v != nil {
			return v
		}
	}
	m := make(map[string]*T, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	v := new(T)
	if init != nil {
		init(v)
	}
	m[topic] = v
	s.m.Store(&m)
	return v
}

func lenOf[T any](m *map[string]*T) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// KeyPartition returns the partition Kafka's default partitioner gives a
// record with key among numPartitions partitions:
// toPositive(murmur2(key)) % numPartitions, as the Java client's
// Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions computes it. It
// returns 0 when numPartitions is not positive.
func KeyPartition(key []byte, numPartitions int32) int32 {
	if numPartitions <= 0 {
		return 0
	}
	return int32(murmur2(key)&0x7fffffff) % numPartitions
}

// murmur2 is the 32-bit MurmurHash2 of data with Kafka's seed, as Kafka's
// Utils.murmur2 computes it: 4-byte little-endian blocks, then the 1 to 3
// tail bytes, then the final avalanche. Java's signed arithmetic wraps the
// same way uint32 does, and its >>> is Go's >> on uint32.
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(data))
	for ; len(data) >= 4; data = data[4:] {
		k := binary.LittleEndian.Uint32(data)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
