package kafka

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/replication"
)

// fakePeer accepts one connection, reads one request and answers with the
// bytes answer makes of the request's correlation id.
func fakePeer(t *testing.T, answer func(corrID uint32) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var head [12]byte // size, key, version, correlation id
		if _, err := io.ReadFull(c, head[:]); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(head[:4])
		if _, err := io.CopyN(io.Discard, c, int64(size)-8); err != nil {
			return
		}
		c.Write(answer(binary.BigEndian.Uint32(head[8:])))
		io.Copy(io.Discard, c) // until the transport hangs up
	}()
	return ln.Addr().String()
}

// TestTransportRefusesBadResponses: a peer announcing a response larger
// than MaxResponseBytes, or answering another correlation id, fails the
// request at once without allocating the announced size.
func TestTransportRefusesBadResponses(t *testing.T) {
	for name, tc := range map[string]struct {
		answer func(uint32) []byte
		want   string
	}{
		"huge": {func(id uint32) []byte {
			return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0x7fffffff), id)
		}, "outside"},
		"wrong correlation id": {func(id uint32) []byte {
			return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), id+1)
		}, "correlation id"},
	} {
		t.Run(name, func(t *testing.T) {
			addr := fakePeer(t, tc.answer)
			tr := NewTransport(TransportConfig{Addr: func(int32) (string, bool) { return addr, true }, MaxResponseBytes: 1 << 20})
			defer tr.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := tr.Fetch(ctx, 2, &replication.FetchRequest{ReplicaID: 1, MaxWait: time.Millisecond, MaxBytes: 1 << 20,
				Partitions: []replication.FetchPartition{{Partition: cluster.TopicPartition{Topic: "t"}, MaxBytes: 1 << 20}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fetch: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestTransportUnknownBroker fails a request to a broker without an
// address.
func TestTransportUnknownBroker(t *testing.T) {
	tr := NewTransport(TransportConfig{Addr: func(int32) (string, bool) { return "", false }})
	defer tr.Close()
	if _, err := tr.OffsetForLeaderEpoch(context.Background(), 7, &replication.EpochRequest{ReplicaID: 1}); err == nil {
		t.Fatal("no error for a broker without an address")
	}
}
