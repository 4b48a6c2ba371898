package commitlogtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/kafka"
	"github.com/streamkit/commitlog/replication"
)

// Cluster is several brokers in one process: each with its own directory,
// all following one in-process controller (cluster.Local), replicating
// over an in-memory network with fault injection (Network) or, with
// WithKafkaListeners, over loopback TCP through each broker's Kafka
// listener. Brokers have ids 1 to n. Everything stops when the test ends.
type Cluster struct {
	tb    TB
	ctrl  *cluster.Local
	net   *replication.MemNetwork // nil over TCP
	opts  commitlog.Options
	kafka bool

	mu    sync.Mutex
	nodes map[int32]*clusterNode
}

type clusterNode struct {
	id     int32
	ctrl   *severable
	dir    string
	b      *commitlog.Broker
	srv    *kafka.Server
	tr     *kafka.Transport
	served chan error
	addr   string
}

// ClusterOption configures NewCluster.
type ClusterOption func(*clusterConfig)

type clusterConfig struct {
	opts  commitlog.Options
	ctrl  cluster.LocalConfig
	kafka bool
	seed  int64
}

// WithBrokerOptions sets every broker's options (Cluster is filled in by
// the harness). Without it brokers use SyncNone, as NewBroker does.
func WithBrokerOptions(o commitlog.Options) ClusterOption {
	return func(c *clusterConfig) { c.opts = o }
}

// WithControllerConfig configures the controller (session timeout,
// unclean leader election).
func WithControllerConfig(cfg cluster.LocalConfig) ClusterOption {
	return func(c *clusterConfig) { c.ctrl = cfg }
}

// WithKafkaListeners serves every broker over the Kafka protocol on a free
// loopback port, and replicates over those listeners (Fetch with a replica
// id) instead of the in-memory network.
func WithKafkaListeners() ClusterOption {
	return func(c *clusterConfig) { c.kafka = true }
}

// WithNetworkSeed seeds the in-memory network's fault injection.
func WithNetworkSeed(seed int64) ClusterOption {
	return func(c *clusterConfig) { c.seed = seed }
}

// NewCluster starts n brokers (ids 1 to n) and their controller.
//
//	c := commitlogtest.NewCluster(t, 3)
//	topic := c.CreateTopic("orders", 6, 3)
//	c.Broker(c.Leader("orders", 0)).Partition(...)
func NewCluster(tb TB, n int, opts ...ClusterOption) *Cluster {
	tb.Helper()
	cfg := clusterConfig{opts: commitlog.Options{SyncPolicy: commitlog.SyncNone}}
	for _, o := range opts {
		o(&cfg)
	}
	c := &Cluster{tb: tb, ctrl: cluster.NewLocal(cfg.ctrl), opts: cfg.opts, kafka: cfg.kafka, nodes: map[int32]*clusterNode{}}
	// The directories first: cleanups run last in first out, and the
	// brokers must close before their directories go.
	for id := int32(1); id <= int32(n); id++ {
		c.nodes[id] = &clusterNode{id: id, dir: tb.TempDir()}
	}
	if !cfg.kafka {
		c.net = replication.NewMemNetwork(cfg.seed)
	}
	go c.ctrl.Run(context.Background()) // fences brokers that stop heartbeating; Close stops it
	tb.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for id := range c.nodes {
			if err := c.stopLocked(id); err != nil {
				tb.Fatalf("commitlogtest: stop broker %d: %v", id, err)
			}
		}
		if err := c.ctrl.Close(); err != nil {
			tb.Fatalf("commitlogtest: close controller: %v", err)
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := int32(1); id <= int32(n); id++ {
		if err := c.startLocked(id); err != nil {
			tb.Fatalf("commitlogtest: start broker %d: %v", id, err)
		}
	}
	return c
}

// Controller returns the cluster's controller.
func (c *Cluster) Controller() *cluster.Local { return c.ctrl }

// Network returns the in-memory network the brokers replicate over, to
// inject faults; nil with WithKafkaListeners.
func (c *Cluster) Network() *replication.MemNetwork { return c.net }

// Broker returns the broker with id, or nil while it is stopped.
func (c *Cluster) Broker(id int32) *commitlog.Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[id]; n != nil {
		return n.b
	}
	return nil
}

// Addrs returns the Kafka listeners' addresses of the running brokers,
// for a client's seed brokers (WithKafkaListeners only).
func (c *Cluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var addrs []string
	for id := int32(1); id <= int32(len(c.nodes)); id++ {
		if n := c.nodes[id]; n != nil && n.b != nil && n.addr != "" {
			addrs = append(addrs, n.addr)
		}
	}
	return addrs
}

// CreateTopic creates a topic through the first running broker with the
// given partitions and replicas; it returns once every running broker
// opened it.
func (c *Cluster) CreateTopic(name string, partitions int32, replicationFactor int16) {
	c.tb.Helper()
	c.CreateTopicConfig(name, commitlog.TopicConfig{Partitions: partitions, ReplicationFactor: replicationFactor})
}

// CreateTopicConfig creates a topic with a configuration through the
// first running broker, and returns once every running broker opened it.
func (c *Cluster) CreateTopicConfig(name string, cfg commitlog.TopicConfig) {
	c.tb.Helper()
	if _, err := c.anyBroker().CreateTopic(context.Background(), name, cfg); err != nil {
		c.tb.Fatalf("commitlogtest: create topic %s: %v", name, err)
	}
	deadline := time.Now().Add(collectTimeout)
	for id := int32(1); id <= int32(len(c.nodes)); id++ {
		for { // the controller's events reach each broker in its own time
			b := c.Broker(id)
			if b == nil {
				break
			}
			if _, err := b.Topic(name); err == nil {
				break
			}
			if time.Now().After(deadline) {
				c.tb.Fatalf("commitlogtest: broker %d did not open topic %s", id, name)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// Leader returns the id of the broker leading a partition, as the
// controller has it, or cluster.NoLeader.
func (c *Cluster) Leader(topic string, partition int32) int32 {
	st, ok := c.ctrl.Partition(cluster.TopicPartition{Topic: topic, Partition: partition})
	if !ok {
		return cluster.NoLeader
	}
	return st.Leader
}

// WaitLeader waits until a partition's leader is running and knows it
// leads, and returns its id.
func (c *Cluster) WaitLeader(ctx context.Context, topic string, partition int32) (int32, error) {
	for {
		if id := c.Leader(topic, partition); id != cluster.NoLeader {
			if b := c.Broker(id); b != nil {
				if t, err := b.Topic(topic); err == nil {
					if p, err := t.Partition(partition); err == nil && p.Leader() {
						return id, nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return cluster.NoLeader, fmt.Errorf("commitlogtest: no leader for %s/%d: %w", topic, partition, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Stop closes broker id cleanly: it leaves the cluster, and the
// controller moves the leadership of its partitions to other in-sync
// replicas at once.
func (c *Cluster) Stop(id int32) {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stopLocked(id); err != nil {
		c.tb.Fatalf("commitlogtest: stop broker %d: %v", id, err)
	}
}

// Start opens broker id again, from its directory, after Stop.
func (c *Cluster) Start(id int32) {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.startLocked(id); err != nil {
		c.tb.Fatalf("commitlogtest: start broker %d: %v", id, err)
	}
}

// Kill stops broker id abruptly: from now on the controller hears
// nothing from it (no heartbeat, no goodbye) and its peers cannot reach
// it, so its partitions fail over only once its session times out, as
// after a crash. Its files are closed as they are (the page cache is not
// dropped; root package tests simulate that). Start brings it back.
func (c *Cluster) Kill(id int32) {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[id]
	if n == nil || n.b == nil {
		return
	}
	n.ctrl.sever()
	_ = c.stopLocked(id) // its goodbye to the controller fails, by design
}

// severable is a broker's line to the controller that Kill cuts.
type severable struct {
	commitlog.Controller
	cut atomic.Bool
}

var errSevered = errors.New("commitlogtest: broker killed")

func (s *severable) sever() { s.cut.Store(true) }

func (s *severable) Heartbeat(ctx context.Context, id int32, incarnation int64) error {
	if s.cut.Load() {
		return errSevered
	}
	return s.Controller.Heartbeat(ctx, id, incarnation)
}

func (s *severable) UnregisterBroker(ctx context.Context, id int32, incarnation int64) error {
	if s.cut.Load() {
		return errSevered
	}
	return s.Controller.UnregisterBroker(ctx, id, incarnation)
}

func (s *severable) AlterISR(ctx context.Context, tp cluster.TopicPartition, leader int32, leaderEpoch, partitionEpoch int32, isr []int32) (cluster.PartitionState, error) {
	if s.cut.Load() {
		return cluster.PartitionState{}, errSevered
	}
	return s.Controller.AlterISR(ctx, tp, leader, leaderEpoch, partitionEpoch, isr)
}

func (c *Cluster) anyBroker() *commitlog.Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := int32(1); id <= int32(len(c.nodes)); id++ {
		if n := c.nodes[id]; n != nil && n.b != nil {
			return n.b
		}
	}
	c.tb.Fatalf("commitlogtest: no broker running")
	return nil
}

func (c *Cluster) startLocked(id int32) error {
	n := c.nodes[id]
	if n == nil {
		return fmt.Errorf("no broker %d", id)
	}
	if n.b != nil {
		return nil
	}
	opts := c.opts
	n.ctrl = &severable{Controller: c.ctrl}
	cc := &commitlog.ClusterConfig{BrokerID: id, Controller: n.ctrl, Host: "127.0.0.1"}
	var ln net.Listener
	if c.kafka {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		cc.Port = int32(ln.Addr().(*net.TCPAddr).Port)
		n.tr = kafka.NewTransport(kafka.TransportConfig{Addr: kafka.ControllerAddrs(c.ctrl)})
		cc.Transport = n.tr
	} else {
		cc.Transport = c.net.Transport(id)
	}
	opts.Cluster = cc
	b, err := commitlog.Open(n.dir, opts)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	n.b = b
	if !c.kafka {
		c.net.Register(id, b.ReplicaHandler())
		return nil
	}
	srv, err := kafka.NewServer(b, kafka.Config{})
	if err != nil {
		ln.Close()
		return errors.Join(err, b.Close())
	}
	n.srv, n.addr, n.served = srv, ln.Addr().String(), make(chan error, 1)
	go func() { n.served <- srv.Serve(ln) }()
	return nil
}

func (c *Cluster) stopLocked(id int32) error {
	n := c.nodes[id]
	if n == nil || n.b == nil {
		return nil
	}
	var errs []error
	if n.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, n.srv.Shutdown(ctx))
		cancel()
		if err := <-n.served; err != nil && !errors.Is(err, kafka.ErrServerClosed) {
			errs = append(errs, err)
		}
		n.srv = nil
	}
	if c.net != nil {
		c.net.Unregister(id)
	}
	errs = append(errs, n.b.Close())
	if n.tr != nil {
		errs = append(errs, n.tr.Close())
		n.tr = nil
	}
	n.b, n.addr = nil, ""
	return errors.Join(errs...)
}
