package replication

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// MemNetwork is an in-memory Transport between the Handlers of several
// brokers, with fault injection for tests: network partitions, paused
// brokers, and random drops, duplicates and delays drawn from a seeded
// generator (the same seed and the same sequence of calls give the same
// faults). Requests and answers are deep-copied on the way, so brokers
// never share memory. It is safe for concurrent use and starts no
// goroutines: a call runs in the caller's goroutine.
type MemNetwork struct {
	mu       sync.Mutex // guards everything below
	rng      *rand.Rand
	handlers map[int32]Handler
	groups   map[int32]int // broker -> group; nil: no partition
	faults   Faults
	paused   map[int32]chan struct{} // closed by Resume
}

// Faults are the random faults MemNetwork injects in every call.
type Faults struct {
	// DropRate is the probability that a request, or its answer, is lost
	// (half each): the caller gets ErrUnreachable after DropTimeout, or
	// ctx's error if that comes first.
	DropRate float64
	// DuplicateRate is the probability that a request is delivered twice:
	// the handler runs twice, the caller gets the first answer.
	DuplicateRate float64
	// MaxDelay bounds a random delay added before the request is handled
	// and again before the answer is returned (so concurrent calls
	// overtake each other).
	MaxDelay time.Duration
	// DropTimeout is how long a caller waits for a lost message; 0 means
	// 100ms.
	DropTimeout time.Duration
}

// NewMemNetwork returns a network with no brokers and no faults whose
// random faults come from seed.
func NewMemNetwork(seed int64) *MemNetwork {
	return &MemNetwork{
		rng:      rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		handlers: make(map[int32]Handler),
		paused:   make(map[int32]chan struct{}),
	}
}

// Register makes broker id reachable, served by h.
func (n *MemNetwork) Register(id int32, h Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers[id] = h
}

// Unregister makes broker id unreachable: calls to it fail with
// ErrUnreachable.
func (n *MemNetwork) Unregister(id int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.handlers, id)
}

// Partition splits the brokers into groups that cannot reach each other;
// brokers named in no group form one more group together. It replaces any
// earlier partition.
func (n *MemNetwork) Partition(groups ...[]int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.groups = make(map[int32]int)
	for i, g := range groups {
		for _, id := range g {
			n.groups[id] = i
		}
	}
}

// Isolate cuts broker id off from every other broker.
func (n *MemNetwork) Isolate(id int32) { n.Partition([]int32{id}) }

// Heal undoes Partition and Isolate.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.groups = nil
}

// SetFaults sets the random faults of later calls (the zero Faults turns
// them off).
func (n *MemNetwork) SetFaults(f Faults) {
	if f.DropTimeout <= 0 {
		f.DropTimeout = 100 * time.Millisecond
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = f
}

// Pause stalls broker id: calls to it block before its handler runs, and
// calls it makes block before they are sent, until Resume or the caller's
// ctx is done.
func (n *MemNetwork) Pause(id int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.paused[id] == nil {
		n.paused[id] = make(chan struct{})
	}
}

// Resume undoes Pause.
func (n *MemNetwork) Resume(id int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch := n.paused[id]; ch != nil {
		close(ch)
		delete(n.paused, id)
	}
}

// Transport returns the Transport broker from uses to reach the others.
func (n *MemNetwork) Transport(from int32) Transport { return memTransport{n: n, from: from} }

type memTransport struct {
	n    *MemNetwork
	from int32
}

func (t memTransport) Fetch(ctx context.Context, to int32, req *FetchRequest) (*FetchResponse, error) {
	return roundTrip(ctx, t.n, t.from, to, req.Clone(), (*FetchResponse).Clone,
		func(h Handler, ctx context.Context, req *FetchRequest) (*FetchResponse, error) {
			return h.HandleFetch(ctx, req)
		}, (*FetchRequest).Clone)
}

func (t memTransport) OffsetForLeaderEpoch(ctx context.Context, to int32, req *EpochRequest) (*EpochResponse, error) {
	return roundTrip(ctx, t.n, t.from, to, req.Clone(), (*EpochResponse).Clone,
		func(h Handler, ctx context.Context, req *EpochRequest) (*EpochResponse, error) {
			return h.HandleOffsetForLeaderEpoch(ctx, req)
		}, (*EpochRequest).Clone)
}

// plan is the fate of one call, drawn when it starts.
type plan struct {
	drop, dropAnswer, dup bool
	delayReq, delayAnswer time.Duration
	dropTimeout           time.Duration
}

func (n *MemNetwork) planCall() plan {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.faults
	p := plan{dropTimeout: f.DropTimeout}
	if f.DropRate > 0 && n.rng.Float64() < f.DropRate {
		p.drop, p.dropAnswer = true, n.rng.IntN(2) == 1
	}
	if f.DuplicateRate > 0 && n.rng.Float64() < f.DuplicateRate {
		p.dup = true
	}
	if f.MaxDelay > 0 {
		p.delayReq = time.Duration(n.rng.Int64N(int64(f.MaxDelay)))
		p.delayAnswer = time.Duration(n.rng.Int64N(int64(f.MaxDelay)))
	}
	return p
}

// reach returns the handler of to if from can reach it now.
func (n *MemNetwork) reach(from, to int32) (Handler, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.handlers[to]
	if h == nil {
		return nil, fmt.Errorf("%w: broker %d is not registered", ErrUnreachable, to)
	}
	if err := n.connectedLocked(from, to); err != nil {
		return nil, err
	}
	return h, nil
}

// connected fails when a partition separates from and to.
func (n *MemNetwork) connected(from, to int32) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.connectedLocked(from, to)
}

func (n *MemNetwork) connectedLocked(from, to int32) error {
	if n.groups == nil {
		return nil
	}
	gf, ok := n.groups[from]
	if !ok {
		gf = -1
	}
	gt, ok := n.groups[to]
	if !ok {
		gt = -1
	}
	if gf != gt {
		return fmt.Errorf("%w: broker %d is partitioned from broker %d", ErrUnreachable, to, from)
	}
	return nil
}

func (n *MemNetwork) pausedChan(id int32) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused[id]
}

// roundTrip delivers req (already copied) from broker from to broker to
// under the faults in force, and returns a copy of the answer.
func roundTrip[Req, Resp any](ctx context.Context, n *MemNetwork, from, to int32, req Req, cloneResp func(Resp) Resp,
	handle func(Handler, context.Context, Req) (Resp, error), cloneReq func(Req) Req) (Resp, error) {
	var zero Resp
	p := n.planCall()
	if _, err := n.reach(from, to); err != nil {
		return zero, err
	}
	if err := sleepCtx(ctx, p.delayReq); err != nil {
		return zero, err
	}
	if p.drop && !p.dropAnswer {
		return zero, lost(ctx, p.dropTimeout, from, to)
	}
	for _, id := range [2]int32{from, to} {
		if ch := n.pausedChan(id); ch != nil {
			select {
			case <-ch:
			case <-ctx.Done():
				return zero, ctx.Err()
			}
		}
	}
	h, err := n.reach(from, to) // the network may have changed meanwhile
	if err != nil {
		return zero, err
	}
	var dupReq Req
	if p.dup {
		dupReq = cloneReq(req)
	}
	resp, herr := handle(h, ctx, req)
	if p.dup {
		_, _ = handle(h, ctx, dupReq)
	}
	if p.drop {
		return zero, lost(ctx, p.dropTimeout, from, to)
	}
	if err := sleepCtx(ctx, p.delayAnswer); err != nil {
		return zero, err
	}
	if err := n.connected(to, from); err != nil {
		return zero, err
	}
	if herr != nil {
		return zero, herr
	}
	return cloneResp(resp), nil
}

// lost waits for a message that will never come.
func lost(ctx context.Context, timeout time.Duration, from, to int32) error {
	if err := sleepCtx(ctx, timeout); err != nil {
		return err
	}
	return fmt.Errorf("%w: message between brokers %d and %d lost", ErrUnreachable, from, to)
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
