package replication

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/internal/invariants"
)

// Log is one partition's local log as replication drives it; the root
// package's partitions satisfy it. Its methods must be safe for concurrent
// use, and must not call back into the Replica (Replica holds its own lock
// while it calls them).
type Log interface {
	// StartOffset is the first offset still in the log.
	StartOffset() int64
	// EndOffset is the log end offset (LEO): the offset the next record
	// gets.
	EndOffset() int64
	// ReadBatches appends to dst whole batches from the one holding
	// offset, at most maxBytes of them but at least one when offset <
	// EndOffset(). It returns an error wrapping ErrOffsetOutOfRange outside
	// [StartOffset(), EndOffset()].
	ReadBatches(dst []byte, offset int64, maxBytes int) ([]byte, error)
	// AppendReplicated appends batches exactly as the leader sent them,
	// keeping their base offsets and partition leader epochs; the first
	// must start at EndOffset(). It returns the new end offset.
	AppendReplicated(batches []byte) (int64, error)
	// Truncate removes every record at or after offset (a no-op when
	// offset >= EndOffset()). A batch straddling offset may be removed
	// whole, leaving EndOffset() below offset.
	Truncate(offset int64) error
	// Wait blocks until EndOffset() > offset, or ctx is done.
	Wait(ctx context.Context, offset int64) error
	// SetLeaderEpoch sets the epoch stamped on the batches this broker
	// appends as leader.
	SetLeaderEpoch(epoch int32)
}

// LogResetter is an optional interface of Log. A follower whose log end is
// below the leader's log start (the leader deleted what the follower
// lacks) empties its log and restarts it at the leader's start offset
// (Kafka's truncateFullyAndStartAt). Without it such a follower cannot
// catch up and keeps retrying.
type LogResetter interface {
	// ResetTo removes every record and makes offset both the start and
	// the end offset of the log.
	ResetTo(offset int64) error
}

// Config tunes the replication of partitions. The zero value gives Kafka's
// defaults.
type Config struct {
	// ReplicaLagTime is how long a follower may go without catching up to
	// the leader's log end before it leaves the ISR (Kafka
	// replica.lag.time.max.ms). 0 means 10s.
	ReplicaLagTime time.Duration
	// MinInsyncReplicas is the smallest ISR, leader included, for which
	// acks=all writes are accepted and the high watermark advances (Kafka
	// min.insync.replicas). 0 means 1.
	MinInsyncReplicas int
}

// Defaults of Config.
const (
	DefaultReplicaLagTime = 10 * time.Second
)

func (c Config) withDefaults() Config {
	if c.ReplicaLagTime <= 0 {
		c.ReplicaLagTime = DefaultReplicaLagTime
	}
	if c.MinInsyncReplicas <= 0 {
		c.MinInsyncReplicas = 1
	}
	return c
}

// role is what this broker is for the partition.
type role uint8

const (
	roleNone     role = iota // no state applied yet
	roleLeader               // st.Leader == self
	roleFollower             // another broker (or none) leads
)

// peer is the leader's view of one follower (Kafka's Replica state).
type peer struct {
	leo                int64     // fetch offset of its last fetch; -1 until it fetches in this epoch
	lastCaughtUp       time.Time // last time its LEO reached the leader's LEO (see FollowerFetch)
	lastFetch          time.Time // time of its previous fetch
	lastFetchLeaderLEO int64     // leader's LEO at its previous fetch
}

// event is what a Replica tells the Node that drives it (outside its lock).
type event uint8

const (
	evData      event = 1 << iota // leader: LEO or HW moved, or the role/epoch changed
	evExpansion                   // leader: a follower became an ISR-expansion candidate
	evHWRaised                    // the HW went up (for OnHighWatermark)
)

// Replica is the replication state machine of one partition on one broker
// (Kafka's Partition): leader epochs, ISR, the followers' progress and the
// high watermark (HW). It is deterministic: no goroutines, sockets or
// timers; time is passed in, and a driver (Node) does the I/O. It is safe
// for concurrent use.
//
// Invariants:
//   - HW <= the log end offset (LEO);
//   - as leader, HW never decreases within an epoch, not even on becoming
//     leader;
//   - HW does not advance while len(ISR) < MinInsyncReplicas;
//   - HW <= the LEO of every member of the maximal ISR (committed ISR plus
//     proposed additions), so any broker the controller may elect holds
//     every record below HW;
//   - a follower never truncates below what the leader's epoch answer
//     allows, and never by its HW when it has epoch information.
//
// Lock order: Replica.mu, then EpochCache.mu, then the Log's own locks. So
// a caller must not hold a lock that Log methods take while it calls a
// Replica method (call Appended after the append released the log's lock).
// Callbacks (OnHighWatermark, the Node's hook) run with no lock held.
type Replica struct {
	tp     cluster.TopicPartition
	self   int32
	log    Log
	epochs *EpochCache
	cfg    Config

	onHW atomic.Pointer[func(int64)] // OnHighWatermark's callback
	hook atomic.Pointer[func(event)] // set by Node.Add

	mu sync.Mutex // guards everything below
	// state is the last PartitionState applied; applied is false before
	// the first Apply.
	state   cluster.PartitionState
	applied bool
	role    role
	now     time.Time // latest time passed in, for ISRCommitted
	hw      int64
	// hwCh is closed and replaced whenever HW changes or the role or
	// leader epoch changes: WaitHighWatermark's wake-up.
	hwCh chan struct{}
	// ledEpoch/ledHW: the last epoch this broker led and the HW it reached
	// then, so that a waiter woken by a leader change still learns whether
	// its offset was committed before.
	ledEpoch int32
	ledHW    int64
	events   event // to deliver when the lock is released

	// Leader side.
	peers      map[int32]*peer // every replica but self
	pendingAdd []int32         // ISR additions proposed, not committed
	epochStart int64           // LEO when this broker became leader of state.LeaderEpoch

	// Follower side.
	truncating bool  // must truncate (OffsetForLeaderEpoch) before fetching
	truncEpoch int32 // the epoch to ask the leader about next; -1: none known
}

// NewReplica returns the replica of partition tp on broker self, over log
// and its leader-epoch cache. It truncates the cache to log.EndOffset()
// (recovery may have cut the log; a failure to rewrite the checkpoint is
// not fatal: the cache in memory is right and the next change rewrites it).
// The HW starts at the log start (see InitHighWatermark). The replica
// neither leads nor follows until the first Apply.
func NewReplica(tp cluster.TopicPartition, self int32, log Log, epochs *EpochCache, cfg Config) *Replica {
	_ = epochs.TruncateFrom(log.EndOffset())
	return &Replica{
		tp:         tp,
		self:       self,
		log:        log,
		epochs:     epochs,
		cfg:        cfg.withDefaults(),
		hw:         log.StartOffset(),
		hwCh:       make(chan struct{}),
		ledEpoch:   -1,
		truncEpoch: -1,
	}
}

// Partition is the partition this replica belongs to.
func (r *Replica) Partition() cluster.TopicPartition { return r.tp }

// Log is the log the replica drives.
func (r *Replica) Log() Log { return r.log }

// InitHighWatermark sets the HW recovered from a checkpoint, clamped to
// [StartOffset, EndOffset]. It is ignored once Apply has run.
func (r *Replica) InitHighWatermark(hw int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.applied {
		return
	}
	r.hw = min(max(hw, r.log.StartOffset()), r.log.EndOffset())
}

// OnHighWatermark registers fn to be called, with no lock held, whenever
// the HW advances (for the root package to wake consumers). Calls may
// overlap and arrive out of order; treat hw as a hint and read
// HighWatermark for the current value.
func (r *Replica) OnHighWatermark(fn func(hw int64)) {
	if fn == nil {
		r.onHW.Store(nil)
		return
	}
	r.onHW.Store(&fn)
}

// setHook installs the driver's event hook.
func (r *Replica) setHook(fn func(event)) {
	if fn == nil {
		r.hook.Store(nil)
		return
	}
	r.hook.Store(&fn)
}

// unlock releases r.mu and delivers the events raised under it.
func (r *Replica) unlock() {
	r.checkLocked()
	ev, hw := r.events, r.hw
	r.events = 0
	r.mu.Unlock()
	if ev == 0 {
		return
	}
	if h := r.hook.Load(); h != nil {
		(*h)(ev)
	}
	if ev&evHWRaised != 0 {
		if fn := r.onHW.Load(); fn != nil {
			(*fn)(hw)
		}
	}
}

// checkLocked verifies the invariants that are cheap to state (with the
// invariants build tag).
func (r *Replica) checkLocked() {
	if !invariants.Enabled {
		return
	}
	leo := r.log.EndOffset()
	invariants.Check(r.hw <= leo, "%v: HW %d above LEO %d", r.tp, r.hw, leo)
	if r.role == roleLeader && r.ledEpoch == r.state.LeaderEpoch {
		invariants.Check(r.hw >= r.ledHW, "%v: leader HW %d below %d", r.tp, r.hw, r.ledHW)
	}
}

// setHWLocked sets the HW and wakes whoever waits on it.
func (r *Replica) setHWLocked(hw int64) {
	if hw == r.hw {
		return
	}
	if hw > r.hw {
		r.events |= evHWRaised
	}
	r.hw = hw
	if r.role == roleLeader {
		r.ledEpoch, r.ledHW = r.state.LeaderEpoch, hw
	}
	r.wakeLocked()
}

// wakeLocked wakes HW waiters and long-polling fetches.
func (r *Replica) wakeLocked() {
	close(r.hwCh)
	r.hwCh = make(chan struct{})
	r.events |= evData
}

// State returns a copy of the partition state last applied.
func (r *Replica) State() cluster.PartitionState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.Clone()
}

// IsLeader reports whether this broker leads the partition.
func (r *Replica) IsLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.role == roleLeader
}

// HighWatermark is the offset below which records are committed.
func (r *Replica) HighWatermark() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hw
}

// Apply installs the state the controller decided for the partition.
//
//   - An older LeaderEpoch than the current one is ignored and returns
//     ErrFencedLeaderEpoch.
//   - The same epoch and leader with a newer PartitionEpoch updates the ISR
//     (an older or equal PartitionEpoch is ignored).
//   - A newer epoch with st.Leader == self makes this broker leader: the
//     epoch is assigned at the LEO in the epoch cache and on the log,
//     every other replica is tracked (its LEO unknown until it fetches,
//     ISR members caught up as of now), and the HW stays where it was.
//   - A newer epoch with another leader (or none) makes it a follower that
//     must truncate before fetching (see TruncationNeeded); HW =
//     min(HW, LEO).
//
// Waiters in WaitHighWatermark are woken on every epoch change. A non-nil
// error with a newer epoch reports a failure to checkpoint the epoch; the
// transition has happened regardless.
func (r *Replica) Apply(now time.Time, st cluster.PartitionState) error {
	r.mu.Lock()
	defer r.unlock()
	r.advanceLocked(now)
	if r.applied && st.LeaderEpoch < r.state.LeaderEpoch {
		return fmt.Errorf("%w: %v: state has leader epoch %d, current is %d", ErrFencedLeaderEpoch, r.tp, st.LeaderEpoch, r.state.LeaderEpoch)
	}
	if st.MinISR > 0 {
		// The controller's min.insync.replicas is the one its leader
		// elections rely on (eligible leader replicas): the HW must not
		// move with fewer replicas in sync than that.
		r.cfg.MinInsyncReplicas = int(st.MinISR)
	}
	if r.applied && st.LeaderEpoch == r.state.LeaderEpoch && st.Leader == r.state.Leader {
		r.updateISRLocked(st)
		return nil
	}
	return r.becomeLocked(st)
}

// ISRCommitted installs the state the controller returned for an ISR
// change (AlterISR). It is Apply for the same leader epoch; a state of
// another epoch is ignored (the controller's Apply brings it).
func (r *Replica) ISRCommitted(st cluster.PartitionState) {
	r.mu.Lock()
	defer r.unlock()
	if !r.applied || st.LeaderEpoch != r.state.LeaderEpoch || st.Leader != r.state.Leader {
		return
	}
	r.updateISRLocked(st)
}

// isrRefused drops the additions of a proposal the controller refused
// from the pending ones: they no longer count towards the HW (the maximal
// ISR) and a follower still in sync is proposed again at its next fetch.
func (r *Replica) isrRefused(p ISRProposal) {
	r.mu.Lock()
	defer r.unlock()
	if r.role != roleLeader || p.LeaderEpoch != r.state.LeaderEpoch || p.PartitionEpoch != r.state.PartitionEpoch {
		return
	}
	r.pendingAdd = slices.DeleteFunc(r.pendingAdd, func(id int32) bool { return slices.Contains(p.ISR, id) })
	r.maybeAdvanceHWLocked()
}

// advanceLocked records the latest time seen.
func (r *Replica) advanceLocked(now time.Time) {
	if now.After(r.now) {
		r.now = now
	}
}

// updateISRLocked installs a state of the current epoch and leader if its
// PartitionEpoch is newer.
func (r *Replica) updateISRLocked(st cluster.PartitionState) {
	if st.PartitionEpoch <= r.state.PartitionEpoch {
		return
	}
	old := r.state
	r.state = st.Clone()
	if r.role != roleLeader {
		return
	}
	// Every proposal in flight carried an older PartitionEpoch and will be
	// refused, so the pending additions can go: a follower still in sync
	// is proposed again at its next fetch.
	r.pendingAdd = nil
	r.syncPeersLocked()
	for _, id := range st.ISR {
		if p := r.peers[id]; p != nil && !old.InSync(id) && r.now.After(p.lastCaughtUp) {
			p.lastCaughtUp = r.now // a fresh member gets a full lag period
		}
	}
	r.maybeAdvanceHWLocked()
}

// becomeLocked moves to a new leader epoch.
func (r *Replica) becomeLocked(st cluster.PartitionState) error {
	r.state = st.Clone()
	r.applied = true
	r.peers = nil
	r.pendingAdd = nil
	r.truncating = false
	leo := r.log.EndOffset()
	var err error
	if st.Leader == r.self {
		r.role = roleLeader
		if aerr := r.epochs.Assign(st.LeaderEpoch, leo); aerr != nil {
			err = fmt.Errorf("replication: %v: become leader of epoch %d: %w", r.tp, st.LeaderEpoch, aerr)
		}
		r.log.SetLeaderEpoch(st.LeaderEpoch)
		r.epochStart = leo
		r.ledEpoch, r.ledHW = st.LeaderEpoch, r.hw
		r.syncPeersLocked()
		for _, id := range st.ISR {
			if p := r.peers[id]; p != nil {
				p.lastCaughtUp = r.now
			}
		}
		r.wakeLocked()
		r.maybeAdvanceHWLocked()
		return err
	}
	r.role = roleFollower
	r.truncating = true
	r.truncEpoch = r.epochs.latestEpoch()
	r.hw = min(r.hw, leo)
	r.wakeLocked()
	return nil
}

// syncPeersLocked makes peers track exactly the replicas other than self.
func (r *Replica) syncPeersLocked() {
	if r.peers == nil {
		r.peers = make(map[int32]*peer, len(r.state.Replicas))
	}
	for id := range r.peers {
		if !slices.Contains(r.state.Replicas, id) {
			delete(r.peers, id)
		}
	}
	for _, id := range r.state.Replicas {
		if id != r.self && r.peers[id] == nil {
			r.peers[id] = &peer{leo: -1, lastFetchLeaderLEO: -1}
		}
	}
}

// checkEpochLocked fences a request carrying currentLeaderEpoch (-1: no
// check, as Kafka).
func (r *Replica) checkEpochLocked(current int32) error {
	if !r.applied {
		return fmt.Errorf("%w: %v: no state yet", ErrNotLeader, r.tp)
	}
	switch {
	case current < 0:
	case current < r.state.LeaderEpoch:
		return fmt.Errorf("%w: %v: request epoch %d, current %d", ErrFencedLeaderEpoch, r.tp, current, r.state.LeaderEpoch)
	case current > r.state.LeaderEpoch:
		return fmt.Errorf("%w: %v: request epoch %d, current %d", ErrUnknownLeaderEpoch, r.tp, current, r.state.LeaderEpoch)
	}
	return nil
}
