package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/streamkit/commitlog/cluster"
)

// NodeConfig configures a Node. Transport is required; the other fields'
// zero values work.
type NodeConfig struct {
	// BrokerID is this broker's id.
	BrokerID int32
	// Transport reaches the other brokers; nil: every fetch fails (a
	// broker that only leads).
	Transport Transport
	// ISR is the controller, which accepts ISR changes; nil: the ISR never
	// changes (a single broker).
	ISR cluster.ISRUpdater
	// Replica configures every partition's Replica added to the Node (the
	// Node's lag checks run every Replica.ReplicaLagTime/4).
	Replica Config
	// FetchMaxWait is how long a follower fetch waits at the leader for
	// records (Kafka replica.fetch.wait.max.ms). 0 means 500ms.
	FetchMaxWait time.Duration
	// FetchMaxBytes bounds the records fetched per partition (Kafka
	// replica.fetch.max.bytes); a request carries at most 16 times as much
	// (replica.fetch.response.max.bytes). At least one batch is always
	// fetched. 0 means 1 MiB.
	FetchMaxBytes int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logf, if set, receives the Node's diagnostics (fetch and ISR
	// errors).
	Logf func(format string, args ...any)
}

// Defaults of NodeConfig.
const (
	DefaultFetchMaxWait  = 500 * time.Millisecond
	DefaultFetchMaxBytes = 1 << 20
	// requestBytesFactor: a request's MaxBytes is this many times the
	// per-partition bound (1 MiB and 16 MiB as in Kafka).
	requestBytesFactor = 16
)

// Back-off after a failed round of a fetcher.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = 100 * time.Millisecond
)

func (c NodeConfig) withDefaults() NodeConfig {
	c.Replica = c.Replica.withDefaults()
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = DefaultFetchMaxWait
	}
	if c.FetchMaxBytes <= 0 {
		c.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Transport == nil {
		c.Transport = noTransport{}
	}
	return c
}

// noTransport is the Transport of a Node configured without one.
type noTransport struct{}

func (noTransport) Fetch(context.Context, int32, *FetchRequest) (*FetchResponse, error) {
	return nil, fmt.Errorf("%w: no transport configured", ErrUnreachable)
}

func (noTransport) OffsetForLeaderEpoch(context.Context, int32, *EpochRequest) (*EpochResponse, error) {
	return nil, fmt.Errorf("%w: no transport configured", ErrUnreachable)
}

// Node drives the Replicas of one broker (Kafka's ReplicaManager and
// fetcher threads): it serves its peers' fetches for the partitions it
// leads (Handler), runs one fetcher goroutine per leader broker for the
// partitions it follows, and a ticker that shrinks and expands the ISR of
// the partitions it leads through the controller. Every goroutine it
// starts is joined by Close.
//
// Lock order: Node.mu, then Replica.mu. Replicas call the Node back (their
// hook) with no lock held.
type Node struct {
	cfg    NodeConfig
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine started
	kickTk chan struct{}  // wakes the ticker early (pending ISR expansion); capacity 1
	// serving counts the peers' requests being answered (on the callers'
	// goroutines): Close waits for them, so that none reads a log its
	// owner closes after Close (a closed log's offsets are not its own).
	serving sync.WaitGroup

	mu       sync.Mutex // guards the fields below
	closed   bool
	replicas map[cluster.TopicPartition]*Replica
	fetchers map[int32]*fetcher // by leader broker
	// wake is closed and replaced when a led partition's LEO, HW or state
	// changes: the shared wake-up of long-polling fetches.
	wake chan struct{}
}

// NewNode starts a Node: its ticker runs until Close.
func NewNode(cfg NodeConfig) *Node {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:      cfg,
		ctx:      ctx,
		cancel:   cancel,
		kickTk:   make(chan struct{}, 1),
		replicas: make(map[cluster.TopicPartition]*Replica),
		fetchers: make(map[int32]*fetcher),
		wake:     make(chan struct{}),
	}
	n.wg.Add(1)
	go n.tickLoop()
	return n
}

func (n *Node) logf(format string, args ...any) {
	if n.cfg.Logf != nil {
		n.cfg.Logf("replication: broker %d: "+format, append([]any{n.cfg.BrokerID}, args...)...)
	}
}

// Add makes the Node drive r (replacing any replica of the same
// partition). Call Apply next.
func (n *Node) Add(r *Replica) {
	r.setHook(n.onEvent)
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.replicas[r.tp]; old != nil && old != r {
		old.setHook(nil)
	}
	n.replicas[r.tp] = r
}

// Remove stops driving the partition tp (its fetcher drops it at its next
// round).
func (n *Node) Remove(tp cluster.TopicPartition) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.replicas[tp]; r != nil {
		r.setHook(nil)
		delete(n.replicas, tp)
	}
}

// Replica returns the replica of tp, if the Node drives it.
func (n *Node) Replica(tp cluster.TopicPartition) (*Replica, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.replicas[tp]
	return r, ok
}

// Apply gives the controller's state of partition tp to its Replica (see
// Replica.Apply), then starts or redirects fetching: a follower is fetched
// for by the fetcher of its leader broker, which truncates it (through
// OffsetForLeaderEpoch) before its first fetch.
func (n *Node) Apply(tp cluster.TopicPartition, st cluster.PartitionState) error {
	r, ok := n.Replica(tp)
	if !ok {
		return fmt.Errorf("%w: %v", ErrUnknownPartition, tp)
	}
	err := r.Apply(n.cfg.Now(), st)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.Join(err, ErrClosed)
	}
	for _, f := range n.fetchers {
		f.kick() // a partition may have left it
	}
	if leader := r.State().Leader; leader != n.cfg.BrokerID && leader != cluster.NoLeader {
		n.fetcherLocked(leader).kick()
	}
	return err
}

// fetcherLocked returns the fetcher of leader, starting it if needed.
func (n *Node) fetcherLocked(leader int32) *fetcher {
	f := n.fetchers[leader]
	if f == nil {
		f = &fetcher{n: n, leader: leader, kickCh: make(chan struct{}, 1)}
		n.fetchers[leader] = f
		n.wg.Add(1)
		go f.run()
	}
	return f
}

// onEvent is every Replica's hook.
func (n *Node) onEvent(ev event) {
	if ev&evData != 0 {
		n.mu.Lock()
		close(n.wake)
		n.wake = make(chan struct{})
		n.mu.Unlock()
	}
	if ev&evExpansion != 0 {
		select {
		case n.kickTk <- struct{}{}:
		default:
		}
	}
}

// Close stops every goroutine of the Node and waits for them. Long-polling
// fetches it serves return ErrClosed. It is idempotent.
func (n *Node) Close() error {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
	n.serving.Wait()
	return nil
}

// enter admits a peer's request unless the Node is closed; the caller
// calls n.serving.Done when it is answered.
func (n *Node) enter() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	n.serving.Add(1)
	return nil
}

// tickLoop checks the ISR of the led partitions every ReplicaLagTime/4,
// and at once when a follower becomes an expansion candidate.
func (n *Node) tickLoop() {
	defer n.wg.Done()
	period := max(n.cfg.Replica.ReplicaLagTime/4, time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.kickTk:
		}
		n.tick()
	}
}

// tick proposes the ISR changes of every led partition to the controller.
func (n *Node) tick() {
	n.mu.Lock()
	rs := make([]*Replica, 0, len(n.replicas))
	for _, r := range n.replicas {
		rs = append(rs, r)
	}
	n.mu.Unlock()
	for _, r := range rs {
		p, ok := r.TickProposal(n.cfg.Now())
		if !ok || n.cfg.ISR == nil {
			continue
		}
		st, err := n.cfg.ISR.AlterISR(n.ctx, r.tp, p.Leader, p.LeaderEpoch, p.PartitionEpoch, p.ISR)
		switch {
		case err == nil:
			r.ISRCommitted(st)
		case errors.Is(err, cluster.ErrStaleState):
			// The controller moved on; its Apply brings the new state.
		case n.ctx.Err() != nil:
			return
		default:
			// Refused (a broker the controller fenced, say): as Kafka
			// does, go back to the committed ISR, so that a pending
			// addition that will not happen stops holding the HW.
			r.isrRefused(p)
			n.logf("%v: alter ISR to %v: %v", r.tp, p.ISR, err)
		}
	}
}

// HandleOffsetForLeaderEpoch answers a follower's OffsetForLeaderEpoch for
// the partitions this broker leads.
func (n *Node) HandleOffsetForLeaderEpoch(ctx context.Context, req *EpochRequest) (*EpochResponse, error) {
	if err := n.enter(); err != nil {
		return nil, err
	}
	defer n.serving.Done()
	resp := &EpochResponse{Partitions: make([]EpochAnswer, len(req.Partitions))}
	for i, q := range req.Partitions {
		a := EpochAnswer{Partition: q.Partition, LeaderEpoch: -1, EndOffset: -1}
		if r, ok := n.Replica(q.Partition); !ok {
			a.Err = fmt.Errorf("%w: %v", ErrUnknownPartition, q.Partition)
		} else {
			a.LeaderEpoch, a.EndOffset, a.Err = r.endOffsetForEpoch(q.CurrentLeaderEpoch, q.LeaderEpoch)
		}
		resp.Partitions[i] = a
	}
	return resp, nil
}

// HandleFetch serves a follower fetch for the partitions this broker leads:
// each partition records the follower's position (Replica.FollowerFetch)
// and gets whole batches from its fetch offset, within the partition's and
// the request's MaxBytes. When no partition has records or an error to
// return, the fetch waits (the Node's shared wake-up: a led partition
// appended, moved its HW or changed state) until one does, its HW moved,
// req.MaxWait passed, or ctx is done (then it returns ctx's error).
func (n *Node) HandleFetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error) {
	if err := n.enter(); err != nil {
		return nil, err
	}
	defer n.serving.Done()
	var timer *time.Timer
	var firstHW []int64
	for {
		n.mu.Lock()
		closed, wake := n.closed, n.wake
		n.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		resp, ready := n.serveFetch(req, &firstHW)
		if ready || req.MaxWait <= 0 {
			return resp, nil
		}
		if timer == nil {
			timer = time.NewTimer(req.MaxWait)
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-timer.C:
			resp, _ := n.serveFetch(req, &firstHW)
			return resp, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-n.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// serveFetch makes one pass over the partitions of req. ready reports
// whether there is something worth answering now: records, an error, or an
// HW different from the first pass's (recorded in *firstHW).
func (n *Node) serveFetch(req *FetchRequest, firstHW *[]int64) (resp *FetchResponse, ready bool) {
	now := n.cfg.Now()
	first := *firstHW == nil
	if first {
		*firstHW = make([]int64, len(req.Partitions))
	}
	budget := req.MaxBytes
	if budget <= 0 {
		budget = n.cfg.FetchMaxBytes * requestBytesFactor
	}
	resp = &FetchResponse{Partitions: make([]FetchedPartition, len(req.Partitions))}
	for i, p := range req.Partitions {
		fp := &resp.Partitions[i]
		fp.Partition = p.Partition
		r, ok := n.Replica(p.Partition)
		if !ok {
			fp.Err = fmt.Errorf("%w: %v", ErrUnknownPartition, p.Partition)
			ready = true
			continue
		}
		fp.HighWatermark, fp.LogStartOffset, fp.Err = r.FollowerFetch(now, req.ReplicaID, p.FetchOffset, p.CurrentLeaderEpoch)
		if fp.Err != nil {
			ready = true
			continue
		}
		if first {
			(*firstHW)[i] = fp.HighWatermark
		} else if fp.HighWatermark != (*firstHW)[i] {
			ready = true
		}
		if p.FetchOffset >= r.log.EndOffset() || budget <= 0 && ready {
			continue
		}
		limit := p.MaxBytes
		if limit <= 0 {
			limit = n.cfg.FetchMaxBytes
		}
		recs, err := r.log.ReadBatches(nil, p.FetchOffset, min(limit, max(budget, 1)))
		if err != nil {
			fp.Err = fmt.Errorf("replication: %v: read at %d: %w", p.Partition, p.FetchOffset, err)
			ready = true
			continue
		}
		if len(recs) > 0 {
			fp.Records = recs
			budget -= len(recs)
			ready = true
		}
	}
	return resp, ready
}
