package kafka

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// BenchmarkProduce measures a Produce request of one batch with acks=1,
// from the socket to the log (SyncNone) and back, per batch size.
func BenchmarkProduce(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("batch=%dKiB", size>>10), func(b *testing.B) {
			e := newEnv(b, envOptions{server: Config{Logger: slog.New(slog.DiscardHandler)}})
			e.createTopic("bench", commitlog.TopicConfig{MaxMessageBytes: 1 << 20})
			c := e.dial()
			values := make([]string, size/1024)
			for i := range values {
				values[i] = string(make([]byte, 1000))
			}
			batch := appendBatch(b, values...)
			req := kmsg.NewPtrProduceRequest()
			req.Version = 9
			req.Acks = 1
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "bench"
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Records = batch
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			frameBytes := frame(req, 1)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				c.write(frameBytes)
				if _, err := c.readFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFetch measures a Fetch of up to maxBytes from a partition
// holding 1 KiB records in 16 KiB batches.
func BenchmarkFetch(b *testing.B) {
	e := newEnv(b, envOptions{server: Config{Logger: slog.New(slog.DiscardHandler)}})
	e.createTopic("bench", commitlog.TopicConfig{})
	p := partition(b, e, "bench", 0)
	values := make([]string, 16)
	for i := range values {
		values[i] = string(make([]byte, 1000))
	}
	for range 256 { // 4 MiB
		if _, err := p.AppendBatch(appendBatch(b, values...)); err != nil {
			b.Fatal(err)
		}
	}
	for _, maxBytes := range []int32{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("max=%dKiB", maxBytes>>10), func(b *testing.B) {
			c := e.dial()
			req := kmsg.NewPtrFetchRequest()
			req.Version = 12
			req.MaxBytes = maxBytes
			req.SessionEpoch = -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "bench"
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes = maxBytes
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			frameBytes := frame(req, 1)
			var n int
			b.ReportAllocs()
			for b.Loop() {
				c.write(frameBytes)
				buf, err := c.readFrame()
				if err != nil {
					b.Fatal(err)
				}
				n = len(buf)
			}
			b.SetBytes(int64(n))
		})
	}
}
