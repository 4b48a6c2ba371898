package kafka_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/commitlogtest"
	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/kafka"
)

// TestProducePipelined sends two acks=all Produce requests in one write
// while the followers are paused, so that the first one's answer waits:
// the second one's records are appended meanwhile (both count in the
// leader's log end before any answer), and once the followers resume both
// are answered, in order.
func TestProducePipelined(t *testing.T) {
	c := commitlogtest.NewCluster(t, 3)
	c.CreateTopicConfig("t", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader, err := c.WaitLeader(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	b := c.Broker(leader)
	srv, err := kafka.NewServer(b, kafka.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	topic, _ := b.Topic("t")
	part, _ := topic.Partition(0)

	for id := int32(1); id <= 3; id++ {
		if id != leader {
			c.Network().Pause(id)
		}
	}
	var frames []byte
	f := kmsg.NewRequestFormatter()
	for i := range 2 {
		var bld batch.Builder
		bld.Reset(batch.CodecNone)
		bld.Add(time.Now().UnixMilli(), nil, []byte{byte('a' + i)}, nil)
		records, err := bld.Build(nil)
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrProduceRequest()
		req.Version = 9
		req.Acks = -1
		req.TimeoutMillis = 30000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = records
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		frames = append(frames, f.AppendRequest(nil, req, int32(i+1))...) // AppendRequest frames all of dst
	}
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := nc.Write(frames); err != nil {
		t.Fatal(err)
	}
	for part.LogEndOffset() < 2 {
		if ctx.Err() != nil {
			t.Fatalf("log end %d: the second request was not appended while the first waited", part.LogEndOffset())
		}
		time.Sleep(time.Millisecond)
	}
	for id := int32(1); id <= 3; id++ {
		c.Network().Resume(id)
	}
	for want := int32(1); want <= 2; want++ {
		var head [8]byte
		if _, err := io.ReadFull(nc, head[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint32(head[:4])-4)
		if _, err := io.ReadFull(nc, body); err != nil {
			t.Fatal(err)
		}
		if got := int32(binary.BigEndian.Uint32(head[4:])); got != want {
			t.Fatalf("answer %d came for request %d", got, want)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		if err := resp.ReadFrom(body[1:]); err != nil { // flexible header: no tags
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != int64(want-1) {
			t.Fatalf("request %d: error %d, base offset %d", want, p.ErrorCode, p.BaseOffset)
		}
	}
}
