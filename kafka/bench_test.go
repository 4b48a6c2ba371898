package kafka

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
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

// zeroCopyModes are the two ways a server sends Fetch responses.
var zeroCopyModes = []struct {
	name string
	cfg  Config
}{
	{"zerocopy=on", Config{}},
	{"zerocopy=off", Config{DisableZeroCopy: true}},
}

// fillBench appends records of 1000 bytes, perBatch to a batch, to each
// partition of topic until it holds size bytes; it returns the records and
// bytes written.
func fillBench(b *testing.B, e *testEnv, topic string, partitions int32, perBatch, size int) (records int, bytes int64) {
	values := make([]string, perBatch)
	for i := range values {
		values[i] = string(make([]byte, 1000))
	}
	batch := appendBatch(b, values...)
	for p := range partitions {
		part := partition(b, e, topic, p)
		for written := 0; written < size; written += len(batch) {
			if _, err := part.AppendBatch(slices.Clone(batch)); err != nil {
				b.Fatal(err)
			}
			records += len(values)
			bytes += int64(len(batch))
		}
	}
	return records, bytes
}

// benchServers serves the env's broker a second time with zero-copy off,
// and returns the address of each mode's server, by mode name.
func benchServers(b *testing.B, e *testEnv) map[string]string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	e.serve(ln, Config{DisableZeroCopy: true, Logger: slog.New(slog.DiscardHandler)})
	return map[string]string{"zerocopy=on": e.addr, "zerocopy=off": ln.Addr().String()}
}

// BenchmarkFetch measures one Fetch read raw from the socket into a reused
// buffer (so that the allocations are the server's), with and without
// zero-copy: 64 KiB and 1 MiB from one partition of 16 KiB batches, and
// 8 KiB from each of 16 partitions of 4 KiB batches (ranges that the
// zero-copy path writes from the mapping, below sendfileMinBytes).
func BenchmarkFetch(b *testing.B) {
	e := newEnv(b, envOptions{server: Config{Logger: slog.New(slog.DiscardHandler)}})
	e.createTopic("bench", commitlog.TopicConfig{})
	fillBench(b, e, "bench", 1, 16, 4<<20)
	e.createTopic("small", commitlog.TopicConfig{Partitions: 16})
	fillBench(b, e, "small", 16, 4, 64<<10)
	addrs := benchServers(b, e)
	cases := []struct {
		name                 string
		topic                string
		partitions, maxBytes int32
	}{
		{"1x64KiB", "bench", 1, 64 << 10},
		{"1x1MiB", "bench", 1, 1 << 20},
		{"16x8KiB", "small", 16, 8 << 10},
	}
	for _, mode := range zeroCopyModes {
		for _, bc := range cases {
			b.Run(mode.name+"/"+bc.name, func(b *testing.B) {
				c := dialTo(b, addrs[mode.name])
				req := kmsg.NewPtrFetchRequest()
				req.Version = 12
				req.MaxBytes = bc.partitions * bc.maxBytes
				req.SessionEpoch = -1
				rt := kmsg.NewFetchRequestTopic()
				rt.Topic = bc.topic
				for p := range bc.partitions {
					rp := kmsg.NewFetchRequestTopicPartition()
					rp.Partition = p
					rp.PartitionMaxBytes = bc.maxBytes
					rt.Partitions = append(rt.Partitions, rp)
				}
				req.Topics = append(req.Topics, rt)
				frameBytes := frame(req, 1)
				var buf []byte
				b.ReportAllocs()
				for b.Loop() {
					c.write(frameBytes)
					var err error
					if buf, err = c.readFrameInto(buf); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(len(buf)))
			})
		}
	}
}

// BenchmarkConsume measures franz-go consuming a pre-filled topic (four
// partitions of 16 MiB, 1 KiB records in 16 KiB batches, uncompressed) from
// the start to the end over loopback, one new client per iteration, with
// and without zero-copy. Client and server share the process, so the
// figures (and the allocations) include franz-go's decoding.
func BenchmarkConsume(b *testing.B) {
	e := newEnv(b, envOptions{server: Config{Logger: slog.New(slog.DiscardHandler)}})
	const partitions = 4
	e.createTopic("consume", commitlog.TopicConfig{Partitions: partitions})
	records, bytes := fillBench(b, e, "consume", partitions, 16, 16<<20)
	addrs := benchServers(b, e)
	for _, mode := range zeroCopyModes {
		b.Run(mode.name, func(b *testing.B) {
			b.SetBytes(bytes)
			b.ReportAllocs()
			for b.Loop() {
				consumeAll(b, addrs[mode.name], "consume", records)
			}
			b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// consumeAll consumes topic from the start with a new client until it has
// n records.
func consumeAll(b *testing.B, addr, topic string, n int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			b.Fatalf("consumed %d of %d records: %v", got, n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { b.Fatalf("fetch %s/%d: %v", topic, p, err) })
		got += fs.NumRecords()
	}
}

// readFrameInto reads one response frame into buf, grown as needed.
func (c *rawConn) readFrameInto(buf []byte) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(size[:]))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(c.nc, buf)
	return buf, err
}
