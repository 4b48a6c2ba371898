package commitlog

// Benchmarks of the consumer. Records are 16-byte keys and 100-byte values,
// on one partition of a broker with SyncNone. The throughput benchmarks
// read records written before timing (and read once, so the page cache is
// warm), one op per record; the latency benchmark times records from
// Partition.Append to a consumer already waiting in Poll. Nothing here runs
// without -bench, and no timing is asserted.

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	consumerBenchKeyBytes   = 16
	consumerBenchValueBytes = 100
	// consumerBenchRecords is how many records each throughput fixture
	// holds: about 64 MiB of batches.
	consumerBenchRecords = 1 << 19
)

var consumerBenchSink atomic.Int64

// consumerBenchRecord returns record seq of a fixture: a 16-byte key and a
// 100-byte value, both varying with seq.
func consumerBenchRecord(seq int) Record {
	key := make([]byte, consumerBenchKeyBytes)
	value := make([]byte, consumerBenchValueBytes)
	binary.BigEndian.PutUint64(key, uint64(seq))
	for i := range value {
		value[i] = byte(seq + i)
	}
	return Record{Key: key, Value: value}
}

// consumerBenchFixture opens a broker in dir holding topic "bench" with
// one partition of consumerBenchRecords records in batches of per records,
// compressed with codec, and reads them once from start to end, so that
// the page cache and the mapping are warm.
func consumerBenchFixture(dir string, codec Compression, per int) (*Broker, error) {
	br, err := Open(dir, Options{SyncPolicy: SyncNone})
	if err != nil {
		return nil, err
	}
	tp, err := br.CreateTopic(context.Background(), "bench", TopicConfig{})
	if err != nil {
		br.Close()
		return nil, err
	}
	p, _ := tp.Partition(0)
	recs := make([]Record, per)
	var buf []byte
	for seq := 0; seq < consumerBenchRecords; seq += per {
		for i := range recs {
			recs[i] = consumerBenchRecord(seq + i)
		}
		if buf, err = AppendBatch(buf[:0], codec, recs...); err == nil {
			_, err = p.AppendBatch(buf)
		}
		if err != nil {
			br.Close()
			return nil, err
		}
	}
	// Touch one byte per cache line.
	sum := 0
	for off := int64(0); off < p.EndOffset(); {
		s, err := p.Read(off, 64<<20)
		if err != nil {
			br.Close()
			return nil, err
		}
		for i := 0; i < len(s.Bytes); i += 64 {
			sum += int(s.Bytes[i])
		}
		off = s.NextOffset
		s.Release()
	}
	consumerBenchSink.Add(int64(sum))
	return br, nil
}

// BenchmarkConsumer measures Poll and Records over pre-written records:
// batches of 128 records (about 16 KiB, what a producer with default
// settings builds) uncompressed, lz4 and zstd, and batches of one record
// (the worst case: a batch header and CRC per record). Each op consumes
// one record and touches its key and value; at the end of the partition
// the consumer seeks back to the start. A fixture is built the first time
// a sub-benchmark needs it and shared by -count repetitions.
func BenchmarkConsumer(b *testing.B) {
	for _, fx := range []struct {
		codec Compression
		per   int
	}{{CompressionNone, 128}, {CompressionNone, 1}, {CompressionLZ4, 128}, {CompressionZstd, 128}} {
		var (
			once sync.Once
			br   *Broker
			err  error
		)
		dir := b.TempDir()
		b.Cleanup(func() {
			if br != nil {
				br.Close()
			}
		})
		fixture := func(b *testing.B) *Broker {
			once.Do(func() { br, err = consumerBenchFixture(dir, fx.codec, fx.per) })
			if err != nil {
				b.Fatal(err)
			}
			return br
		}
		name := fmt.Sprintf("%v/batch=%d", fx.codec, fx.per)
		b.Run("Poll/"+name, func(b *testing.B) { consumerBenchPoll(b, fixture(b)) })
		b.Run("Records/"+name, func(b *testing.B) { consumerBenchIter(b, fixture(b)) })
	}
}

func consumerBenchConsumer(b *testing.B, br *Broker) *Consumer {
	b.Helper()
	c, err := br.NewConsumer(ConsumerConfig{Topics: []string{"bench"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func consumerBenchPoll(b *testing.B, br *Broker) {
	c := consumerBenchConsumer(b, br)
	ctx := context.Background()
	b.SetBytes(consumerBenchKeyBytes + consumerBenchValueBytes)
	b.ReportAllocs()
	b.ResetTimer()
	sum, left := 0, consumerBenchRecords
	for n := 0; n < b.N; {
		recs, err := c.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for i := range recs {
			sum += int(recs[i].Key[0]) + int(recs[i].Value[0])
		}
		n += len(recs)
		if left -= len(recs); left == 0 {
			if err := c.SeekToStart("bench", 0); err != nil {
				b.Fatal(err)
			}
			left = consumerBenchRecords
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	consumerBenchSink.Add(int64(sum))
}

func consumerBenchIter(b *testing.B, br *Broker) {
	c := consumerBenchConsumer(b, br)
	ctx := context.Background()
	b.SetBytes(consumerBenchKeyBytes + consumerBenchValueBytes)
	b.ReportAllocs()
	b.ResetTimer()
	sum, left := 0, consumerBenchRecords
	for n := 0; n < b.N; {
		for r, err := range c.Records(ctx) {
			if err != nil {
				b.Fatal(err)
			}
			sum += int(r.Key[0]) + int(r.Value[0])
			n++
			if left--; left == 0 || n == b.N {
				break
			}
		}
		if left == 0 {
			if err := c.SeekToStart("bench", 0); err != nil {
				b.Fatal(err)
			}
			left = consumerBenchRecords
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	consumerBenchSink.Add(int64(sum))
}

// BenchmarkConsumerLatency measures the time from just before
// Partition.Append to the consumer's Poll returning the record, with a
// consumer already waiting in Poll and a producer appending one record per
// Append at about 50,000 records/s. The pace comes from a ticker every
// 100 µs: each tick appends the records due by then (five when the ticker
// keeps time, more after a late tick), each stamped just before its own
// Append; the value carries the stamp. It reports percentiles in ns
// (p50-ns, p99-ns, p999-ns, max-ns) and the rate achieved; ns/op is
// suppressed, since it is only the pacing.
func BenchmarkConsumerLatency(b *testing.B) {
	const (
		rate = 50_000
		tick = 100 * time.Microsecond
	)
	br, err := Open(b.TempDir(), Options{SyncPolicy: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	tp, err := br.CreateTopic(context.Background(), "bench", TopicConfig{})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := tp.Partition(0)
	b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
		c := consumerBenchConsumer(b, br)
		if err := c.SeekToEnd("bench", 0); err != nil {
			b.Fatal(err)
		}
		base := time.Now()
		lats := make([]time.Duration, 0, b.N)
		done := make(chan error, 1)
		go func() {
			for len(lats) < b.N {
				recs, err := c.Poll(context.Background())
				if err != nil {
					done <- err
					return
				}
				now := time.Since(base)
				for i := range recs {
					lats = append(lats, now-time.Duration(binary.BigEndian.Uint64(recs[i].Value)))
				}
			}
			done <- nil
		}()
		rec := consumerBenchRecord(0)
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		b.SetBytes(consumerBenchKeyBytes + consumerBenchValueBytes)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for sent := 0; sent < b.N; {
			<-ticker.C
			due := min(b.N, int(time.Since(start)*rate/time.Second)+1)
			for ; sent < due; sent++ {
				binary.BigEndian.PutUint64(rec.Value, uint64(time.Since(base)))
				if _, err := p.Append(rec); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		elapsed := b.Elapsed()
		slices.Sort(lats)
		at := func(q float64) float64 { return float64(lats[min(len(lats)-1, int(q*float64(len(lats))))]) }
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(at(0.50), "p50-ns")
		b.ReportMetric(at(0.99), "p99-ns")
		b.ReportMetric(at(0.999), "p999-ns")
		b.ReportMetric(float64(lats[len(lats)-1]), "max-ns")
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	})
}

// consumerBenchGroup opens a broker in dir with SyncNone, no initial
// rebalance delay and a topic "events" of the given partitions, starts a
// group of n consumers of it made from cfg, and waits until the group is
// stable with every partition assigned. OnAssigned signals assigned.
func consumerBenchGroup(b *testing.B, n int, partitions int32, cfg ConsumerConfig, assigned chan struct{}) (*Broker, []*Consumer) {
	b.Helper()
	br, err := Open(b.TempDir(), Options{SyncPolicy: SyncNone, GroupInitialRebalanceDelay: -1, OffsetsTopicPartitions: 1})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := br.CreateTopic(context.Background(), "events", TopicConfig{Partitions: partitions}); err != nil {
		b.Fatal(err)
	}
	cfg.Group, cfg.Topics = "bench", []string{"events"}
	cfg.OnAssigned = func(context.Context, map[string][]int32) { assigned <- struct{}{} }
	consumers := make([]*Consumer, n)
	for i := range consumers {
		if consumers[i], err = br.NewConsumer(cfg); err != nil {
			b.Fatal(err)
		}
	}
	timeout := time.After(time.Minute)
	for {
		d, err := br.Groups().DescribeGroup("bench")
		total := 0
		for _, c := range consumers {
			total += len(c.Assignment()["events"])
		}
		if err == nil && d.State == GroupStable && len(d.Members) == n && total == int(partitions) {
			return br, consumers
		}
		select {
		case <-assigned:
		case <-timeout:
			b.Fatalf("group not stable after a minute")
		}
	}
}

// BenchmarkConsumerGroupRebalance measures one rebalance of a group of 8
// consumers over 64 partitions, end to end in-process: every member gives
// up its partitions (eager, the default assignors) or declares them
// (cooperative-sticky, where nothing moves), joins, the leader assigns,
// all sync, fetch their committed offsets and call OnAssigned. Rebalance
// starts it on every member at once, and the broker has no initial
// rebalance delay, so no timer is waited for: the time is the protocol's.
func BenchmarkConsumerGroupRebalance(b *testing.B) {
	const members, partitions = 8, 64
	for _, tc := range []struct {
		name      string
		assignors []Assignor
	}{
		{"eager", nil},
		{"cooperative", []Assignor{CooperativeStickyAssignor{}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			assigned := make(chan struct{}, members)
			// A short heartbeat only speeds up the forming of the group.
			cfg := ConsumerConfig{Assignors: tc.assignors, HeartbeatInterval: 20 * time.Millisecond}
			br, consumers := consumerBenchGroup(b, members, partitions, cfg, assigned)
			defer br.Close()
			for len(assigned) > 0 {
				<-assigned
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, c := range consumers {
					if err := c.Rebalance(); err != nil {
						b.Fatal(err)
					}
				}
				for range members {
					<-assigned
				}
			}
		})
	}
}

// BenchmarkConsumerGroupCommit measures a commit of 100 partitions by a
// group member, with SyncNone: one OffsetCommit of 100 offsets, appended
// to __consumer_offsets as one batch.
func BenchmarkConsumerGroupCommit(b *testing.B) {
	const partitions = 100
	ctx := context.Background()
	assigned := make(chan struct{}, 1)
	br, consumers := consumerBenchGroup(b, 1, partitions, ConsumerConfig{}, assigned)
	defer br.Close()
	c := consumers[0]
	b.Run("Commit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Commit(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CommitOffsets", func(b *testing.B) {
		offsets := map[string]map[int32]OffsetAndMetadata{"events": {}}
		for p := range int32(partitions) {
			offsets["events"][p] = OffsetAndMetadata{Offset: int64(p), LeaderEpoch: -1, Metadata: "checkpoint"}
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := c.CommitOffsets(ctx, offsets); err != nil {
				b.Fatal(err)
			}
		}
	})
}
