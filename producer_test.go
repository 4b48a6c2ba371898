package commitlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/batch"
)

// Callbacks run on the producer's goroutine, where require's FailNow must
// not be called: they check with assert, or hand values to the test's
// goroutine.

// prodNoLeaks fails the test if goroutines started during it are still
// running once its cleanups (registered later, so run earlier) are done.
func prodNoLeaks(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("goroutines leaked: %d at start, %d now\n%s", base, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(time.Millisecond) // polling, not synchronisation
		}
	})
}

// prodBroker opens a broker in a fresh directory, closed with the test.
func prodBroker(t *testing.T, opts Options) *Broker {
	t.Helper()
	b, err := Open(t.TempDir(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })
	return b
}

func prodTopic(t *testing.T, b *Broker, name string, cfg TopicConfig) *Topic {
	t.Helper()
	topic, err := b.CreateTopic(context.Background(), name, cfg)
	require.NoError(t, err)
	return topic
}

func prodProducer(t *testing.T, b *Broker, cfg ProducerConfig) *Producer {
	t.Helper()
	p, err := b.NewProducer(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return p
}

// prodRead returns every record of partition id of topic, cloned.
func prodRead(t *testing.T, topic *Topic, id int32) []Record {
	t.Helper()
	part, err := topic.Partition(id)
	require.NoError(t, err)
	var out []Record
	for off := part.StartOffset(); off < part.EndOffset(); {
		s, err := part.Read(off, 1<<20)
		require.NoError(t, err)
		for r, err := range Records(s) {
			require.NoError(t, err)
			if r.Offset < off {
				continue
			}
			r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
			if r.Headers != nil {
				hs := make([]Header, len(r.Headers))
				for i, h := range r.Headers {
					hs[i] = Header{Key: h.Key, Value: bytes.Clone(h.Value)}
				}
				r.Headers = hs
			}
			r.Topic, r.Partition = topic.Name(), id
			out = append(out, r)
		}
		off = s.NextOffset
		s.Release()
	}
	return out
}

// prodBatches returns the headers of every batch of partition id of topic.
func prodBatches(t *testing.T, topic *Topic, id int32) []batch.Header {
	t.Helper()
	part, err := topic.Partition(id)
	require.NoError(t, err)
	var out []batch.Header
	for off := part.StartOffset(); off < part.EndOffset(); {
		s, err := part.Read(off, 1<<20)
		require.NoError(t, err)
		for data := s.Bytes; len(data) > 0; {
			h, err := batch.Check(data, len(data))
			require.NoError(t, err)
			out = append(out, h)
			data = data[h.Size():]
		}
		off = s.NextOffset
		s.Release()
	}
	return out
}

// prodStall blocks p's sender goroutine in a callback until the returned
// function is called: nothing buffered after it is appended meanwhile.
func prodStall(t *testing.T, p *Producer, topic string) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	p.SendAsync(Record{Topic: topic, Value: []byte("stall")}, func(_ Record, err error) {
		close(entered)
		<-gate
	})
	<-entered
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return release
}

// prodEventually polls cond until it holds or a deadline passes.
func prodEventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func TestProducerSend(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{})
	topic := prodTopic(t, b, "orders", TopicConfig{Partitions: 3})
	p := prodProducer(t, b, ProducerConfig{})

	before := time.Now().Truncate(time.Millisecond)
	hdrs := []Header{{Key: "trace", Value: []byte("abc")}, {Key: "null"}, {Key: "trace", Value: []byte{}}}
	rec, err := p.Send(ctx, Record{Topic: "orders", Key: []byte("k1"), Value: []byte("v1"), Headers: hdrs})
	require.NoError(t, err)
	after := time.Now()
	require.Equal(t, KeyPartition([]byte("k1"), 3), rec.Partition)
	require.Equal(t, int64(0), rec.Offset)
	require.False(t, rec.Timestamp.Before(before) || rec.Timestamp.After(after), "zero Timestamp became the time of Send")
	require.Equal(t, rec.Timestamp, rec.Timestamp.Truncate(time.Millisecond), "to the millisecond, as stored")

	ts := time.UnixMilli(1_600_000_000_123)
	rec2, err := p.Send(ctx, Record{Topic: "orders", Key: []byte("k1"), Value: []byte("v2"), Timestamp: ts})
	require.NoError(t, err)
	require.Equal(t, int64(1), rec2.Offset)
	require.True(t, rec2.Timestamp.Equal(ts))

	got := prodRead(t, topic, rec.Partition)
	require.Len(t, got, 2)
	require.Equal(t, []byte("v1"), got[0].Value)
	require.Equal(t, hdrs, got[0].Headers, "headers kept, null and empty values distinct")
	require.True(t, got[0].Timestamp.Equal(rec.Timestamp))
	require.True(t, got[1].Timestamp.Equal(ts))
	require.Nil(t, got[1].Headers)

	// A nil value is a null value (a tombstone), kept as such.
	rec3, err := p.Send(ctx, Record{Topic: "orders", Key: []byte("k1")})
	require.NoError(t, err)
	got = prodRead(t, topic, rec3.Partition)
	require.Nil(t, got[2].Value)
}

func TestProducerSendAsyncFlushClose(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "events", TopicConfig{})
	p, err := b.NewProducer(ProducerConfig{Linger: time.Hour})
	require.NoError(t, err)

	const n = 1000
	var mu sync.Mutex
	var offsets []int64
	for i := range n {
		p.SendAsync(Record{Topic: "events", Value: fmt.Appendf(nil, "%d", i)}, func(r Record, err error) {
			assert.NoError(t, err)
			mu.Lock()
			offsets = append(offsets, r.Offset)
			mu.Unlock()
		})
	}
	require.NoError(t, p.Flush(ctx))
	mu.Lock()
	require.Len(t, offsets, n, "Flush returns after the callbacks ran")
	for i, off := range offsets {
		require.Equal(t, int64(i), off, "callbacks in order")
	}
	mu.Unlock()
	got := prodRead(t, topic, 0)
	require.Len(t, got, n)
	for i, r := range got {
		require.Equal(t, fmt.Sprint(i), string(r.Value))
	}
	require.NoError(t, p.Flush(ctx), "nothing to flush")

	// Close flushes what Linger holds back.
	var closed atomic.Int32
	for range 10 {
		p.SendAsync(Record{Topic: "events", Value: []byte("late")}, func(_ Record, err error) {
			assert.NoError(t, err)
			closed.Add(1)
		})
	}
	require.NoError(t, p.Close())
	require.Equal(t, int32(10), closed.Load())
	require.Len(t, prodRead(t, topic, 0), n+10)
	require.NoError(t, p.Close(), "idempotent")

	_, err = p.Send(ctx, Record{Topic: "events"})
	require.ErrorIs(t, err, ErrClosed)
	var cbErr error
	p.SendAsync(Record{Topic: "events"}, func(_ Record, err error) { cbErr = err })
	require.ErrorIs(t, cbErr, ErrClosed, "after Close the callback runs at once")
	require.ErrorIs(t, p.Flush(ctx), ErrClosed)
	p.SendAsync(Record{Topic: "events"}, nil) // a nil callback is fine
}

func TestProducerNilCallbackAndAcksNone(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{})
	topic := prodTopic(t, b, "fire", TopicConfig{})
	p := prodProducer(t, b, ProducerConfig{Acks: AcksNone})
	rec, err := p.Send(ctx, Record{Topic: "fire", Value: []byte("x")})
	require.NoError(t, err)
	require.Equal(t, int64(-1), rec.Offset, "acks=0 learns no offset")
	require.False(t, rec.Timestamp.IsZero())
	p.SendAsync(Record{Topic: "fire", Value: []byte("y")}, nil)
	done := make(chan Record, 1)
	p.SendAsync(Record{Topic: "fire", Value: []byte("z")}, func(r Record, err error) {
		assert.NoError(t, err)
		done <- r
	})
	require.Equal(t, int64(-1), (<-done).Offset)
	require.NoError(t, p.Flush(ctx))
	got := prodRead(t, topic, 0)
	require.Len(t, got, 3)
	require.Equal(t, "xyz", string(got[0].Value)+string(got[1].Value)+string(got[2].Value))
}

// TestProducerOrdering sends from many goroutines, mixing Send and
// SendAsync, to several partitions, and checks that each goroutine's
// records are in order within each partition and that callbacks see each
// partition's offsets in order.
func TestProducerOrdering(t *testing.T) {
	for _, c := range []Compression{CompressionNone, CompressionLZ4} {
		t.Run("codec="+c.String(), func(t *testing.T) { testProducerOrdering(t, c) })
	}
}

// testProducerOrdering is TestProducerOrdering with one codec: with
// compression, the goroutines that fill batches also compress them.
func testProducerOrdering(t *testing.T, c Compression) {
	prodNoLeaks(t)
	ctx := context.Background()
	const parts, senders, each = 3, 8, 600
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "ordered", TopicConfig{Partitions: parts})
	p := prodProducer(t, b, ProducerConfig{Partitioner: ManualPartitioner(), BatchBytes: 2048, Compression: c})

	var mu sync.Mutex
	lastOffset := map[int32]int64{}
	var cbErrs []error
	cb := func(r Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			cbErrs = append(cbErrs, err)
			return
		}
		if last, ok := lastOffset[r.Partition]; ok && r.Offset <= last {
			cbErrs = append(cbErrs, fmt.Errorf("partition %d: callback for offset %d after %d", r.Partition, r.Offset, last))
		}
		lastOffset[r.Partition] = r.Offset
	}
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				r := Record{Topic: "ordered", Partition: int32(i % parts), Key: fmt.Appendf(nil, "g%d", g), Value: fmt.Appendf(nil, "%d", i)}
				if (g+i)%7 == 0 {
					if _, err := p.Send(ctx, r); err != nil {
						cb(r, err)
					}
					continue
				}
				p.SendAsync(r, cb)
			}
		})
	}
	wg.Wait()
	require.NoError(t, p.Flush(ctx))
	mu.Lock()
	require.Empty(t, cbErrs)
	mu.Unlock()

	total := 0
	for id := range int32(parts) {
		next := map[string]int{}
		for _, r := range prodRead(t, topic, id) {
			var i int
			_, err := fmt.Sscan(string(r.Value), &i)
			require.NoError(t, err)
			require.Equal(t, int(id), i%parts, "manual partition")
			g := string(r.Key)
			require.GreaterOrEqual(t, i, next[g], "partition %d: %s's record %d after %d", id, g, i, next[g]-parts)
			next[g] = i + parts
			total++
		}
	}
	require.Equal(t, senders*each, total)
	for id := range int32(parts) {
		for _, h := range prodBatches(t, topic, id) {
			require.LessOrEqual(t, h.Size(), 2048, "BatchBytes caps batches")
			require.Equal(t, batch.Codec(c), h.Codec())
		}
	}
}

// TestProducerKeyedPartitions checks that keyed records land where Kafka's
// default partitioner puts them: hashes from Kafka's UtilsTest.testMurmur2.
func TestProducerKeyedPartitions(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	const n = 7
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "keyed", TopicConfig{Partitions: n})
	p := prodProducer(t, b, ProducerConfig{})
	for _, c := range kafkaMurmur2Vectors {
		want := int32(uint32(c.hash)&0x7fffffff) % n
		for range 3 {
			rec, err := p.Send(ctx, Record{Topic: "keyed", Key: []byte(c.key), Value: []byte(c.key)})
			require.NoError(t, err)
			require.Equal(t, want, rec.Partition, "key %q", c.key)
		}
		for range 3 {
			p.SendAsync(Record{Topic: "keyed", Key: []byte(c.key), Value: []byte(c.key)}, nil)
		}
	}
	require.NoError(t, p.Flush(ctx))
	for id := range int32(n) {
		for _, r := range prodRead(t, topic, id) {
			require.Equal(t, KeyPartition(r.Key, n), id)
		}
	}
}

// TestProducerSticky checks the default partitioner on keyless records:
// they fill one partition's batch, then move on to the next partition.
func TestProducerSticky(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	const n = 4
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "sticky", TopicConfig{Partitions: n})

	// Linger holds batches back, so only a full batch is cut.
	p := prodProducer(t, b, ProducerConfig{Linger: time.Hour, BatchBytes: 1024})
	const count = 200
	var mu sync.Mutex
	partOf := make([]int32, count)
	ts := time.UnixMilli(1_700_000_000_000) // fixed: every record has the same size
	for i := range count {
		r := Record{Topic: "sticky", Timestamp: ts, Value: fmt.Appendf(nil, "%03d-%s", i, bytes.Repeat([]byte("x"), 90))}
		p.SendAsync(r, func(r Record, err error) {
			assert.NoError(t, err)
			mu.Lock()
			partOf[i] = r.Partition
			mu.Unlock()
		})
	}
	require.NoError(t, p.Flush(ctx))
	mu.Lock()
	var runs []int // lengths of runs of records on one partition
	for i := range count {
		if i == 0 || partOf[i] != partOf[i-1] {
			if i > 0 {
				require.Equal(t, (partOf[i-1]+1)%n, partOf[i], "record %d: moved on to the next partition", i)
			}
			runs = append(runs, 0)
		}
		runs[len(runs)-1]++
	}
	mu.Unlock()
	require.Greater(t, len(runs), n, "the records went round every partition")
	for _, r := range runs[:len(runs)-1] {
		require.Equal(t, runs[0], r, "every full batch holds the same number of records")
	}
	total := 0
	for id := range int32(n) {
		hs := prodBatches(t, topic, id)
		for i, h := range hs {
			if i < len(hs)-1 || id != partOf[count-1] {
				require.Equal(t, int32(runs[0]), h.NumRecords, "partition %d batch %d", id, i)
			}
			total += int(h.NumRecords)
		}
	}
	require.Equal(t, count, total)

	// Send cuts its batch at once, so synchronous keyless Sends take turns.
	p2 := prodProducer(t, b, ProducerConfig{})
	prev := int32(-1)
	for range 3 * n {
		rec, err := p2.Send(ctx, Record{Topic: "sticky", Value: []byte("s")})
		require.NoError(t, err)
		if prev >= 0 {
			require.Equal(t, (prev+1)%n, rec.Partition)
		}
		prev = rec.Partition
	}
}

func TestProducerRoundRobin(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	const n = 3
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "rr", TopicConfig{Partitions: n})
	prodTopic(t, b, "rr2", TopicConfig{Partitions: 2})
	p := prodProducer(t, b, ProducerConfig{Partitioner: RoundRobinPartitioner()})
	for i := range 4 * n {
		rec, err := p.Send(ctx, Record{Topic: "rr", Key: []byte("same key")})
		require.NoError(t, err)
		require.Equal(t, int32(i%n), rec.Partition, "keys are ignored")
		if i%2 == 0 {
			rec, err := p.Send(ctx, Record{Topic: "rr2"})
			require.NoError(t, err)
			require.Equal(t, int32(i/2%2), rec.Partition, "a counter per topic")
		}
	}
	for i := range 3 * n {
		p.SendAsync(Record{Topic: "rr", Value: []byte{byte(i)}}, nil)
	}
	require.NoError(t, p.Flush(ctx))
	for id := range int32(n) {
		require.Len(t, prodRead(t, topic, id), 4+3)
	}
}

// constPartitioner always chooses the same partition.
type constPartitioner int32

func (c constPartitioner) Partition(*Record, int32) int32 { return int32(c) }

func TestProducerManualAndOutOfRange(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "manual", TopicConfig{Partitions: 2})
	p := prodProducer(t, b, ProducerConfig{Partitioner: ManualPartitioner()})
	for i := range 6 {
		rec, err := p.Send(ctx, Record{Topic: "manual", Partition: int32(i % 2), Key: []byte("k")})
		require.NoError(t, err)
		require.Equal(t, int32(i%2), rec.Partition)
	}
	for _, bad := range []int32{2, -1, 1 << 30} {
		_, err := p.Send(ctx, Record{Topic: "manual", Partition: bad})
		require.ErrorIs(t, err, ErrUnknownPartition)
		errc := make(chan error, 1)
		p.SendAsync(Record{Topic: "manual", Partition: bad}, func(_ Record, err error) { errc <- err })
		require.ErrorIs(t, <-errc, ErrUnknownPartition)
	}
	require.Len(t, prodRead(t, topic, 0), 3)
	require.Len(t, prodRead(t, topic, 1), 3)

	// A custom partitioner is checked the same way.
	pc := prodProducer(t, b, ProducerConfig{Partitioner: constPartitioner(5)})
	_, err := pc.Send(ctx, Record{Topic: "manual"})
	require.ErrorIs(t, err, ErrUnknownPartition)
	pc1 := prodProducer(t, b, ProducerConfig{Partitioner: constPartitioner(1)})
	rec, err := pc1.Send(ctx, Record{Topic: "manual", Key: []byte("ignored")})
	require.NoError(t, err)
	require.Equal(t, int32(1), rec.Partition)

	// Partitions added later are usable at once.
	_, err = p.Send(ctx, Record{Topic: "manual", Partition: 2})
	require.ErrorIs(t, err, ErrUnknownPartition)
	require.NoError(t, b.AddPartitions(ctx, "manual", 3))
	rec, err = p.Send(ctx, Record{Topic: "manual", Partition: 2})
	require.NoError(t, err)
	require.Equal(t, int64(0), rec.Offset)
}

func TestProducerBackPressureBlocks(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "full", TopicConfig{})
	p := prodProducer(t, b, ProducerConfig{MaxBufferedBytes: 4096})
	release := prodStall(t, p, "full")

	big := Record{Topic: "full", Value: make([]byte, 1000)}
	size := recordSize(0, 0, &big)
	fit := 4096 / size
	for range fit {
		p.SendAsync(big, nil)
	}
	require.Equal(t, int64(fit*size), p.mem.used.Load())

	// Send waits for room until its context ends; nothing is buffered.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := p.Send(cctx, big)
		errc <- err
	}()
	prodEventually(t, func() bool { return p.mem.nwait.Load() == 1 }, "Send did not wait for room")
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	require.Equal(t, int32(0), p.mem.nwait.Load())

	// SendAsync waits too, until the stalled sender frees room.
	sent := make(chan struct{})
	go func() {
		p.SendAsync(big, nil)
		close(sent)
	}()
	prodEventually(t, func() bool { return p.mem.nwait.Load() == 1 }, "SendAsync did not wait for room")
	select {
	case <-sent:
		t.Fatal("SendAsync returned with the buffer full")
	default:
	}
	release()
	<-sent
	require.NoError(t, p.Flush(ctx))
	require.Len(t, prodRead(t, topic, 0), 1+fit+1)
	require.Equal(t, int64(0), p.mem.used.Load(), "all room given back")

	// A record larger than the whole buffer can never fit.
	_, err := p.Send(ctx, Record{Topic: "full", Value: make([]byte, 5000)})
	require.ErrorIs(t, err, ErrRecordTooLarge)
}

func TestProducerBackPressureFails(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "full", TopicConfig{})
	p := prodProducer(t, b, ProducerConfig{MaxBufferedBytes: 4096, FailWhenFull: true})
	release := prodStall(t, p, "full")
	big := Record{Topic: "full", Value: make([]byte, 1000)}
	fit := 4096 / recordSize(0, 0, &big)
	for range fit {
		p.SendAsync(big, nil)
	}
	_, err := p.Send(ctx, big)
	require.ErrorIs(t, err, ErrBufferFull)
	errc := make(chan error, 1)
	p.SendAsync(big, func(_ Record, err error) { errc <- err })
	release()
	require.ErrorIs(t, <-errc, ErrBufferFull)
	require.NoError(t, p.Flush(ctx))
	require.Len(t, prodRead(t, topic, 0), 1+fit)
	_, err = p.Send(ctx, big)
	require.NoError(t, err, "room again")
}

func TestProducerRecordTooLarge(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "small", TopicConfig{MaxMessageBytes: 2048})
	p := prodProducer(t, b, ProducerConfig{})

	ok := Record{Topic: "small", Value: make([]byte, 100)}
	huge := Record{Topic: "small", Value: make([]byte, 2048)}
	_, err := p.Send(ctx, ok)
	require.NoError(t, err)
	_, err = p.Send(ctx, huge)
	require.ErrorIs(t, err, ErrRecordTooLarge)
	errc := make(chan error, 1)
	p.SendAsync(huge, func(_ Record, err error) { errc <- err })
	require.ErrorIs(t, <-errc, ErrRecordTooLarge)

	// The largest record that fits, alone, and a byte more.
	edge := Record{Topic: "small", Value: make([]byte, 2048-batch.HeaderSize-10)}
	for batch.HeaderSize+recordSize(0, 0, &edge) < 2048 {
		edge.Value = append(edge.Value, 0)
	}
	_, err = p.Send(ctx, edge)
	require.NoError(t, err)
	edge.Value = append(edge.Value, 0)
	_, err = p.Send(ctx, edge)
	require.ErrorIs(t, err, ErrRecordTooLarge)

	// Batches stay within the topic's limit though BatchBytes is larger.
	for range 100 {
		p.SendAsync(ok, nil)
	}
	require.NoError(t, p.Flush(ctx))
	require.Len(t, prodRead(t, topic, 0), 1+1+100, "nothing of the refused records written")
	for _, h := range prodBatches(t, topic, 0) {
		require.LessOrEqual(t, h.Size(), 2048)
	}
}

// TestProducerCompressedBatchLimit fills batches of incompressible records
// up to the topic's limit under every codec: expansion must not push a
// batch past it.
func TestProducerCompressedBatchLimit(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range allCompressions {
		name := "incompressible-" + c.String()
		topic := prodTopic(t, b, name, TopicConfig{MaxMessageBytes: 64 << 10})
		p := prodProducer(t, b, ProducerConfig{Compression: c, Linger: time.Hour, BatchBytes: 1 << 20})
		var failed atomic.Int32
		for range 300 {
			v := make([]byte, 1000)
			for i := range v {
				v[i] = byte(rng.Uint32())
			}
			p.SendAsync(Record{Topic: name, Value: v}, func(_ Record, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
		}
		require.NoError(t, p.Flush(ctx))
		require.Zero(t, failed.Load(), c.String())
		hs := prodBatches(t, topic, 0)
		require.Greater(t, len(hs), 3)
		for _, h := range hs {
			require.LessOrEqual(t, h.Size(), 64<<10, c.String())
		}
	}
}

func TestProducerUnknownTopic(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	p := prodProducer(t, b, ProducerConfig{})
	_, err := p.Send(ctx, Record{Topic: "nope"})
	require.ErrorIs(t, err, ErrUnknownTopic)
	errc := make(chan error, 1)
	p.SendAsync(Record{Topic: "nope"}, func(_ Record, err error) { errc <- err })
	require.ErrorIs(t, <-errc, ErrUnknownTopic)
	require.Empty(t, b.Topics(), "nothing created")

	ab := prodBroker(t, Options{SyncPolicy: SyncNone, AutoCreateTopics: true, DefaultPartitions: 3})
	ap := prodProducer(t, ab, ProducerConfig{})
	rec, err := ap.Send(ctx, Record{Topic: "fresh", Key: []byte("k")})
	require.NoError(t, err)
	require.Equal(t, KeyPartition([]byte("k"), 3), rec.Partition)
	topic, err := ab.Topic("fresh")
	require.NoError(t, err)
	require.Equal(t, int32(3), topic.NumPartitions())
	_, err = ap.Send(ctx, Record{Topic: "bad name"})
	require.ErrorIs(t, err, ErrInvalidTopic)
}

// TestProducerTopicRecreated deletes a topic the producer writes to: the
// producer reports it unknown, then writes to the new topic of that name.
func TestProducerTopicRecreated(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	prodTopic(t, b, "again", TopicConfig{})
	p := prodProducer(t, b, ProducerConfig{})
	_, err := p.Send(ctx, Record{Topic: "again", Value: []byte("1")})
	require.NoError(t, err)
	require.NoError(t, b.DeleteTopic(ctx, "again"))
	_, err = p.Send(ctx, Record{Topic: "again", Value: []byte("2")})
	require.ErrorIs(t, err, ErrUnknownTopic)
	_, err = p.Send(ctx, Record{Topic: "again", Value: []byte("3")})
	require.ErrorIs(t, err, ErrUnknownTopic)
	topic := prodTopic(t, b, "again", TopicConfig{})
	rec, err := p.Send(ctx, Record{Topic: "again", Value: []byte("4")})
	require.NoError(t, err)
	require.Equal(t, int64(0), rec.Offset)
	require.Len(t, prodRead(t, topic, 0), 1)
}

func TestProducerLogAppendTime(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "stamped", TopicConfig{TimestampType: LogAppendTime})
	p := prodProducer(t, b, ProducerConfig{})
	old := time.UnixMilli(1_000_000_000_000)
	before := time.Now().Truncate(time.Millisecond)
	rec, err := p.Send(ctx, Record{Topic: "stamped", Value: []byte("v"), Timestamp: old})
	require.NoError(t, err)
	after := time.Now()
	require.False(t, rec.Timestamp.Before(before) || rec.Timestamp.After(after), "the broker's append time, not the record's")
	done := make(chan Record, 1)
	p.SendAsync(Record{Topic: "stamped", Value: []byte("w"), Timestamp: old}, func(r Record, err error) {
		assert.NoError(t, err)
		done <- r
	})
	rec2 := <-done
	require.False(t, rec2.Timestamp.Before(rec.Timestamp))
	got := prodRead(t, topic, 0)
	require.Len(t, got, 2)
	require.True(t, got[0].Timestamp.Equal(rec.Timestamp))
	require.True(t, got[1].Timestamp.Equal(rec2.Timestamp))
}

func TestProducerCompressionRoundTrip(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	for _, c := range allCompressions {
		name := "codec-" + c.String()
		topic := prodTopic(t, b, name, TopicConfig{})
		p := prodProducer(t, b, ProducerConfig{Compression: c, Linger: time.Hour})
		var want []Record
		for i := range 300 {
			r := Record{
				Topic:     name,
				Key:       fmt.Appendf(nil, "key-%d", i%10),
				Value:     fmt.Appendf(nil, "value %d of a compressible stream %s", i, bytes.Repeat([]byte("abc"), i%20)),
				Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i)),
				Headers:   []Header{{Key: "i", Value: fmt.Appendf(nil, "%d", i)}},
			}
			if i%50 == 0 {
				r.Headers = nil
			}
			want = append(want, r)
			p.SendAsync(r, func(_ Record, err error) { assert.NoError(t, err) })
		}
		require.NoError(t, p.Flush(ctx))
		got := prodRead(t, topic, 0)
		require.Len(t, got, len(want), c.String())
		for i := range want {
			require.Equal(t, int64(i), got[i].Offset)
			require.Equal(t, want[i].Key, got[i].Key)
			require.Equal(t, want[i].Value, got[i].Value)
			require.Equal(t, want[i].Headers, got[i].Headers)
			require.True(t, want[i].Timestamp.Equal(got[i].Timestamp))
		}
		for _, h := range prodBatches(t, topic, 0) {
			require.Equal(t, batch.Codec(c), h.Codec())
		}
	}
}

func TestProducerBrokerShutdownFlushes(t *testing.T) {
	prodNoLeaks(t)
	dir := t.TempDir()
	b, err := Open(dir, Options{})
	require.NoError(t, err)
	prodTopic(t, b, "kept", TopicConfig{Partitions: 2})
	p, err := b.NewProducer(ProducerConfig{Linger: time.Hour})
	require.NoError(t, err)
	var ok atomic.Int32
	for i := range 50 {
		p.SendAsync(Record{Topic: "kept", Key: []byte{byte(i)}}, func(_ Record, err error) {
			if err == nil {
				ok.Add(1)
			}
		})
	}
	require.NoError(t, b.Shutdown(context.Background()))
	require.Equal(t, int32(50), ok.Load())
	_, err = p.Send(context.Background(), Record{Topic: "kept"})
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, p.Close(), "closing after the broker is fine")

	b, err = Open(dir, Options{})
	require.NoError(t, err)
	defer func() { assert.NoError(t, b.Close()) }()
	topic, err := b.Topic("kept")
	require.NoError(t, err)
	require.Equal(t, 50, len(prodRead(t, topic, 0))+len(prodRead(t, topic, 1)))
}

func TestProducerBrokerCloseFails(t *testing.T) {
	prodNoLeaks(t)
	dir := t.TempDir()
	b, err := Open(dir, Options{})
	require.NoError(t, err)
	prodTopic(t, b, "lost", TopicConfig{})
	p, err := b.NewProducer(ProducerConfig{Linger: time.Hour})
	require.NoError(t, err)
	var closed atomic.Int32
	for range 50 {
		p.SendAsync(Record{Topic: "lost"}, func(r Record, err error) {
			if errors.Is(err, ErrClosed) && r.Offset == -1 {
				closed.Add(1)
			}
		})
	}
	require.NoError(t, b.Close())
	require.Equal(t, int32(50), closed.Load())
	_, err = p.Send(context.Background(), Record{Topic: "lost"})
	require.ErrorIs(t, err, ErrClosed)
	_, err = b.NewProducer(ProducerConfig{})
	require.ErrorIs(t, err, ErrClosed)

	b, err = Open(dir, Options{})
	require.NoError(t, err)
	defer func() { assert.NoError(t, b.Close()) }()
	topic, err := b.Topic("lost")
	require.NoError(t, err)
	require.Empty(t, prodRead(t, topic, 0), "nothing half-written")
}

// TestProducerBrokerCloseRacesSends closes the broker under compressed
// traffic: every record is acknowledged or fails with ErrClosed, and the
// log holds exactly the acknowledged ones.
func TestProducerBrokerCloseRacesSends(t *testing.T) {
	prodNoLeaks(t)
	dir := t.TempDir()
	b, err := Open(dir, Options{SyncPolicy: SyncNone})
	require.NoError(t, err)
	prodTopic(t, b, "abort", TopicConfig{})
	p, err := b.NewProducer(ProducerConfig{Compression: CompressionZstd, BatchBytes: 1024})
	require.NoError(t, err)
	var acked, refused atomic.Int64
	count := func(_ Record, err error) {
		switch {
		case err == nil:
			acked.Add(1)
		case errors.Is(err, ErrClosed):
			refused.Add(1)
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				p.SendAsync(Record{Topic: "abort", Value: fmt.Appendf(nil, "%d-%d", g, i)}, count)
			}
		})
	}
	prodEventually(t, func() bool { return acked.Load() > 100 }, "nothing acknowledged")
	require.NoError(t, b.Close())
	wg.Wait()
	require.NoError(t, p.Close())
	require.Equal(t, int64(4*3000), acked.Load()+refused.Load())

	b, err = Open(dir, Options{})
	require.NoError(t, err)
	defer func() { assert.NoError(t, b.Close()) }()
	topic, err := b.Topic("abort")
	require.NoError(t, err)
	require.Len(t, prodRead(t, topic, 0), int(acked.Load()))
}

// TestProducerCloseRacesSends closes a producer while goroutines send: every
// record is either written and acknowledged or refused with ErrClosed.
func TestProducerCloseRacesSends(t *testing.T) {
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "race", TopicConfig{Partitions: 2})
	p, err := b.NewProducer(ProducerConfig{})
	require.NoError(t, err)
	var acked, refused atomic.Int64
	count := func(_ Record, err error) {
		switch {
		case err == nil:
			acked.Add(1)
		case errors.Is(err, ErrClosed):
			refused.Add(1)
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			<-start
			for i := range 2000 {
				r := Record{Topic: "race", Key: []byte{byte(g), byte(i)}}
				if i%10 == 0 {
					_, err := p.Send(ctx, r)
					count(r, err)
					continue
				}
				p.SendAsync(r, count)
			}
		})
	}
	close(start)
	require.NoError(t, p.Close())
	wg.Wait()
	require.Equal(t, int64(4*2000), acked.Load()+refused.Load())
	require.Equal(t, int(acked.Load()), len(prodRead(t, topic, 0))+len(prodRead(t, topic, 1)))
}

func TestProducerLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, err := Open(t.TempDir(), Options{SyncPolicy: SyncNone})
		require.NoError(t, err)
		defer func() { assert.NoError(t, b.Close()) }()
		topic, err := b.CreateTopic(ctx, "slow", TopicConfig{})
		require.NoError(t, err)
		part, _ := topic.Partition(0)
		p, err := b.NewProducer(ProducerConfig{Linger: 50 * time.Millisecond, BatchBytes: 1024})
		require.NoError(t, err)
		defer func() { assert.NoError(t, p.Close()) }()

		var done atomic.Int32
		cb := func(_ Record, err error) {
			assert.NoError(t, err)
			done.Add(1)
		}
		p.SendAsync(Record{Topic: "slow", Value: []byte("a")}, cb)
		time.Sleep(30 * time.Millisecond)
		p.SendAsync(Record{Topic: "slow", Value: []byte("b")}, cb)
		synctest.Wait()
		require.Equal(t, int64(0), part.EndOffset(), "lingering")
		time.Sleep(19 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, int64(0), part.EndOffset(), "1ms to go")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		require.Equal(t, int64(2), part.EndOffset(), "Linger after the batch's first record")
		require.Equal(t, int32(2), done.Load())

		// A full batch goes at once; the rest lingers.
		for range 20 {
			p.SendAsync(Record{Topic: "slow", Value: make([]byte, 100)}, cb)
		}
		synctest.Wait()
		full := part.EndOffset() - 2
		require.Greater(t, full, int64(0))
		require.Less(t, full, int64(20))
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, int64(22), part.EndOffset())

		// Send does not wait for Linger, nor does Flush.
		start := time.Now()
		rec, err := p.Send(ctx, Record{Topic: "slow"})
		require.NoError(t, err)
		require.Equal(t, int64(22), rec.Offset)
		p.SendAsync(Record{Topic: "slow"}, cb)
		require.NoError(t, p.Flush(ctx))
		require.Equal(t, time.Duration(0), time.Since(start))
		require.Equal(t, int64(24), part.EndOffset())
	})
}

func TestProducerConfigValidation(t *testing.T) {
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	for _, cfg := range []ProducerConfig{
		{Acks: 7},
		{Linger: -1},
		{BatchBytes: -1},
		{MaxBufferedBytes: -1},
		{Compression: 5},
	} {
		_, err := b.NewProducer(cfg)
		require.ErrorIs(t, err, ErrInvalidConfig, "%+v", cfg)
	}
	require.Equal(t, "all", AcksAll.String())
	require.Equal(t, "1", AcksLeader.String())
	require.Equal(t, "0", AcksNone.String())
}

// TestProducerSizes checks that recordSize predicts what the Builder adds,
// which the batch limits rely on.
func TestProducerSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var pb pendingBatch
	for range 200 {
		pb.b.Reset(batch.CodecNone)
		base := rng.Int64N(1 << 42)
		for i := range rng.IntN(300) + 1 {
			r := Record{Timestamp: time.UnixMilli(base + rng.Int64N(1<<20) - 1<<19)}
			if rng.IntN(4) > 0 {
				r.Key = make([]byte, rng.IntN(200))
			}
			if rng.IntN(8) > 0 {
				r.Value = make([]byte, rng.IntN(20000))
			}
			for range rng.IntN(3) {
				r.Headers = append(r.Headers, Header{Key: "h", Value: make([]byte, rng.IntN(100))})
			}
			ts := r.Timestamp.UnixMilli()
			if i == 0 {
				base = ts
			}
			before := pb.b.Size()
			pb.add(ts, &r)
			require.Equal(t, recordSize(ts-base, int64(i), &r), pb.b.Size()-before)
		}
	}
}

func TestProducerAllocations(t *testing.T) {
	if builtWithRace() {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	prodTopic(t, b, "allocs", TopicConfig{})
	p := prodProducer(t, b, ProducerConfig{})
	r := Record{Topic: "allocs", Key: make([]byte, 16), Value: make([]byte, 100), Headers: []Header{{Key: "h", Value: []byte("v")}}}
	cb := func(Record, error) {}
	const per = 1000
	run := func() {
		for range per {
			p.SendAsync(r, cb)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	run() // warm the pools
	allocs := testing.AllocsPerRun(20, run)
	require.Less(t, allocs/per, 0.05, "SendAsync allocations per record: %v per %d", allocs, per)

	allocs = testing.AllocsPerRun(200, func() {
		if _, err := p.Send(ctx, r); err != nil {
			t.Fatal(err)
		}
	})
	require.Less(t, allocs, 0.5, "allocations per Send")
}

func TestProducerBufferReuse(t *testing.T) {
	// The caller may reuse a record's buffers once SendAsync returns.
	prodNoLeaks(t)
	ctx := context.Background()
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "reuse", TopicConfig{})
	p := prodProducer(t, b, ProducerConfig{Linger: time.Hour})
	buf := []byte("aaaa")
	hv := []byte("h1")
	p.SendAsync(Record{Topic: "reuse", Value: buf, Headers: []Header{{Key: "h", Value: hv}}}, nil)
	copy(buf, "bbbb")
	copy(hv, "h2")
	require.NoError(t, p.Flush(ctx))
	got := prodRead(t, topic, 0)
	require.Equal(t, "aaaa", string(got[0].Value))
	require.Equal(t, "h1", string(got[0].Headers[0].Value))
	require.True(t, slices.Equal([]byte("bbbb"), buf))
}

func TestProducerSendCanceledContext(t *testing.T) {
	prodNoLeaks(t)
	b := prodBroker(t, Options{SyncPolicy: SyncNone})
	topic := prodTopic(t, b, "ctx", TopicConfig{})
	p := prodProducer(t, b, ProducerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec, err := p.Send(ctx, Record{Topic: "ctx", Value: []byte("v")})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, int64(-1), rec.Offset)
	require.NoError(t, p.Flush(context.Background()))
	require.Empty(t, prodRead(t, topic, 0), "a Send whose context is done buffers nothing")
}
