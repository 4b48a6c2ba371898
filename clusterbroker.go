package commitlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/internal/layout"
	"github.com/streamkit/commitlog/internal/vfs"
	"github.com/streamkit/commitlog/replication"
)

// A broker of a cluster.
//
// With Options.Cluster set, the broker is one of several that replicate
// their partitions (Kafka's ISR replication, package replication). The
// controller (package cluster) is the authority on topics, on which brokers
// hold which partitions, and on leaders, in-sync replicas and epochs; the
// broker registers with it, heartbeats, and follows its decisions, which
// reach it as an ordered stream of events:
//
//   - a topic created: the broker opens a log for each partition it holds a
//     replica of, and makes it leader or follower as the controller says;
//     partitions it does not hold exist in its Topic without a log, and
//     fail with ErrNotLeader;
//   - a partition changed (new leader, ISR, epochs): the replica changes
//     role, under the partition's roleMu so that no append of an old leader
//     lands after it became a follower;
//   - a topic deleted: its local files go.
//
// Followers fetch from leaders over ClusterConfig.Transport
// (replication.Node runs the fetchers). Consumers read below the high
// watermark; acks=all writes wait for it.
//
// Topics are created, grown and deleted through the controller, which also
// keeps each topic's configuration and hands it to every broker with the
// topic and whenever it changes (AlterTopicConfig on any broker).
// Consumer groups and their committed offsets stay local to each broker:
// __consumer_offsets is not replicated yet.

// ClusterConfig makes a Broker one of several that replicate their
// partitions; see Options.Cluster.
type ClusterConfig struct {
	// BrokerID is this broker's id in the cluster (Kafka's node.id),
	// unique, 0 or more.
	BrokerID int32
	// Host and Port are where clients and peers reach this broker's
	// Kafka listener, as the controller tells them (advertised.listeners).
	Host string
	Port int32
	// Controller holds the cluster's metadata. Required.
	Controller Controller
	// Transport carries follower fetches between brokers. Required.
	Transport replication.Transport
	// ReplicaLagTime is how long a follower may go without catching up
	// before it leaves the ISR (replica.lag.time.max.ms). Default 10 s.
	ReplicaLagTime time.Duration
	// HeartbeatInterval is how often the broker heartbeats to the
	// controller (broker.heartbeat.interval.ms). Default 100 ms, well
	// inside the controller's session timeout.
	HeartbeatInterval time.Duration
	// FetchMaxWait bounds a follower fetch's long poll
	// (replica.fetch.wait.max.ms). Default 500 ms.
	FetchMaxWait time.Duration
	// Logger receives what goes wrong while following the controller (at
	// level Warn) and the replication's transient errors, such as a fetch
	// from a leader that just stepped down (at level Debug). Default
	// slog.Default().
	Logger *slog.Logger
}

// Controller is what a broker of a cluster needs of the cluster's
// controller; *cluster.Local is one.
type Controller interface {
	cluster.ISRUpdater
	RegisterBroker(ctx context.Context, info cluster.BrokerInfo, cleanShutdown bool) (incarnation int64, err error)
	Heartbeat(ctx context.Context, id int32, incarnation int64) error
	UnregisterBroker(ctx context.Context, id int32, incarnation int64) error
	Brokers() []cluster.BrokerInfo
	CreateTopicSpec(ctx context.Context, name string, spec cluster.TopicSpec) ([]cluster.PartitionState, error)
	CreatePartitions(ctx context.Context, name string, total int32) ([]cluster.PartitionState, error)
	DeleteTopic(ctx context.Context, name string) error
	SetTopicConfig(ctx context.Context, name string, config []byte) error
	SetMinISR(ctx context.Context, name string, n int) error
	Topic(name string) ([]cluster.PartitionState, bool)
	Partition(tp cluster.TopicPartition) (cluster.PartitionState, bool)
	Watch(brokerID int32) (events <-chan cluster.Event, cancel func())
}

func (c *ClusterConfig) withDefaults() {
	if c.ReplicaLagTime == 0 {
		c.ReplicaLagTime = 10 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 100 * time.Millisecond
	}
	if c.FetchMaxWait == 0 {
		c.FetchMaxWait = 500 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *ClusterConfig) validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: Cluster.%s %v: %s", ErrInvalidConfig, field, v, why)
	}
	switch {
	case c.BrokerID < 0:
		return bad("BrokerID", c.BrokerID, "negative")
	case c.Controller == nil:
		return bad("Controller", nil, "required")
	case c.Transport == nil:
		return bad("Transport", nil, "required")
	case c.ReplicaLagTime < 0 || c.HeartbeatInterval < 0 || c.FetchMaxWait < 0:
		return bad("ReplicaLagTime/HeartbeatInterval/FetchMaxWait", "", "negative")
	}
	return nil
}

// clusterMember is a broker's life in a cluster: its registration, the
// replication node, and the goroutines that heartbeat and apply the
// controller's events.
type clusterMember struct {
	b    *Broker
	cfg  ClusterConfig
	node *replication.Node

	incMu       sync.Mutex
	incarnation int64

	cancelWatch func()
	stop        chan struct{}
	wg          sync.WaitGroup

	// mu guards created: topics this broker created, with the
	// configuration to open them with, and a channel closed once the
	// controller's event opened them here.
	mu      sync.Mutex
	created map[string]*pendingTopic
	// killed skips the clean unregistration on close (tests that crash a
	// broker).
	killed bool
	// checkpointed holds the high watermarks read from the checkpoint at
	// open, for the replicas as they open (hwcheckpoint.go).
	checkpointed map[cluster.TopicPartition]int64
}

type pendingTopic struct {
	cfg    TopicConfig
	opened chan struct{}
}

// joinCluster registers the broker and starts following the controller.
func (b *Broker) joinCluster() error {
	cleanStart, err := b.takeCleanShutdown()
	if err != nil {
		return err
	}
	cfg := *b.opts.Cluster
	if err := b.dropDeletedTopics(cfg.Controller); err != nil {
		return err
	}
	hws, err := readHWCheckpoint(b.fs, b.dir)
	if err != nil {
		return err
	}
	m := &clusterMember{b: b, cfg: cfg, stop: make(chan struct{}), created: map[string]*pendingTopic{}, checkpointed: hws}
	m.node = replication.NewNode(replication.NodeConfig{
		BrokerID:     cfg.BrokerID,
		Transport:    cfg.Transport,
		ISR:          cfg.Controller,
		Replica:      replication.Config{ReplicaLagTime: cfg.ReplicaLagTime, MinInsyncReplicas: 1},
		FetchMaxWait: cfg.FetchMaxWait,
		Logf: func(format string, args ...any) {
			cfg.Logger.Debug(fmt.Sprintf(format, args...), "broker", cfg.BrokerID)
		},
	})
	inc, err := cfg.Controller.RegisterBroker(context.Background(), m.info(), cleanStart)
	if err != nil {
		m.node.Close()
		return fmt.Errorf("register broker %d: %w", cfg.BrokerID, err)
	}
	m.incarnation = inc
	events, cancel := cfg.Controller.Watch(cfg.BrokerID)
	m.cancelWatch = cancel
	b.cluster = m
	m.wg.Add(3)
	go m.heartbeat()
	go m.follow(events)
	go m.checkpointHWs()
	return nil
}

func (m *clusterMember) info() cluster.BrokerInfo {
	return cluster.BrokerInfo{ID: m.cfg.BrokerID, Host: m.cfg.Host, Port: m.cfg.Port}
}

// heartbeat keeps the registration alive; a broker the controller fenced
// (a pause longer than its session) registers again: its data is intact,
// so the registration is a clean one.
func (m *clusterMember) heartbeat() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.incMu.Lock()
		inc := m.incarnation
		m.incMu.Unlock()
		err := m.cfg.Controller.Heartbeat(context.Background(), m.cfg.BrokerID, inc)
		if errors.Is(err, cluster.ErrUnknownBroker) {
			if inc, err := m.cfg.Controller.RegisterBroker(context.Background(), m.info(), true); err == nil {
				m.incMu.Lock()
				m.incarnation = inc
				m.incMu.Unlock()
			}
		}
	}
}

// follow applies the controller's events in order until the broker closes.
func (m *clusterMember) follow(events <-chan cluster.Event) {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if err := m.apply(ev); err != nil && !errors.Is(err, ErrClosed) {
				m.cfg.Logger.Warn("commitlog: applying the controller's event", "broker", m.cfg.BrokerID, "event", ev.Kind, "topic", ev.Topic, "err", err)
			}
		}
	}
}

func (m *clusterMember) apply(ev cluster.Event) error {
	switch ev.Kind {
	case cluster.TopicCreated, cluster.PartitionsAdded:
		return m.openTopic(ev.Topic, ev.Partitions, ev.Config)
	case cluster.TopicConfigChanged:
		cfg, err := decodeTopicConfig(ev.Config)
		if err != nil {
			return err
		}
		_, err = m.b.alterTopicConfig(context.Background(), ev.Topic, func(c *TopicConfig) error {
			partitions, rf := c.Partitions, c.ReplicationFactor
			*c = cfg
			c.Partitions, c.ReplicationFactor = partitions, rf
			return nil
		}, alterHere)
		if errors.Is(err, ErrUnknownTopic) {
			err = nil // deleted since, or not opened here yet (it opens with the controller's config)
		}
		return err
	case cluster.PartitionChanged:
		p, err := m.partition(ev.Topic, ev.Partition)
		if err != nil {
			return err
		}
		return m.applyState(p, ev.State)
	case cluster.TopicDeleted:
		err := m.b.deleteTopic(context.Background(), ev.Topic)
		if errors.Is(err, ErrUnknownTopic) {
			err = nil
		}
		if err == nil {
			err = m.b.groups.forgetTopic(context.Background(), ev.Topic)
		}
		return err
	}
	return nil
}

func (m *clusterMember) partition(topic string, id int32) (*Partition, error) {
	t, err := m.b.Topic(topic)
	if err != nil {
		return nil, err
	}
	return t.Partition(id)
}

// openTopic opens the topic's partitions this broker does not have yet:
// a log and a replica for those it holds, a placeholder for the others;
// then applies each partition's state.
func (m *clusterMember) openTopic(name string, states []cluster.PartitionState, config []byte) error {
	b := m.b
	m.mu.Lock()
	pending := m.created[name]
	m.mu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	t, exists := b.topics[name]
	if !exists {
		cfg := TopicConfig{}
		if c, err := decodeTopicConfig(config); err == nil && len(config) > 0 {
			cfg = c // the controller's: the same on every broker
		} else if pending != nil {
			cfg = pending.cfg
		} else if rec, ok := b.recorded[name]; ok {
			cfg = rec
		}
		cfg = cfg.withDefaults(&b.opts)
		cfg.ReplicationFactor = int16(len(states[0].Replicas))
		if m := states[0].MinISR; m > 0 {
			cfg.MinInsyncReplicas = int(m) // the controller's, whoever created the topic
		}
		t = &Topic{name: name, cfg: cfg}
		t.parts.Store(new([]*Partition))
	}
	cur := *t.parts.Load()
	parts := slices.Clone(cur)
	for i := int32(len(cur)); i < int32(len(states)); i++ {
		p := &Partition{topic: t, id: i}
		if slices.Contains(states[i].Replicas, m.cfg.BrokerID) {
			var err error
			if p, err = b.openPartition(t, i); err != nil {
				b.mu.Unlock()
				closePartitions(parts[len(cur):])
				return err
			}
			if err := m.addReplica(p); err != nil {
				b.mu.Unlock()
				closePartitions(append(parts[len(cur):], p))
				return err
			}
		}
		parts = append(parts, p)
	}
	t.parts.Store(&parts)
	b.topics[name] = t
	err := b.saveTopicsLocked()
	b.mu.Unlock()
	for i, p := range parts {
		if p.repl != nil {
			err = errors.Join(err, m.applyState(p, states[i]))
		}
	}
	if pending != nil && !exists {
		close(pending.opened)
	}
	return err
}

// addReplica gives a partition whose log is open its replication state.
func (m *clusterMember) addReplica(p *Partition) error {
	epochs, err := replication.OpenEpochCacheFS(m.b.fs, filepath.Join(p.log.Dir(), replication.EpochCheckpointFile))
	if err != nil {
		return err
	}
	tp := cluster.TopicPartition{Topic: p.topic.name, Partition: p.id}
	r := replication.NewReplica(tp, m.cfg.BrokerID, replicaLog{p.log}, epochs, replication.Config{
		ReplicaLagTime:    m.cfg.ReplicaLagTime,
		MinInsyncReplicas: p.topic.config().MinInsyncReplicas,
	})
	r.OnHighWatermark(func(int64) { p.log.dataCh.broadcast() })
	if hw, ok := m.checkpointed[tp]; ok {
		r.InitHighWatermark(hw)
	}
	p.repl = r
	m.node.Add(r)
	return nil
}

// forget stops replicating a partition whose topic is deleted.
func (m *clusterMember) forget(p *Partition) {
	m.node.Remove(cluster.TopicPartition{Topic: p.topic.name, Partition: p.id})
}

// applyState makes the partition's replica follow the controller's
// decision, with appends held off while the role changes.
func (m *clusterMember) applyState(p *Partition, st cluster.PartitionState) error {
	if p.repl == nil {
		return nil
	}
	p.roleMu.Lock()
	err := m.node.Apply(cluster.TopicPartition{Topic: p.topic.name, Partition: p.id}, st)
	p.roleMu.Unlock()
	p.log.dataCh.broadcast() // the end consumers see may have moved
	if errors.Is(err, replication.ErrFencedLeaderEpoch) {
		return nil // an older decision arriving late
	}
	return err
}

// createTopic creates a topic through the controller and waits until this
// broker opened it.
func (m *clusterMember) createTopic(ctx context.Context, name string, cfg TopicConfig) (*Topic, error) {
	pending := &pendingTopic{cfg: cfg, opened: make(chan struct{})}
	m.mu.Lock()
	m.created[name] = pending
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.created, name)
		m.mu.Unlock()
	}()
	spec := cluster.TopicSpec{Partitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor, MinInsyncReplicas: cfg.MinInsyncReplicas}
	var err error
	if spec.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	if _, err = m.cfg.Controller.CreateTopicSpec(ctx, name, spec); err != nil {
		return nil, clusterError(err)
	}
	select {
	case <-pending.opened:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-m.stop:
		return nil, ErrClosed
	}
	return m.b.Topic(name)
}

// dropDeletedTopics removes the files of the topics this broker held that
// the controller no longer has: they were deleted while it was down (the
// controller's events open the others).
func (b *Broker) dropDeletedTopics(ctrl Controller) error {
	entries, err := b.fs.ReadDir(b.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		topic, _, isPart := layout.ParsePartitionDir(e.Name())
		if !e.IsDir() || !isPart || IsInternalTopic(topic) {
			continue
		}
		if _, ok := ctrl.Topic(topic); ok {
			continue
		}
		if err := b.removeDir(filepath.Join(b.dir, e.Name())); err != nil {
			return err
		}
		delete(b.recorded, topic) // topics.json drops it at its next write
	}
	return nil
}

// decodeTopicConfig reads a topic configuration as the controller keeps
// it (JSON, as topics.json).
func decodeTopicConfig(b []byte) (TopicConfig, error) {
	var cfg TopicConfig
	if len(b) == 0 {
		return cfg, nil
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("%w: topic configuration from the controller: %w", ErrInvalidConfig, err)
	}
	return cfg, nil
}

// alterTopicConfig changes a replicated topic's configuration through the
// controller, which hands it to every broker (this one too), and applies it
// here at once.
func (m *clusterMember) alterTopicConfig(ctx context.Context, name string, cur, next TopicConfig) error {
	data, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := m.cfg.Controller.SetTopicConfig(ctx, name, data); err != nil {
		return clusterError(err)
	}
	if next.MinInsyncReplicas != cur.MinInsyncReplicas {
		// The replicas follow the controller's min.insync.replicas (its
		// elections rely on it), which travels in the partitions' state.
		if err := m.cfg.Controller.SetMinISR(ctx, name, next.MinInsyncReplicas); err != nil {
			return clusterError(err)
		}
	}
	return nil
}

// clusterError maps the controller's errors onto the broker's.
func clusterError(err error) error {
	switch {
	case errors.Is(err, cluster.ErrTopicExists):
		return fmt.Errorf("%w: %w", ErrTopicExists, err)
	case errors.Is(err, cluster.ErrUnknownTopic):
		return fmt.Errorf("%w: %w", ErrUnknownTopic, err)
	case errors.Is(err, cluster.ErrInvalidReplication), errors.Is(err, cluster.ErrInvalidPartitionNum), errors.Is(err, cluster.ErrInvalidMinISR):
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return err
}

// leave stops following the controller; a clean close unregisters first,
// so that leadership moves away at once rather than after the session
// times out.
func (m *clusterMember) leave() error {
	var err error
	if !m.killed {
		m.incMu.Lock()
		inc := m.incarnation
		m.incMu.Unlock()
		err = m.cfg.Controller.UnregisterBroker(context.Background(), m.cfg.BrokerID, inc)
	}
	close(m.stop)
	m.cancelWatch()
	m.wg.Wait()
	err = errors.Join(err, m.node.Close())
	if !m.killed {
		err = errors.Join(err, m.b.writeHWCheckpoint())
	}
	return err
}

// checkpointHWs writes the high-watermark checkpoint every
// hwCheckpointInterval until the broker closes.
func (m *clusterMember) checkpointHWs() {
	defer m.wg.Done()
	t := time.NewTicker(hwCheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			if err := m.b.writeHWCheckpoint(); err != nil {
				m.cfg.Logger.Warn("commitlog: high-watermark checkpoint", "broker", m.cfg.BrokerID, "err", err)
			}
		}
	}
}

// replicaLog is a Log as replication drives it.
type replicaLog struct{ *Log }

func (l replicaLog) Truncate(offset int64) error {
	_, err := l.Log.Truncate(offset)
	return err
}

func (l replicaLog) Wait(ctx context.Context, offset int64) error { return l.WaitData(ctx, offset) }

// validateTopicConfig checks a topic configuration, defaults filled in, for
// this broker: a single broker holds one replica of each partition; a
// cluster's topics default to three replicas, or one per live broker when
// there are fewer. The broker's internal topics have one replica on every
// broker (they are not replicated yet).
func (b *Broker) validateTopicConfig(name string, cfg *TopicConfig) error {
	if b.opts.Cluster != nil && cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = 1
		if !IsInternalTopic(name) {
			cfg.ReplicationFactor = int16(min(3, max(1, len(b.opts.Cluster.Controller.Brokers()))))
		}
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.ReplicationFactor != 1 && (b.opts.Cluster == nil || IsInternalTopic(name)) {
		return fmt.Errorf("%w: TopicConfig.ReplicationFactor %d: a single broker, and a cluster's internal topics, hold one replica", ErrInvalidConfig, cfg.ReplicationFactor)
	}
	return nil
}

// addPartitions raises a topic's partition count through the controller
// and waits until this broker opened the new partitions.
func (m *clusterMember) addPartitions(ctx context.Context, name string, total int32) error {
	t, err := m.b.Topic(name)
	if err != nil {
		return err
	}
	if total <= t.NumPartitions() {
		return fmt.Errorf("%w: %s has %d partitions, cannot go to %d", ErrInvalidConfig, name, t.NumPartitions(), total)
	}
	states, err := m.cfg.Controller.CreatePartitions(ctx, name, total)
	if err != nil {
		return clusterError(err)
	}
	// The controller's event opens them too; opening is idempotent and
	// applying an older state is refused by the replica.
	return m.openTopic(name, states, nil)
}

// markCleanShutdown records that every log closed cleanly, so that the
// next registration tells the controller this broker lost nothing.
func (b *Broker) markCleanShutdown() error {
	return vfs.WriteFileAtomic(b.fs, filepath.Join(b.dir, layout.CleanShutdownFile), nil, 0o644)
}

// takeCleanShutdown reports whether the broker's last stop was clean, and
// removes the mark: a crash from here on is not.
func (b *Broker) takeCleanShutdown() (bool, error) {
	name := filepath.Join(b.dir, layout.CleanShutdownFile)
	if _, err := b.fs.Stat(name); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	if err := b.fs.Remove(name); err != nil {
		return false, err
	}
	return true, b.fs.SyncDir(b.dir)
}

// ReplicaHandler returns what this broker serves to the brokers that
// follow it, for a transport that delivers their requests by calling it
// (replication.MemNetwork); nil on a single broker. The Kafka server
// serves the same requests over TCP by itself.
func (b *Broker) ReplicaHandler() replication.Handler {
	if b.cluster == nil {
		return nil
	}
	return b.cluster.node
}
