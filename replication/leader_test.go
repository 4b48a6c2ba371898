package replication

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fetch has broker id fetch from leader r at offset in epoch, as the leader
// sees it, and checks the invariants.
func fetch(t *testing.T, r *Replica, now time.Time, id int32, offset int64) int64 {
	t.Helper()
	hw, _, err := r.FollowerFetch(now, id, offset, r.State().LeaderEpoch)
	mustNil(t, err)
	checkInvariants(t, r)
	return hw
}

func TestLeaderHighWatermark(t *testing.T) {
	r, l := newTestReplica(t, 1, Config{MinInsyncReplicas: 2})
	mustNil(t, r.Apply(t0, state(1, 1, 1, ids(1, 2, 3), ids(1, 2, 3))))
	if !r.IsLeader() {
		t.Fatal("not leader")
	}
	l.appendLeader("a", "b", "c")
	r.Appended(l.appendLeader("d", "e", "f")) // LEO 6
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("HW %d before any follower fetched", hw)
	}
	if hw := fetch(t, r, t0, 2, 6); hw != 0 {
		t.Fatalf("HW %d with follower 3 unknown", hw)
	}
	if hw := fetch(t, r, t0, 3, 3); hw != 3 {
		t.Fatalf("HW %d, want 3 (follower 3's LEO)", hw)
	}
	if hw := fetch(t, r, t0, 3, 6); hw != 6 {
		t.Fatalf("HW %d, want 6", hw)
	}
	// A follower going back (it truncated) never moves the HW back.
	if hw := fetch(t, r, t0, 3, 3); hw != 6 {
		t.Fatalf("HW went back to %d", hw)
	}
	if l.epochAt(0) != 1 {
		t.Fatalf("batch stamped with epoch %d, want 1", l.epochAt(0))
	}
	if e, off, ok := r.epochs.Latest(); !ok || e != 1 || off != 0 {
		t.Fatalf("epoch cache latest %d %d %v", e, off, ok)
	}
}

func TestLeaderAloneAdvancesOnAppend(t *testing.T) {
	r, l := newTestReplica(t, 1, Config{})
	mustNil(t, r.Apply(t0, state(1, 1, 1, ids(1), ids(1))))
	r.Appended(l.appendLeader("a"))
	if hw := r.HighWatermark(); hw != 1 {
		t.Fatalf("HW %d, want 1", hw)
	}
	mustNil(t, r.WaitHighWatermark(context.Background(), 1))
}

func TestHWFrozenBelowMinISR(t *testing.T) {
	r, l := newTestReplica(t, 1, Config{MinInsyncReplicas: 2})
	mustNil(t, r.Apply(t0, state(1, 1, 1, ids(1, 2), ids(1))))
	if err := r.CheckProduce(true); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("CheckProduce(acks=all) = %v", err)
	}
	mustNil(t, r.CheckProduce(false))
	r.Appended(l.appendLeader("a", "b"))
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("HW %d with ISR below min", hw)
	}
	// Follower 2 catches up: an expansion is proposed, but the HW stays
	// until the controller commits it.
	if hw := fetch(t, r, t0, 2, 2); hw != 0 {
		t.Fatalf("HW %d before the expansion is committed", hw)
	}
	prop, ok := r.TickProposal(t0)
	if !ok || !sameSet(prop.ISR, ids(1, 2)) || prop.LeaderEpoch != 1 || prop.PartitionEpoch != 1 || prop.Leader != 1 {
		t.Fatalf("proposal %+v %v", prop, ok)
	}
	r.ISRCommitted(state(1, 1, 2, ids(1, 2), ids(1, 2)))
	if hw := r.HighWatermark(); hw != 2 {
		t.Fatalf("HW %d after the expansion, want 2", hw)
	}
	mustNil(t, r.CheckProduce(true))
	// The ISR shrinks below min again: the HW freezes.
	r.ISRCommitted(state(1, 1, 3, ids(1, 2), ids(1)))
	r.Appended(l.appendLeader("c"))
	if hw := fetch(t, r, t0, 2, 3); hw != 2 {
		t.Fatalf("HW %d advanced with ISR below min", hw)
	}
}

func TestISRShrinkAndExpand(t *testing.T) {
	const lag = 10 * time.Second
	r, l := newTestReplica(t, 1, Config{ReplicaLagTime: lag, MinInsyncReplicas: 2})
	mustNil(t, r.Apply(t0, state(1, 1, 1, ids(1, 2, 3), ids(1, 2, 3))))
	now := t0
	if _, ok := r.Tick(now); ok {
		t.Fatal("proposal with every follower fresh")
	}
	// Follower 2 keeps up, follower 3 is silent.
	for i := range 5 {
		now = now.Add(3 * time.Second)
		end := l.appendLeader("x")
		r.Appended(end)
		fetch(t, r, now, 2, end-1)
		fetch(t, r, now, 2, end)
		prop, ok := r.Tick(now)
		if now.Sub(t0) <= lag {
			if ok {
				t.Fatalf("round %d: early shrink %v", i, prop)
			}
			continue
		}
		if !ok || !sameSet(prop, ids(1, 2)) {
			t.Fatalf("round %d: proposal %v %v, want [1 2]", i, prop, ok)
		}
	}
	// Uncommitted removal: follower 3 still holds the HW.
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("HW %d moved before the shrink was committed", hw)
	}
	r.ISRCommitted(state(1, 1, 2, ids(1, 2, 3), ids(1, 2)))
	if hw, leo := r.HighWatermark(), l.EndOffset(); hw != leo {
		t.Fatalf("HW %d after shrink, want LEO %d", hw, leo)
	}
	// Follower 3 comes back below the HW: not yet in sync.
	fetch(t, r, now, 3, 1)
	if prop, ok := r.Tick(now); ok {
		t.Fatalf("expansion proposed for a follower below the HW: %v", prop)
	}
	// It reaches the HW: proposed, and counted for the HW at once.
	leo := l.EndOffset()
	fetch(t, r, now, 3, leo)
	prop, ok := r.Tick(now)
	if !ok || !sameSet(prop, ids(1, 2, 3)) {
		t.Fatalf("proposal %v %v, want [1 2 3]", prop, ok)
	}
	r.Appended(l.appendLeader("y"))
	fetch(t, r, now, 2, leo+1)
	if hw := r.HighWatermark(); hw != leo {
		t.Fatalf("HW %d passed the pending member's LEO %d", hw, leo)
	}
	r.ISRCommitted(state(1, 1, 3, ids(1, 2, 3), ids(1, 2, 3)))
	if _, ok := r.Tick(now); ok {
		t.Fatal("proposal after commit")
	}
	// A follower at the leader's LEO stays in sync however long it idles
	// (Kafka: no writes, no lag).
	fetch(t, r, now, 3, leo+1)
	if _, ok := r.Tick(now.Add(time.Hour)); ok {
		t.Fatal("idle caught-up followers shrunk")
	}
	// Stale proposal epochs are refused by the controller; a state for
	// another epoch given to ISRCommitted is ignored.
	r.ISRCommitted(state(1, 9, 9, ids(1, 2, 3), ids(1)))
	if st := r.State(); st.LeaderEpoch != 1 || len(st.ISR) != 3 {
		t.Fatalf("ISRCommitted took another epoch's state: %+v", st)
	}
}

// The ISR expansion needs the follower to reach the start of the leader's
// epoch, not only the HW.
func TestExpansionNeedsEpochStart(t *testing.T) {
	r, l := newTestReplica(t, 1, Config{})
	for range 4 {
		l.appendEpoch(0, 1)
	}
	mustNil(t, r.Apply(t0, state(1, 1, 1, ids(1, 2), ids(1)))) // epoch starts at 4
	if hw := r.HighWatermark(); hw != 4 {
		t.Fatalf("HW %d, want 4 (leader alone in the ISR)", hw)
	}
	r.InitHighWatermark(0) // ignored after Apply
	fetch(t, r, t0, 2, 3)
	if _, ok := r.Tick(t0); ok {
		t.Fatal("follower below the epoch start proposed")
	}
	fetch(t, r, t0, 2, 4)
	if prop, ok := r.Tick(t0); !ok || !sameSet(prop, ids(1, 2)) {
		t.Fatalf("proposal %v %v", prop, ok)
	}
}

func TestCheckProduceNotLeader(t *testing.T) {
	r, _ := newTestReplica(t, 2, Config{})
	if err := r.CheckProduce(false); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("before Apply: %v", err)
	}
	mustNil(t, r.Apply(t0, state(1, 1, 1, ids(1, 2), ids(1, 2))))
	if err := r.CheckProduce(false); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower: %v", err)
	}
	if _, _, err := r.EndOffsetForEpoch(1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("EndOffsetForEpoch on a follower: %v", err)
	}
	if _, _, err := r.FollowerFetch(t0, 1, 0, 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("FollowerFetch on a follower: %v", err)
	}
	if err := r.WaitHighWatermark(context.Background(), 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("WaitHighWatermark on a follower: %v", err)
	}
}

func TestFencing(t *testing.T) {
	r, l := newTestReplica(t, 1, Config{})
	mustNil(t, r.Apply(t0, state(1, 5, 1, ids(1, 2), ids(1, 2))))
	r.Appended(l.appendLeader("a"))
	if _, _, err := r.FollowerFetch(t0, 2, 0, 4); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("older epoch: %v", err)
	}
	if _, _, err := r.FollowerFetch(t0, 2, 0, 6); !errors.Is(err, ErrUnknownLeaderEpoch) {
		t.Fatalf("newer epoch: %v", err)
	}
	if _, _, err := r.FollowerFetch(t0, 2, 0, -1); err != nil {
		t.Fatalf("epoch -1 (unchecked): %v", err)
	}
	if _, _, err := r.FollowerFetch(t0, 7, 0, 5); !errors.Is(err, ErrUnknownReplica) {
		t.Fatalf("unknown replica: %v", err)
	}
	if _, _, err := r.FollowerFetch(t0, 2, 2, 5); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("offset past LEO: %v", err)
	}
	if _, _, err := r.endOffsetForEpoch(4, 5); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("OffsetForLeaderEpoch with an older epoch: %v", err)
	}
	if e, end, err := r.EndOffsetForEpoch(5); err != nil || e != 5 || end != 1 {
		t.Fatalf("EndOffsetForEpoch(5) = %d %d %v", e, end, err)
	}
	// An older state is ignored.
	if err := r.Apply(t0, state(2, 4, 9, ids(1, 2), ids(1, 2))); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("Apply(older epoch) = %v", err)
	}
	if !r.IsLeader() || r.State().LeaderEpoch != 5 {
		t.Fatal("older state applied")
	}
	// The same epoch with an older partition epoch changes nothing; a newer
	// one updates the ISR.
	mustNil(t, r.Apply(t0, state(1, 5, 0, ids(1, 2), ids(1))))
	if len(r.State().ISR) != 2 {
		t.Fatal("older partition epoch applied")
	}
	mustNil(t, r.Apply(t0, state(1, 5, 2, ids(1, 2), ids(1))))
	if len(r.State().ISR) != 1 || !r.IsLeader() {
		t.Fatalf("ISR update: %+v", r.State())
	}
}

func TestWaitHighWatermark(t *testing.T) {
	r, l := newTestReplica(t, 1, Config{MinInsyncReplicas: 2})
	mustNil(t, r.Apply(t0, state(1, 1, 1, ids(1, 2), ids(1, 2))))
	var hws []int64
	r.OnHighWatermark(func(hw int64) { hws = append(hws, hw) }) // calls are serial here
	end := l.appendLeader("a", "b")
	r.Appended(end)

	done := make(chan error, 1)
	go func() { done <- r.WaitHighWatermark(context.Background(), end) }()
	fetch(t, r, t0, 2, 1)
	select {
	case err := <-done:
		t.Fatalf("woken at HW 1: %v", err)
	default:
	}
	fetch(t, r, t0, 2, end)
	if err := <-done; err != nil {
		t.Fatalf("WaitHighWatermark = %v", err)
	}
	if len(hws) != 2 || hws[0] != 1 || hws[1] != end {
		t.Fatalf("OnHighWatermark calls %v", hws)
	}

	// Context cancelled.
	end2 := l.appendLeader("c")
	r.Appended(end2)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- r.WaitHighWatermark(ctx, end2) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait = %v", err)
	}

	// Leadership lost before the HW got there.
	go func() { done <- r.WaitHighWatermark(context.Background(), end2) }()
	mustNil(t, r.Apply(t0, state(2, 2, 2, ids(1, 2), ids(1, 2))))
	if err := <-done; !errors.Is(err, ErrNotLeader) {
		t.Fatalf("wait across a leader change = %v", err)
	}
	checkInvariants(t, r)
}

// A waiter woken by a leader change still learns that its offset was
// committed in the epoch it waited in.
func TestWaitHighWatermarkCommittedBeforeLeaderChange(t *testing.T) {
	r, l := newTestReplica(t, 1, Config{})
	mustNil(t, r.Apply(t0, state(1, 1, 1, ids(1), ids(1))))
	r.Appended(l.appendLeader("a"))
	mustNil(t, r.WaitHighWatermark(context.Background(), 1))
	// Re-elected in a new epoch: the old epoch's commits do not count for
	// a waiter of the new one, but what the HW covers does.
	mustNil(t, r.Apply(t0, state(1, 2, 2, ids(1, 2), ids(1, 2))))
	mustNil(t, r.WaitHighWatermark(context.Background(), 1))
}

// Becoming leader never moves the HW back, and followers whose LEO is
// unknown hold it where it is.
func TestBecomeLeaderKeepsHW(t *testing.T) {
	r, l := newTestReplica(t, 2, Config{})
	mustNil(t, r.Apply(t0, state(1, 1, 1, ids(1, 2, 3), ids(1, 2, 3))))
	_, ok := r.TruncationNeeded()
	if !ok {
		t.Fatal("follower needs no truncation")
	}
	mustNil(t, r.Truncate(-1, -1)) // empty cache: to the HW (0)
	mustNil(t, r.Fetched(1, buildBatch(0, 1, "a", "b", "c"), 2, 0))
	if hw := r.HighWatermark(); hw != 2 {
		t.Fatalf("follower HW %d, want 2", hw)
	}
	mustNil(t, r.Apply(t0, state(2, 2, 2, ids(1, 2, 3), ids(1, 2, 3))))
	if hw := r.HighWatermark(); hw != 2 {
		t.Fatalf("new leader HW %d, want 2", hw)
	}
	fetch(t, r, t0, 3, 3)
	if hw := r.HighWatermark(); hw != 2 {
		t.Fatalf("HW %d moved with follower 1 unknown", hw)
	}
	fetch(t, r, t0, 1, 3)
	if hw := r.HighWatermark(); hw != 3 {
		t.Fatalf("HW %d, want 3", hw)
	}
	if e, off, _ := r.epochs.Latest(); e != 2 || off != 3 {
		t.Fatalf("epoch 2 assigned at %d (epoch %d), want 3", off, e)
	}
	_ = l
}

// TestRefusedExpansionReleasesHW: a follower that fetched its way back to
// the HW counts towards the HW while its addition is pending (the maximal
// ISR); when the controller refuses the addition (the broker was fenced
// meanwhile) it must stop counting, or the HW stays below what the
// committed ISR has.
func TestRefusedExpansionReleasesHW(t *testing.T) {
	r, l := newTestReplica(t, 2, Config{})
	mustNil(t, r.Apply(t0, state(2, 1, 1, ids(2, 3, 1), ids(2, 3))))
	r.Appended(l.appendLeader("a", "b")) // LEO 2
	fetch(t, r, t0, 3, 2)
	fetch(t, r, t0, 1, 2) // broker 1 caught up: pending addition
	p, ok := r.TickProposal(t0)
	if !ok || len(p.ISR) != 3 {
		t.Fatalf("proposal %+v %v, want the ISR with broker 1 added", p, ok)
	}
	r.Appended(l.appendLeader("c")) // LEO 3
	if hw := fetch(t, r, t0, 3, 3); hw != 2 {
		t.Fatalf("HW %d, want 2 while broker 1 (LEO 2) is pending", hw)
	}
	r.isrRefused(p)
	if hw := r.HighWatermark(); hw != 3 {
		t.Fatalf("HW %d after the refusal, want 3 (the committed ISR's)", hw)
	}
}

// TestControllerMinISRApplies: the controller's min.insync.replicas, in
// the partition state, overrides the replica's configured one. A broker
// that did not create a topic opened it with its default (1) and let its
// HW move with the leader alone, acknowledging a record the eligible
// replicas (elected next) did not have.
func TestControllerMinISRApplies(t *testing.T) {
	r, l := newTestReplica(t, 1, Config{MinInsyncReplicas: 1})
	st := state(1, 1, 1, ids(1, 2, 3), ids(1))
	st.MinISR = 2
	mustNil(t, r.Apply(t0, st))
	r.Appended(l.appendLeader("a"))
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("HW %d with the ISR {1} below the controller's minimum 2", hw)
	}
	if err := r.CheckProduce(true); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("acks=all produce: %v, want ErrNotEnoughReplicas", err)
	}
}
