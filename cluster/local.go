package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/streamkit/commitlog/internal/invariants"
)

// DefaultSessionTimeout is LocalConfig.SessionTimeout's default.
const DefaultSessionTimeout = time.Second

// LocalConfig configures a Local controller. The zero value works.
type LocalConfig struct {
	// SessionTimeout is how long a broker may go without a heartbeat
	// before Tick fences it and moves its leaderships (Kafka's
	// broker.session.timeout.ms). Zero or negative means
	// DefaultSessionTimeout, 1 s, which with Run keeps a failover under
	// 1.25 s after the last heartbeat.
	SessionTimeout time.Duration
	// UncleanLeaderElection lets a partition none of whose in-sync or
	// eligible (ELR) replicas is alive elect any live replica, with an ISR
	// of just that replica and an empty ELR (Kafka's
	// unclean.leader.election.enable). The records the new leader lacks
	// are lost, and the replicas that had them truncate to the new
	// leader's log when they return. Default false: such a partition stays
	// without a leader (unavailable) until an ISR or ELR member comes back
	// after a clean stop.
	UncleanLeaderElection bool
	// Now is the clock Heartbeat, RegisterBroker and Run read. Default
	// time.Now. Tests set it and call Tick themselves.
	Now func() time.Time
}

// Local is the in-process controller: the metadata authority for every
// broker of a cluster that lives in one process. It holds the registered
// brokers and their sessions, the topics and the state of each partition
// (replicas, ISR, leader, epochs), elects leaders when brokers come and
// go, accepts ISR changes from leaders (AlterISR), and tells watchers
// about every change.
//
// Every method is safe for concurrent use. State changes happen under one
// mutex and are delivered to each watcher in the order they happened.
//
// Epoch rules: every change of a partition's leader (to NoLeader
// included) bumps its LeaderEpoch; every change of its leader, ISR or ELR
// bumps its PartitionEpoch. Both only grow.
//
// Eligible leader replicas (KIP-966, simplified): each topic has a
// min.insync.replicas (TopicSpec.MinInsyncReplicas, PartitionState.MinISR)
// and the replication layer never advances the high watermark while a
// partition's ISR is smaller, so every replica that was in the ISR when it
// fell below the minimum holds every acknowledged record. The controller
// keeps them in PartitionState.ELR:
//
//   - a broker that leaves an ISR (a leader's AlterISR shrink, fencing by
//     Tick, UnregisterBroker, re-registration after a clean stop) while
//     the ISR is, or becomes, smaller than MinISR joins the ELR;
//   - a broker that registers after an unclean stop leaves every ISR and
//     every ELR: it may have lost bytes;
//   - a fenced or shut down broker stays in the ELR, and a clean
//     re-registration keeps it there;
//   - a broker added to the ISR leaves the ELR, and the ELR is cleared as
//     soon as the ISR has MinISR members again;
//   - a partition with no live ISR member elects its first live ELR member
//     in replica order, whose ISR becomes just itself; it leaves the ELR,
//     the rest of the ELR stays, and the ISR members it replaces (none
//     live, all stopped cleanly) join the ELR. Only when no ISR or ELR
//     member is live does the partition stay without a leader (or, with
//     UncleanLeaderElection, elect any live replica and clear the ELR).
//
// With MinISR 1 (CreateTopic's default) the ELR is always empty: an ISR
// is smaller than 1 only when an unclean restart emptied it.
//
// Time: brokers are fenced only by Tick, which compares each broker's last
// heartbeat with the time it is given. Run calls Tick on a ticker; tests
// call it with their own clock instead. Local starts no goroutine of its
// own apart from one per watcher; Close joins them, and makes Run return
// and waits for it.
type Local struct {
	cfg  LocalConfig
	done chan struct{} // closed by Close: Run returns
	runs sync.WaitGroup

	mu           sync.Mutex
	closed       bool
	brokers      map[int32]*registration
	incarnation  int64                       // the last incarnation handed out
	topics       map[string][]PartitionState // indexed by partition id
	configs      map[string][]byte           // topic configurations, opaque
	topicsMade   int                         // topics ever created: varies placement
	watchers     map[*watcher]struct{}
	uncleanEmpty map[TopicPartition]bool // ISRs emptied by an unclean restart, for checkLocked
}

var _ ISRUpdater = (*Local)(nil)

// registration is a broker as the controller knows it. It outlives the
// broker's session: a fenced or shut down broker keeps its entry (and may
// stay the last member of ISRs) until it registers again.
type registration struct {
	info          BrokerInfo
	incarnation   int64
	lastHeartbeat time.Time
	live          bool // registered and neither fenced nor shut down
}

// NewLocal returns a controller with no broker and no topic.
func NewLocal(cfg LocalConfig) *Local {
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Local{
		cfg:          cfg,
		done:         make(chan struct{}),
		brokers:      make(map[int32]*registration),
		topics:       make(map[string][]PartitionState),
		configs:      make(map[string][]byte),
		watchers:     make(map[*watcher]struct{}),
		uncleanEmpty: make(map[TopicPartition]bool),
	}
}

// RegisterBroker starts a new incarnation of broker info.ID and returns
// its incarnation number, which its heartbeats must carry. Incarnations
// only grow, across all brokers.
//
// A previous incarnation of the same id that is still live is fenced: its
// heartbeats fail with ErrUnknownBroker, its leaderships move to other
// live ISR members and it leaves the ISRs (staying as the last member
// where it is one, joining the ELR where the ISR is or becomes smaller
// than MinISR).
//
// cleanShutdown says whether the broker's previous stop was clean (its
// logs were synced and closed). When it was not, the broker may have lost
// bytes it had acknowledged as in sync, so it is removed from every ISR,
// even where it is the last member (leaving that ISR empty), and from
// every ELR: as in Kafka's KIP-966, it can neither lead nor count as in
// sync until a leader adds it back through AlterISR after it caught up. A
// partition whose ISR it empties elects a live ELR member if there is
// one, else stays without a leader. After a clean stop it keeps its place
// as the last ISR member and in the ELRs, and partitions without a leader
// whose remaining ISR member, or first live ELR member, it is elect it.
func (c *Local) RegisterBroker(ctx context.Context, info BrokerInfo, cleanShutdown bool) (incarnation int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if info.ID < 0 {
		return 0, fmt.Errorf("%w: %d", ErrInvalidBroker, info.ID)
	}
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrControllerClosed
	}
	r := c.brokers[info.ID]
	if r == nil {
		r = &registration{}
		c.brokers[info.ID] = r
	}
	wasLive := r.live
	r.live = false
	if wasLive || !cleanShutdown {
		c.leaveISRsLocked(info.ID, cleanShutdown)
	}
	c.incarnation++
	*r = registration{info: info, incarnation: c.incarnation, lastHeartbeat: now, live: true}
	c.brokersChangedLocked()
	c.electLeadersLocked()
	c.checkLocked()
	return r.incarnation, nil
}

// Heartbeat renews the session of broker id's incarnation. It fails with
// ErrUnknownBroker when that incarnation is not the live one: replaced by
// a newer one, fenced by Tick or shut down; the broker must then register
// again.
func (c *Local) Heartbeat(ctx context.Context, id int32, incarnation int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrControllerClosed
	}
	r, err := c.liveLocked(id, incarnation)
	if err != nil {
		return err
	}
	if now.After(r.lastHeartbeat) {
		r.lastHeartbeat = now
	}
	return nil
}

// UnregisterBroker is a clean shutdown of broker id's incarnation (Kafka's
// controlled shutdown): the leadership of each partition it leads moves to
// another live ISR member, preferring replica order, and it leaves every
// ISR where it is not the last member, joining the ELR where the ISR is or
// becomes smaller than MinISR. Where it is the last member it stays in the
// ISR; the partition elects a live ELR member if there is one (and the
// broker moves to the ELR), else is left without a leader until it comes
// back (or, with UncleanLeaderElection, another live replica is elected).
func (c *Local) UnregisterBroker(ctx context.Context, id int32, incarnation int64) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	r, err := c.liveLocked(id, incarnation)
	if err != nil {
		return err
	}
	r.live = false
	c.leaveISRsLocked(id, true)
	c.brokersChangedLocked()
	c.electLeadersLocked()
	c.checkLocked()
	return nil
}

// Brokers returns the live brokers (registered, neither fenced nor shut
// down), sorted by id.
func (c *Local) Brokers() []BrokerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.liveBrokersLocked()
}

// Tick fences every live broker whose last heartbeat is more than
// SessionTimeout before now, exactly as if it had shut down cleanly except
// that it need not say so: its leaderships move to other live ISR members
// (in replica order), bumping LeaderEpoch and PartitionEpoch, and it
// leaves the ISRs (joining the ELR where the ISR is or becomes smaller
// than MinISR), staying as the last member where it is one (the partition
// then elects a live ELR member, or has no leader). With
// UncleanLeaderElection, every partition left without a leader and with no
// live ISR or ELR member elects its first live replica, whose ISR becomes
// just itself: a named loss of the records only the old ISR had.
//
// Tick is deterministic: the outcome depends only on now and the calls
// before it.
func (c *Local) Tick(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	var expired []int32
	for id, r := range c.brokers {
		if r.live && now.Sub(r.lastHeartbeat) > c.cfg.SessionTimeout {
			expired = append(expired, id)
		}
	}
	slices.Sort(expired)
	for _, id := range expired {
		c.brokers[id].live = false
		c.leaveISRsLocked(id, true)
	}
	if len(expired) > 0 {
		c.brokersChangedLocked()
	}
	c.electLeadersLocked()
	c.checkLocked()
}

// Run calls Tick with cfg.Now every SessionTimeout/4 until ctx is done or
// the controller is closed. It is optional: a caller that drives time
// itself calls Tick instead. Close waits for Run to return.
func (c *Local) Run(ctx context.Context) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.runs.Add(1)
	c.mu.Unlock()
	defer c.runs.Done()
	t := time.NewTicker(max(c.cfg.SessionTimeout/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-t.C:
			c.Tick(c.cfg.Now())
		}
	}
}

// Close stops every watcher (closing their channels) and waits for their
// goroutines and for Run to return. Later changes fail with
// ErrControllerClosed; reads keep answering from the last state. Close is
// idempotent and always returns nil.
func (c *Local) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.runs.Wait()
		return nil
	}
	c.closed = true
	close(c.done)
	ws := slices.Collect(maps.Keys(c.watchers))
	clear(c.watchers)
	c.mu.Unlock()
	for _, w := range ws {
		w.stop()
	}
	c.runs.Wait()
	return nil
}

// CreateTopic is CreateTopicSpec with MinInsyncReplicas 1, Kafka's
// default.
func (c *Local) CreateTopic(ctx context.Context, name string, partitions int32, replicationFactor int16) ([]PartitionState, error) {
	return c.CreateTopicSpec(ctx, name, TopicSpec{Partitions: partitions, ReplicationFactor: replicationFactor, MinInsyncReplicas: 1})
}

// CreateTopicSpec creates topic name with spec.Partitions partitions, each
// with spec.ReplicationFactor replicas placed on the live brokers as
// Kafka's rack-unaware assignment does (see assignReplicas): leaders
// round-robin from a start that varies per topic, followers on the next
// brokers with a shift, so that leadership and replicas spread evenly.
// Each partition starts with its first replica as leader, the replicas as
// ISR, an empty ELR, MinISR spec.MinInsyncReplicas (0 meaning 1) and both
// epochs 0.
//
// Errors: ErrInvalidTopic for a name Kafka would refuse (empty, ".",
// "..", over 249 bytes, or a byte outside [a-zA-Z0-9._-]),
// ErrInvalidPartitionNum when partitions < 1, ErrInvalidReplication when
// the replication factor is < 1 or exceeds the live brokers,
// ErrInvalidMinISR when MinInsyncReplicas is negative or exceeds the
// replication factor, ErrTopicExists.
func (c *Local) CreateTopicSpec(ctx context.Context, name string, spec TopicSpec) ([]PartitionState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateTopicName(name); err != nil {
		return nil, err
	}
	partitions, replicationFactor := spec.Partitions, spec.ReplicationFactor
	if partitions < 1 {
		return nil, fmt.Errorf("%w: %d partitions for topic %q", ErrInvalidPartitionNum, partitions, name)
	}
	minISR := spec.MinInsyncReplicas
	if minISR == 0 {
		minISR = 1
	}
	if minISR < 1 || (replicationFactor >= 1 && minISR > int(replicationFactor)) {
		return nil, fmt.Errorf("%w: %d for topic %q with replication factor %d", ErrInvalidMinISR, spec.MinInsyncReplicas, name, replicationFactor)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrControllerClosed
	}
	if _, ok := c.topics[name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	live := c.liveIDsLocked()
	if replicationFactor < 1 || int(replicationFactor) > len(live) {
		return nil, fmt.Errorf("%w: replication factor %d, %d live brokers", ErrInvalidReplication, replicationFactor, len(live))
	}
	n := len(live)
	start, shift := c.topicsMade%n, c.topicsMade/n%n
	c.topicsMade++
	parts := make([]PartitionState, partitions)
	for p, replicas := range assignReplicas(live, 0, int(partitions), int(replicationFactor), start, shift) {
		parts[p] = PartitionState{Replicas: replicas, ISR: slices.Clone(replicas), Leader: replicas[0], MinISR: int32(minISR)}
	}
	c.topics[name] = parts
	c.configs[name] = slices.Clone(spec.Config)
	c.emitLocked(Event{Kind: TopicCreated, Topic: name, Partitions: parts, Config: spec.Config})
	c.checkLocked()
	return cloneStates(parts), nil
}

// CreatePartitions grows topic name to total partitions. The new ones get
// the replication factor and MinISR of partition 0, placed as CreateTopic does and
// continuing from where partition 0's leader sits among the live brokers
// (Kafka's rule). It returns every partition's state.
//
// Errors: ErrUnknownTopic, ErrInvalidPartitionNum when total is not above
// the current count, ErrInvalidReplication when fewer brokers are live
// than the replication factor.
func (c *Local) CreatePartitions(ctx context.Context, name string, total int32) ([]PartitionState, error) {
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	parts, ok := c.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	if int(total) <= len(parts) {
		return nil, fmt.Errorf("%w: topic %q has %d partitions, asked for %d", ErrInvalidPartitionNum, name, len(parts), total)
	}
	rf := len(parts[0].Replicas)
	live := c.liveIDsLocked()
	if rf > len(live) {
		return nil, fmt.Errorf("%w: replication factor %d, %d live brokers", ErrInvalidReplication, rf, len(live))
	}
	start := max(slices.Index(live, parts[0].Replicas[0]), 0)
	for _, replicas := range assignReplicas(live, len(parts), int(total)-len(parts), rf, start, start) {
		parts = append(parts, PartitionState{Replicas: replicas, ISR: slices.Clone(replicas), Leader: replicas[0], MinISR: parts[0].MinISR})
	}
	c.topics[name] = parts
	c.emitLocked(Event{Kind: PartitionsAdded, Topic: name, Partitions: parts})
	c.checkLocked()
	return cloneStates(parts), nil
}

// DeleteTopic removes topic name. Errors: ErrUnknownTopic.
func (c *Local) DeleteTopic(ctx context.Context, name string) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	parts, ok := c.topics[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	delete(c.topics, name)
	delete(c.configs, name)
	for p := range parts {
		delete(c.uncleanEmpty, TopicPartition{name, int32(p)})
	}
	c.emitLocked(Event{Kind: TopicDeleted, Topic: name})
	return nil
}

// lock takes c.mu for a change, unless ctx is done or the controller is
// closed; when it returns nil the caller holds c.mu and unlocks it.
func (c *Local) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrControllerClosed
	}
	return nil
}

// SetTopicConfig replaces topic name's configuration (opaque to the
// controller) and tells every broker (TopicConfigChanged).
func (c *Local) SetTopicConfig(ctx context.Context, name string, config []byte) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if _, ok := c.topics[name]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	c.configs[name] = slices.Clone(config)
	c.emitLocked(Event{Kind: TopicConfigChanged, Topic: name, Config: config})
	return nil
}

// SetMinISR changes topic name's min.insync.replicas (n in [1, replication
// factor]) on every partition: a partition whose ISR now reaches the
// minimum loses its eligible leader replicas (they were needed only below
// it); raising the minimum over a smaller ISR makes no replica newly
// eligible. Each partition's PartitionEpoch moves and watchers see it.
func (c *Local) SetMinISR(ctx context.Context, name string, n int) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	parts, ok := c.topics[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	if n < 1 || n > len(parts[0].Replicas) {
		return fmt.Errorf("%w: %d for topic %q with replication factor %d", ErrInvalidMinISR, n, name, len(parts[0].Replicas))
	}
	for p := range parts {
		st := &parts[p]
		if st.minISR() == n {
			continue
		}
		st.MinISR = int32(n)
		if len(st.ISR) >= n {
			st.ELR = nil
		}
		st.PartitionEpoch++
		c.emitLocked(Event{Kind: PartitionChanged, Topic: name, Partition: int32(p), State: *st})
	}
	c.checkLocked()
	return nil
}

// TopicConfig returns topic name's configuration as last set.
func (c *Local) TopicConfig(name string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.topics[name]; !ok {
		return nil, false
	}
	return slices.Clone(c.configs[name]), true
}

// Topic returns a copy of every partition's state of topic name, indexed
// by partition id.
func (c *Local) Topic(name string) ([]PartitionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	parts, ok := c.topics[name]
	if !ok {
		return nil, false
	}
	return cloneStates(parts), true
}

// Topics returns the names of the topics, sorted.
func (c *Local) Topics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.topics))
}

// Partition returns a copy of one partition's state.
func (c *Local) Partition(tp TopicPartition) (PartitionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.partitionLocked(tp)
	if st == nil {
		return PartitionState{}, false
	}
	return st.Clone(), true
}

// AlterISR implements ISRUpdater (Kafka's AlterPartition): the leader of
// tp proposes a new ISR. The proposal is accepted only from the current
// leader at the current LeaderEpoch and PartitionEpoch (ErrStaleState
// otherwise, returned with the state in force so that the leader can
// catch up). The ISR must contain the leader, list only replicas, each
// once, and may add only live brokers (ErrInvalidISR otherwise). It is
// stored in replica order. The brokers it adds leave the ELR; when it has
// fewer than MinISR members the brokers it removes join the ELR, and when
// it has at least MinISR the ELR is cleared. If the state changes its
// PartitionEpoch is bumped and watchers are told. The state now in force
// is returned.
func (c *Local) AlterISR(ctx context.Context, tp TopicPartition, leader int32, leaderEpoch, partitionEpoch int32, isr []int32) (PartitionState, error) {
	if err := c.lock(ctx); err != nil {
		return PartitionState{}, err
	}
	defer c.mu.Unlock()
	st := c.partitionLocked(tp)
	if st == nil {
		return PartitionState{}, fmt.Errorf("%w: %s-%d", ErrUnknownTopic, tp.Topic, tp.Partition)
	}
	if leader == NoLeader || leader != st.Leader || leaderEpoch != st.LeaderEpoch || partitionEpoch != st.PartitionEpoch {
		return st.Clone(), fmt.Errorf("%w: %s-%d: proposal from leader %d at epochs %d/%d, state is leader %d at %d/%d",
			ErrStaleState, tp.Topic, tp.Partition, leader, leaderEpoch, partitionEpoch, st.Leader, st.LeaderEpoch, st.PartitionEpoch)
	}
	for i, id := range isr {
		switch {
		case !slices.Contains(st.Replicas, id):
			return st.Clone(), fmt.Errorf("%w: %s-%d: broker %d is not a replica (replicas %v)", ErrInvalidISR, tp.Topic, tp.Partition, id, st.Replicas)
		case slices.Contains(isr[:i], id):
			return st.Clone(), fmt.Errorf("%w: %s-%d: broker %d listed twice in %v", ErrInvalidISR, tp.Topic, tp.Partition, id, isr)
		case !st.InSync(id) && !c.isLiveLocked(id):
			return st.Clone(), fmt.Errorf("%w: %s-%d: broker %d is fenced or shut down and cannot join the ISR", ErrInvalidISR, tp.Topic, tp.Partition, id)
		}
	}
	if !slices.Contains(isr, leader) {
		return st.Clone(), fmt.Errorf("%w: %s-%d: ISR %v lacks the leader %d", ErrInvalidISR, tp.Topic, tp.Partition, isr, leader)
	}
	ordered := make([]int32, 0, len(isr))
	for _, id := range st.Replicas {
		if slices.Contains(isr, id) {
			ordered = append(ordered, id)
		}
	}
	elr := slices.Clone(st.ELR)
	if len(ordered) < st.minISR() {
		for _, id := range st.ISR {
			if !slices.Contains(ordered, id) {
				elr = append(elr, id)
			}
		}
	}
	c.setLocked(tp, st, st.Leader, ordered, elr)
	c.checkLocked()
	return st.Clone(), nil
}

// Watch returns a channel of every metadata change from now on, in order
// and never dropped (the controller queues them without bound for a slow
// receiver), starting with a snapshot: one TopicCreated event per
// existing topic, in name order. The live brokers at that moment are
// Brokers(). Events are not filtered: brokerID names the watcher (the
// broker whose metadata cache it feeds).
//
// cancel stops the delivery, drops what is still queued, closes the
// channel and waits for the goroutine feeding it; it is idempotent. Close
// cancels every watch. Watch on a closed controller returns a closed
// channel.
func (c *Local) Watch(brokerID int32) (events <-chan Event, cancel func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		ch := make(chan Event)
		close(ch)
		return ch, func() {}
	}
	var snapshot []Event
	for _, name := range slices.Sorted(maps.Keys(c.topics)) {
		snapshot = append(snapshot, Event{Kind: TopicCreated, Topic: name, Partitions: c.topics[name], Config: c.configs[name]}.clone())
	}
	w := newWatcher(snapshot)
	c.watchers[w] = struct{}{}
	return w.out, func() {
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
		w.stop()
	}
}

// liveLocked returns broker id's registration when incarnation is its
// live one.
func (c *Local) liveLocked(id int32, incarnation int64) (*registration, error) {
	r := c.brokers[id]
	if r == nil || !r.live || r.incarnation != incarnation {
		return nil, fmt.Errorf("%w: broker %d incarnation %d", ErrUnknownBroker, id, incarnation)
	}
	return r, nil
}

func (c *Local) isLiveLocked(id int32) bool {
	r := c.brokers[id]
	return r != nil && r.live
}

func (c *Local) liveIDsLocked() []int32 {
	var ids []int32
	for id, r := range c.brokers {
		if r.live {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (c *Local) liveBrokersLocked() []BrokerInfo {
	var out []BrokerInfo
	for _, id := range c.liveIDsLocked() {
		out = append(out, c.brokers[id].info)
	}
	return out
}

func (c *Local) partitionLocked(tp TopicPartition) *PartitionState {
	parts, ok := c.topics[tp.Topic]
	if !ok || tp.Partition < 0 || int(tp.Partition) >= len(parts) {
		return nil
	}
	return &parts[tp.Partition]
}

// eachPartitionLocked calls fn for every partition, topics in name order.
func (c *Local) eachPartitionLocked(fn func(tp TopicPartition, st *PartitionState)) {
	for _, name := range slices.Sorted(maps.Keys(c.topics)) {
		parts := c.topics[name]
		for p := range parts {
			fn(TopicPartition{name, int32(p)}, &parts[p])
		}
	}
}

// leaveISRsLocked takes broker id, which is no longer live, out of every
// ISR and elects new leaders where it led. If clean (a clean stop, a
// fencing, a re-registration after a clean stop) its data is intact: it
// stays where it is the last member, joins the ELR where the ISR is or
// becomes smaller than MinISR, and keeps its ELR memberships. Otherwise (a
// restart after an unclean stop) it leaves every ISR, even as the last
// member, and every ELR.
func (c *Local) leaveISRsLocked(id int32, clean bool) {
	c.eachPartitionLocked(func(tp TopicPartition, st *PartitionState) {
		inELR := slices.Contains(st.ELR, id)
		if !st.InSync(id) && (clean || !inELR) {
			return
		}
		isr := without(st.ISR, id)
		elr := slices.Clone(st.ELR)
		switch {
		case !clean:
			elr = without(elr, id)
			if len(isr) == 0 {
				c.uncleanEmpty[tp] = true
			}
		case len(isr) == 0:
			isr = st.ISR // the last member stays
		case len(isr) < st.minISR():
			elr = append(elr, id)
		}
		c.electLocked(tp, st, isr, elr)
	})
}

// without returns a copy of ids without id.
func without(ids []int32, id int32) []int32 {
	return slices.DeleteFunc(slices.Clone(ids), func(r int32) bool { return r == id })
}

// electLeadersLocked elects a leader for every partition that has none.
func (c *Local) electLeadersLocked() {
	c.eachPartitionLocked(func(tp TopicPartition, st *PartitionState) {
		if st.Leader == NoLeader || !c.isLiveLocked(st.Leader) {
			c.electLocked(tp, st, st.ISR, st.ELR)
		}
	})
}

// electLocked gives partition tp the ISR isr, the ELR elr and the leader
// that goes with them: the current leader if it is live and in isr, else
// the first replica (in replica order) that is live and in isr, else the
// first live replica in elr, with an ISR of just itself (the members of
// isr, none live, join the ELR), else, with UncleanLeaderElection, the
// first live replica with an ISR of just itself and no ELR, else NoLeader.
func (c *Local) electLocked(tp TopicPartition, st *PartitionState, isr, elr []int32) {
	firstLive := func(set []int32) int32 {
		for _, r := range st.Replicas {
			if c.isLiveLocked(r) && slices.Contains(set, r) {
				return r
			}
		}
		return NoLeader
	}
	leader := firstLive(isr)
	if st.Leader != NoLeader && c.isLiveLocked(st.Leader) && slices.Contains(isr, st.Leader) {
		leader = st.Leader
	}
	if leader == NoLeader {
		if leader = firstLive(elr); leader != NoLeader {
			elr = append(without(elr, leader), isr...)
			isr = []int32{leader}
		}
	}
	if leader == NoLeader && c.cfg.UncleanLeaderElection {
		if leader = firstLive(st.Replicas); leader != NoLeader {
			isr, elr = []int32{leader}, nil
		}
	}
	c.setLocked(tp, st, leader, isr, elr)
}

// setLocked changes partition tp's leader, ISR and ELR, bumping the epochs
// as the rules say and telling the watchers, when any differs. The ELR is
// normalized: replica order, no ISR member, empty when the ISR has at
// least MinISR members.
func (c *Local) setLocked(tp TopicPartition, st *PartitionState, leader int32, isr, elr []int32) {
	var normal []int32
	if len(isr) < st.minISR() {
		for _, r := range st.Replicas {
			if slices.Contains(elr, r) && !slices.Contains(isr, r) {
				normal = append(normal, r)
			}
		}
	}
	if leader == st.Leader && slices.Equal(isr, st.ISR) && slices.Equal(normal, st.ELR) {
		return
	}
	if leader != st.Leader {
		st.Leader = leader
		st.LeaderEpoch++
	}
	if len(isr) > 0 {
		delete(c.uncleanEmpty, tp)
	}
	st.ISR = slices.Clone(isr)
	st.ELR = normal
	st.PartitionEpoch++
	invariants.Check(st.Validate() == nil, "%s-%d: %v", tp.Topic, tp.Partition, st.Validate())
	c.emitLocked(Event{Kind: PartitionChanged, Topic: tp.Topic, Partition: tp.Partition, State: *st})
}

func (c *Local) brokersChangedLocked() {
	c.emitLocked(Event{Kind: BrokersChanged, Brokers: c.liveBrokersLocked()})
}

// emitLocked queues a copy of e for every watcher.
func (c *Local) emitLocked(e Event) {
	for w := range c.watchers {
		w.push(e.clone())
	}
}

// checkLocked verifies the controller's invariants when built with
// -tags invariants (tests call checkInvariantsLocked directly).
func (c *Local) checkLocked() {
	if invariants.Enabled {
		err := c.checkInvariantsLocked()
		invariants.Check(err == nil, "%v", err)
	}
}

// checkInvariantsLocked returns the first violated invariant:
//
//   - every partition state passes PartitionState.Validate;
//   - every replica is a broker that registered at some point;
//   - a leader is live;
//   - MinISR is between 1 and the replication factor, the same for every
//     partition of a topic;
//   - a partition without a leader has no live ISR or ELR member (it
//     would have been elected) and, with UncleanLeaderElection, no live
//     replica;
//   - an ISR is empty only after an unclean restart of its last member,
//     until a leader puts members back.
func (c *Local) checkInvariantsLocked() error {
	var err error
	c.eachPartitionLocked(func(tp TopicPartition, st *PartitionState) {
		if err != nil {
			return
		}
		fail := func(format string, args ...any) {
			err = fmt.Errorf("cluster: %s-%d %+v: %s", tp.Topic, tp.Partition, *st, fmt.Sprintf(format, args...))
		}
		if verr := st.Validate(); verr != nil {
			fail("%v", verr)
			return
		}
		for _, r := range st.Replicas {
			if c.brokers[r] == nil {
				fail("replica %d never registered", r)
				return
			}
		}
		if first := c.topics[tp.Topic][0].MinISR; st.MinISR < 1 || st.MinISR != first {
			fail("min ISR %d (partition 0: %d)", st.MinISR, first)
			return
		}
		switch {
		case st.Leader != NoLeader && !c.isLiveLocked(st.Leader):
			fail("leader %d is not live", st.Leader)
		case st.Leader == NoLeader && slices.ContainsFunc(st.ISR, c.isLiveLocked):
			fail("no leader though an ISR member is live")
		case st.Leader == NoLeader && slices.ContainsFunc(st.ELR, c.isLiveLocked):
			fail("no leader though an ELR member is live")
		case st.Leader == NoLeader && c.cfg.UncleanLeaderElection && slices.ContainsFunc(st.Replicas, c.isLiveLocked):
			fail("no leader though a replica is live and unclean election is on")
		case len(st.ISR) == 0 && !c.uncleanEmpty[tp]:
			fail("empty ISR not caused by an unclean restart")
		}
	})
	return err
}

func cloneStates(parts []PartitionState) []PartitionState {
	out := make([]PartitionState, len(parts))
	for i, p := range parts {
		out[i] = p.Clone()
	}
	return out
}

// validateTopicName applies Kafka's rules for topic names.
func validateTopicName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '-') {
			return fmt.Errorf("%w: %q has %q at %d", ErrInvalidTopic, name, b, i)
		}
	}
	return nil
}
