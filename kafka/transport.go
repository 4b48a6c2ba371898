package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/replication"
)

// Transport carries replication between brokers over the Kafka protocol: a
// follower's fetches are Fetch requests with its replica id, and its
// truncation questions OffsetForLeaderEpoch requests, sent to the leader's
// Kafka listener, the one clients use. It implements replication.Transport
// and is safe for concurrent use; it keeps idle connections to each peer.
type Transport struct {
	cfg TransportConfig
	fmt *kmsg.RequestFormatter

	mu     sync.Mutex
	idle   map[int32][]*peerConn
	closed bool
	corrID int32
}

// TransportConfig configures a Transport.
type TransportConfig struct {
	// Addr returns the host:port of a broker's Kafka listener; required.
	// ControllerAddrs makes one from the cluster's controller.
	Addr func(broker int32) (string, bool)
	// ClientID names the requests' sender in the peer's logs. Default
	// "commitlog-replica".
	ClientID string
	// DialTimeout bounds connecting to a peer. Default 5 s.
	DialTimeout time.Duration
	// MaxResponseBytes bounds a response; a peer announcing a larger one
	// is dropped. Default 128 MiB.
	MaxResponseBytes int
}

// ControllerAddrs resolves broker ids through the controller's live
// brokers, for TransportConfig.Addr.
func ControllerAddrs(ctrl interface{ Brokers() []cluster.BrokerInfo }) func(int32) (string, bool) {
	return func(id int32) (string, bool) {
		for _, b := range ctrl.Brokers() {
			if b.ID == id {
				return net.JoinHostPort(b.Host, fmt.Sprint(b.Port)), true
			}
		}
		return "", false
	}
}

// NewTransport returns a transport that dials peers as cfg says.
func NewTransport(cfg TransportConfig) *Transport {
	if cfg.ClientID == "" {
		cfg.ClientID = "commitlog-replica"
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = 128 << 20
	}
	return &Transport{cfg: cfg, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID(cfg.ClientID)), idle: map[int32][]*peerConn{}}
}

// Versions the transport speaks: the newest the server serves.
const (
	replicaFetchVersion = 12
	epochQueryVersion   = 4
)

// Fetch sends a follower's fetch to broker to.
func (t *Transport) Fetch(ctx context.Context, to int32, req *replication.FetchRequest) (*replication.FetchResponse, error) {
	kreq := kmsg.NewPtrFetchRequest()
	kreq.Version = replicaFetchVersion
	kreq.ReplicaID = req.ReplicaID
	kreq.MaxWaitMillis = int32(req.MaxWait / time.Millisecond)
	kreq.MinBytes = 1
	kreq.MaxBytes = int32(min(req.MaxBytes, 1<<30))
	kreq.SessionEpoch = -1
	topics := byTopic{}
	for _, p := range req.Partitions {
		i := topics.slot(p.Partition.Topic, len(kreq.Topics), func() {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = p.Partition.Topic
			kreq.Topics = append(kreq.Topics, rt)
		})
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p.Partition.Partition
		rp.CurrentLeaderEpoch = p.CurrentLeaderEpoch
		rp.FetchOffset = p.FetchOffset
		rp.PartitionMaxBytes = int32(min(p.MaxBytes, 1<<30))
		kreq.Topics[i].Partitions = append(kreq.Topics[i].Partitions, rp)
	}
	kresp := kreq.ResponseKind().(*kmsg.FetchResponse)
	if err := t.roundTrip(ctx, to, kreq, kresp); err != nil {
		return nil, err
	}
	if kresp.ErrorCode != errNone {
		return nil, fmt.Errorf("kafka: fetch from broker %d: error %d", to, kresp.ErrorCode)
	}
	resp := &replication.FetchResponse{}
	for _, rt := range kresp.Topics {
		for _, rp := range rt.Partitions {
			resp.Partitions = append(resp.Partitions, replication.FetchedPartition{
				Partition:      cluster.TopicPartition{Topic: rt.Topic, Partition: rp.Partition},
				Err:            replicationError(rp.ErrorCode),
				HighWatermark:  rp.HighWatermark,
				LogStartOffset: rp.LogStartOffset,
				Records:        rp.RecordBatches,
			})
		}
	}
	return resp, nil
}

// OffsetForLeaderEpoch asks broker to where the given epochs ended.
func (t *Transport) OffsetForLeaderEpoch(ctx context.Context, to int32, req *replication.EpochRequest) (*replication.EpochResponse, error) {
	kreq := kmsg.NewPtrOffsetForLeaderEpochRequest()
	kreq.Version = epochQueryVersion
	kreq.ReplicaID = req.ReplicaID
	topics := byTopic{}
	for _, q := range req.Partitions {
		i := topics.slot(q.Partition.Topic, len(kreq.Topics), func() {
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = q.Partition.Topic
			kreq.Topics = append(kreq.Topics, rt)
		})
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition = q.Partition.Partition
		rp.CurrentLeaderEpoch = q.CurrentLeaderEpoch
		rp.LeaderEpoch = q.LeaderEpoch
		kreq.Topics[i].Partitions = append(kreq.Topics[i].Partitions, rp)
	}
	kresp := kreq.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	if err := t.roundTrip(ctx, to, kreq, kresp); err != nil {
		return nil, err
	}
	resp := &replication.EpochResponse{}
	for _, rt := range kresp.Topics {
		for _, rp := range rt.Partitions {
			resp.Partitions = append(resp.Partitions, replication.EpochAnswer{
				Partition:   cluster.TopicPartition{Topic: rt.Topic, Partition: rp.Partition},
				Err:         replicationError(rp.ErrorCode),
				LeaderEpoch: rp.LeaderEpoch,
				EndOffset:   rp.EndOffset,
			})
		}
	}
	return resp, nil
}

// byTopic groups a request's partitions under their topics, in the order
// the topics first appear.
type byTopic map[string]int

// slot returns the index of topic's entry among the request's n topics,
// calling add to append the entry the first time.
func (g byTopic) slot(topic string, n int, add func()) int {
	i, ok := g[topic]
	if !ok {
		i = n
		g[topic] = i
		add()
	}
	return i
}

// replicationError maps a partition's error code onto the errors the
// replication state machine acts on.
func replicationError(code int16) error {
	switch code {
	case errNone:
		return nil
	case errNotLeaderOrFollower, errUnknownTopicOrPartition, errLeaderNotAvailable:
		return replication.ErrNotLeader
	case errFencedLeaderEpoch:
		return replication.ErrFencedLeaderEpoch
	case errUnknownLeaderEpoch:
		return replication.ErrUnknownLeaderEpoch
	case errOffsetOutOfRange:
		return replication.ErrOffsetOutOfRange
	}
	return fmt.Errorf("kafka: peer answered error code %d", code)
}

// Close closes the idle connections; requests in flight finish on theirs,
// which are closed afterwards.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	var errs []error
	for _, conns := range t.idle {
		for _, c := range conns {
			errs = append(errs, c.nc.Close())
		}
	}
	t.idle = nil
	return errors.Join(errs...)
}

// peerConn is one connection to a peer's Kafka listener.
type peerConn struct {
	nc net.Conn
	r  *bufio.Reader
}

// roundTrip sends one request to broker to and reads its response into
// resp, on an idle connection or a new one. A connection that fails, or
// whose request ctx interrupts, is closed rather than reused.
func (t *Transport) roundTrip(ctx context.Context, to int32, req kmsg.Request, resp kmsg.Response) error {
	c, err := t.get(ctx, to)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	err = t.exchange(c, req, resp)
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		c.nc.Close()
		return fmt.Errorf("kafka: request %s to broker %d: %w", kmsg.NameForKey(req.Key()), to, err)
	}
	t.put(to, c)
	return nil
}

func (t *Transport) exchange(c *peerConn, req kmsg.Request, resp kmsg.Response) error {
	t.mu.Lock()
	t.corrID++
	corrID := t.corrID
	t.mu.Unlock()
	if _, err := c.nc.Write(t.fmt.AppendRequest(nil, req, corrID)); err != nil {
		return err
	}
	var head [8]byte
	if _, err := io.ReadFull(c.r, head[:]); err != nil {
		return err
	}
	size := int32(binary.BigEndian.Uint32(head[:4]))
	if size < 4 || int(size) > t.cfg.MaxResponseBytes {
		return fmt.Errorf("response of %d bytes outside [4, %d]", size, t.cfg.MaxResponseBytes)
	}
	if got := int32(binary.BigEndian.Uint32(head[4:])); got != corrID {
		return fmt.Errorf("response correlation id %d, want %d", got, corrID)
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return err
	}
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return err
		}
	}
	return resp.ReadFrom(body)
}

func (t *Transport) get(ctx context.Context, to int32) (*peerConn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, replication.ErrClosed
	}
	if conns := t.idle[to]; len(conns) > 0 {
		c := conns[len(conns)-1]
		t.idle[to] = conns[:len(conns)-1]
		t.mu.Unlock()
		return c, nil
	}
	t.mu.Unlock()
	addr, ok := t.cfg.Addr(to)
	if !ok {
		return nil, fmt.Errorf("kafka: no address for broker %d", to)
	}
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kafka: dial broker %d: %w", to, err)
	}
	return &peerConn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10)}, nil
}

func (t *Transport) put(to int32, c *peerConn) {
	c.nc.SetDeadline(time.Time{})
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || len(t.idle[to]) >= 4 {
		c.nc.Close()
		return
	}
	t.idle[to] = append(t.idle[to], c)
}
