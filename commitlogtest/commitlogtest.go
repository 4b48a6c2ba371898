// Package commitlogtest starts throwaway brokers for tests: a user's test
// gets a broker, a topic and its records in three lines.
//
//	b := commitlogtest.NewBroker(t)
//	commitlogtest.CreateTopic(t, b, "orders", 3)
//	recs := commitlogtest.Collect(t, b, "orders", 10)
//
// The broker lives in t.TempDir() and is closed by t.Cleanup. Helpers fail
// the test (Fatalf) on error. The package takes a TB interface, which
// *testing.T and *testing.B satisfy, so it does not import package testing.
//
// NewKafka serves a broker over the Kafka protocol on a free loopback
// port. NewCluster starts several replicating brokers and their controller
// in one process, over an in-memory network with fault injection or over
// their Kafka listeners, and stops, kills and restarts them:
//
//	c := commitlogtest.NewCluster(t, 3, commitlogtest.WithKafkaListeners())
//	c.CreateTopic("orders", 6, 3)
//	client, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
package commitlogtest

import (
	"context"
	"time"

	"github.com/streamkit/commitlog"
)

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Option configures NewBroker.
type Option func(*config)

type config struct {
	opts   commitlog.Options
	topics []topic
}

type topic struct {
	name string
	cfg  commitlog.TopicConfig
}

// WithOptions sets the broker's options. Without it the broker uses
// SyncNone: tests rarely need fsync, and it makes them fast.
func WithOptions(o commitlog.Options) Option { return func(c *config) { c.opts = o } }

// WithTopic creates a topic when the broker opens.
func WithTopic(name string, cfg commitlog.TopicConfig) Option {
	return func(c *config) { c.topics = append(c.topics, topic{name, cfg}) }
}

// collectTimeout bounds how long Collect waits for records.
const collectTimeout = 10 * time.Second

// NewBroker opens a broker in a temporary directory, creates the topics
// given with WithTopic, and closes it when the test ends.
func NewBroker(tb TB, opts ...Option) *commitlog.Broker {
	tb.Helper()
	c := config{opts: commitlog.Options{SyncPolicy: commitlog.SyncNone}}
	for _, o := range opts {
		o(&c)
	}
	b, err := commitlog.Open(tb.TempDir(), c.opts)
	if err != nil {
		tb.Fatalf("commitlogtest: open broker: %v", err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Fatalf("commitlogtest: close broker: %v", err)
		}
	})
	for _, t := range c.topics {
		if _, err := b.CreateTopic(context.Background(), t.name, t.cfg); err != nil {
			tb.Fatalf("commitlogtest: create topic %s: %v", t.name, err)
		}
	}
	return b
}

// CreateTopic creates a topic with the given number of partitions and
// default settings.
func CreateTopic(tb TB, b *commitlog.Broker, name string, partitions int32) *commitlog.Topic {
	tb.Helper()
	t, err := b.CreateTopic(context.Background(), name, commitlog.TopicConfig{Partitions: partitions})
	if err != nil {
		tb.Fatalf("commitlogtest: create topic %s: %v", name, err)
	}
	return t
}

// Produce sends records synchronously with a default producer (keyed
// records go to Kafka's murmur2 partition) and returns them with Partition,
// Offset and Timestamp filled in.
func Produce(tb TB, b *commitlog.Broker, records ...commitlog.Record) []commitlog.Record {
	tb.Helper()
	p, err := b.NewProducer(commitlog.ProducerConfig{})
	if err != nil {
		tb.Fatalf("commitlogtest: new producer: %v", err)
	}
	defer p.Close()
	out := make([]commitlog.Record, 0, len(records))
	for _, r := range records {
		got, err := p.Send(context.Background(), r)
		if err != nil {
			tb.Fatalf("commitlogtest: produce to %s: %v", r.Topic, err)
		}
		out = append(out, got)
	}
	return out
}

// Collect reads n records of topic, from the start of every partition,
// waiting up to 10 seconds for them; see CollectContext.
func Collect(tb TB, b *commitlog.Broker, topic string, n int) []commitlog.Record {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	return CollectContext(ctx, tb, b, topic, n)
}

// CollectContext reads n records of topic, from the start of every
// partition, until ctx is done. The records are copies: they stay valid
// after it returns. Records of one partition are in order; partitions
// interleave.
func CollectContext(ctx context.Context, tb TB, b *commitlog.Broker, topic string, n int) []commitlog.Record {
	tb.Helper()
	c, err := b.NewConsumer(commitlog.ConsumerConfig{Topics: []string{topic}})
	if err != nil {
		tb.Fatalf("commitlogtest: new consumer: %v", err)
	}
	defer c.Close()
	out := make([]commitlog.Record, 0, n)
	for len(out) < n {
		recs, err := c.Poll(ctx)
		if err != nil {
			tb.Fatalf("commitlogtest: collect %d records of %s: got %d: %v", n, topic, len(out), err)
		}
		for _, r := range recs {
			if len(out) < n {
				out = append(out, r.Clone())
			}
		}
	}
	return out
}
