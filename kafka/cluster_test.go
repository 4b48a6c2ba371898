package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamkit/commitlog/commitlogtest"
)

// TestClusterFailover runs franz-go against three brokers that replicate
// over their Kafka listeners: it produces with acks=all (and idempotence,
// kgo's default), stops the leader of a partition, keeps producing through
// the leader change (kgo follows NOT_LEADER_OR_FOLLOWER to the new
// leader), and then reads every record back exactly once, in order.
func TestClusterFailover(t *testing.T) {
	c := commitlogtest.NewCluster(t, 3, commitlogtest.WithKafkaListeners())
	const topic = "orders"
	c.CreateTopic(topic, 3, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			r := &kgo.Record{Partition: int32(i % 3), Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	produce(0, 150)

	old, err := c.WaitLeader(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(old)
	produce(150, 300)
	if now := c.Leader(topic, 0); now == old {
		t.Fatalf("partition 0 still led by stopped broker %d", old)
	}
	c.Start(old)

	consumer, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]int{}
	next := map[int32]int64{}
	for len(seen) < 300 {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 300 records: %v", len(seen), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next[r.Partition] {
				t.Errorf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition] = r.Offset + 1
			seen[string(r.Key)]++
			if want := fmt.Sprintf("v%s", r.Key[1:]); string(r.Value) != want {
				t.Errorf("record %s: value %q, want %q", r.Key, r.Value, want)
			}
		})
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("record %s read %d times", k, n)
		}
	}
}
