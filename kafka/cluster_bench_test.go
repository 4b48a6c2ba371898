package kafka_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/commitlogtest"
)

// Replication over the wire: franz-go produces 100-byte records over
// loopback to one broker with acks=1, and to the leader of a partition
// with three replicas (three brokers in this process, replicating through
// their Kafka listeners) with acks=all and min.insync.replicas 2. Brokers
// use SyncNone in both: with replication, the copies give durability.
//
//	go test -run '^$' -bench 'Cluster' -benchtime 2000000x ./kafka/

const benchRecordBytes = 100

func BenchmarkClusterProduce(b *testing.B) {
	opts := commitlog.Options{SyncPolicy: commitlog.SyncNone}
	b.Run("single/acks=1", func(b *testing.B) {
		broker, addr := commitlogtest.NewKafka(b, commitlogtest.WithOptions(opts))
		commitlogtest.CreateTopic(b, broker, "bench", 1)
		benchProduce(b, []string{addr}, kgo.LeaderAck())
	})
	b.Run("cluster3/acks=all", func(b *testing.B) {
		c := commitlogtest.NewCluster(b, 3, commitlogtest.WithKafkaListeners(), commitlogtest.WithBrokerOptions(opts))
		c.CreateTopicConfig("bench", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2})
		benchProduce(b, c.Addrs(), kgo.AllISRAcks())
	})
}

func benchProduce(b *testing.B, seeds []string, acks kgo.Acks) {
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("bench"),
		kgo.RequiredAcks(acks), kgo.ProducerLinger(5 * time.Millisecond), kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(1 << 20)}
	if acks != kgo.AllISRAcks() {
		opts = append(opts, kgo.DisableIdempotentWrite()) // idempotence needs acks=all
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	value := make([]byte, benchRecordBytes)
	// Warm up: metadata, connections, the log's first pages.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	var failed sync.Once
	var firstErr error
	b.SetBytes(benchRecordBytes)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Do(func() { firstErr = err })
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkClusterLatency produces at a fixed 50,000 records/s to a
// partition with three replicas (acks=all, min.insync.replicas 2) and
// reports the 50th and 99th percentile of the time from Produce to its
// acknowledgement. b.N is the number of records.
func BenchmarkClusterLatency(b *testing.B) {
	const rate = 50_000
	c := commitlogtest.NewCluster(b, 3, commitlogtest.WithKafkaListeners(), commitlogtest.WithBrokerOptions(commitlog.Options{SyncPolicy: commitlog.SyncNone}))
	c.CreateTopicConfig("bench", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("bench"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	value := make([]byte, benchRecordBytes)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	wg.Add(b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		// Pace: record i goes out at start + i/rate.
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
			lat[i] = time.Since(sent)
			wg.Done()
		})
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkClusterFailover kills the leader of a partition with three
// replicas (no goodbye to the controller: its session must time out, 1 s
// by default) and measures the time until the new leader accepts an
// acks=all write. Default timeouts throughout.
func BenchmarkClusterFailover(b *testing.B) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		c := commitlogtest.NewCluster(b, 3)
		c.CreateTopic("t", 1, 3)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		leader, err := c.WaitLeader(ctx, "t", 0)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		killed := time.Now()
		c.Kill(leader)
		for {
			id, err := c.WaitLeader(ctx, "t", 0)
			if err != nil {
				b.Fatal(err)
			}
			t, err := c.Broker(id).Topic("t")
			if err != nil {
				continue
			}
			p, err := t.Partition(0)
			if err != nil {
				continue
			}
			if _, err := p.Append(commitlog.Record{Value: []byte("after")}); err == nil {
				break
			}
		}
		total += time.Since(killed)
		cancel()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "failover-ms")
}
