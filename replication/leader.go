package replication

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The leader side of a Replica: produce checks, follower progress, the high
// watermark and ISR proposals.

// CheckProduce reports whether a write may be appended now: ErrNotLeader
// unless this broker leads, and, for acks=all, ErrNotEnoughReplicas while
// the committed ISR is smaller than MinInsyncReplicas.
func (r *Replica) CheckProduce(acksAll bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role != roleLeader {
		return fmt.Errorf("%w: %v", ErrNotLeader, r.tp)
	}
	if acksAll && len(r.state.ISR) < r.cfg.MinInsyncReplicas {
		return fmt.Errorf("%w: %v: ISR %v, min.insync.replicas %d", ErrNotEnoughReplicas, r.tp, r.state.ISR, r.cfg.MinInsyncReplicas)
	}
	return nil
}

// Appended tells the replica that the leader appended locally up to end (the
// new LEO; the log is asked for its current end, end is a hint). It
// recomputes the HW (which moves at once when the leader is the only ISR
// member) and wakes long-polling follower fetches. Call it after every
// append as leader.
func (r *Replica) Appended(end int64) {
	_ = end
	r.mu.Lock()
	defer r.unlock()
	if r.role != roleLeader {
		return
	}
	r.events |= evData
	r.maybeAdvanceHWLocked()
}

// WaitHighWatermark blocks until the HW reaches offset (an acks=all produce
// waits with offset = the end of its batch) and returns nil. It returns an
// error wrapping ErrNotLeader if this broker is not the leader when called,
// or stops leading or changes epoch before the HW got there, and ctx's
// error when ctx is done first.
func (r *Replica) WaitHighWatermark(ctx context.Context, offset int64) error {
	r.mu.Lock()
	if r.role != roleLeader {
		r.mu.Unlock()
		return fmt.Errorf("%w: %v", ErrNotLeader, r.tp)
	}
	epoch := r.state.LeaderEpoch
	for {
		if r.ledEpoch == epoch && r.ledHW >= offset {
			r.mu.Unlock()
			return nil
		}
		if r.role != roleLeader || r.state.LeaderEpoch != epoch {
			r.mu.Unlock()
			return fmt.Errorf("%w: %v: leadership of epoch %d lost before offset %d was committed", ErrNotLeader, r.tp, epoch, offset)
		}
		ch := r.hwCh
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.mu.Lock()
	}
}

// FollowerFetch records a fetch by follower replica from fetchOffset, as
// the leader serves it (Kafka's updateFollowerFetchState), and returns the
// HW and log start offset to send back with the records.
//
// It fails with ErrFencedLeaderEpoch or ErrUnknownLeaderEpoch when
// currentLeaderEpoch (-1: unchecked) differs from the current epoch,
// ErrNotLeader, ErrUnknownReplica, and ErrOffsetOutOfRange when fetchOffset
// is outside [log start, LEO] (hw and logStart are still set then).
//
// The follower's LEO becomes fetchOffset; it is caught up (lastCaughtUp =
// now) when fetchOffset reaches the leader's LEO, or reaches the leader's
// LEO at its previous fetch (caught up as of that fetch). A follower
// outside the ISR whose LEO reached both the HW and the start of the
// current epoch becomes an ISR-expansion proposal (see Tick). Then the HW
// is recomputed.
func (r *Replica) FollowerFetch(now time.Time, replica int32, fetchOffset int64, currentLeaderEpoch int32) (hw, logStart int64, err error) {
	r.mu.Lock()
	defer r.unlock()
	r.advanceLocked(now)
	if err := r.checkEpochLocked(currentLeaderEpoch); err != nil {
		return 0, 0, err
	}
	if r.role != roleLeader {
		return 0, 0, fmt.Errorf("%w: %v", ErrNotLeader, r.tp)
	}
	p := r.peers[replica]
	if p == nil {
		return 0, 0, fmt.Errorf("%w: %v: broker %d, replicas %v", ErrUnknownReplica, r.tp, replica, r.state.Replicas)
	}
	leo, start := r.log.EndOffset(), r.log.StartOffset()
	if fetchOffset < start || fetchOffset > leo {
		return r.hw, start, fmt.Errorf("%w: %v: fetch offset %d, log [%d, %d]", ErrOffsetOutOfRange, r.tp, fetchOffset, start, leo)
	}
	p.leo = fetchOffset
	switch {
	case fetchOffset >= leo:
		p.lastCaughtUp = laterOf(p.lastCaughtUp, now)
	case p.lastFetchLeaderLEO >= 0 && fetchOffset >= p.lastFetchLeaderLEO:
		p.lastCaughtUp = laterOf(p.lastCaughtUp, p.lastFetch)
	}
	p.lastFetch, p.lastFetchLeaderLEO = now, leo

	if !r.state.InSync(replica) && !slices.Contains(r.pendingAdd, replica) &&
		p.leo >= r.hw && p.leo >= r.epochStart {
		r.pendingAdd = append(r.pendingAdd, replica)
		r.events |= evExpansion
	}
	r.maybeAdvanceHWLocked()
	return r.hw, start, nil
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// maybeAdvanceHWLocked sets HW = min LEO over the maximal ISR (committed
// ISR plus pending additions, leader included) when that is higher, and
// never while the committed ISR is below MinInsyncReplicas. A member whose
// LEO is unknown (it has not fetched in this epoch) holds the HW where it
// is.
func (r *Replica) maybeAdvanceHWLocked() {
	if r.role != roleLeader || len(r.state.ISR) < r.cfg.MinInsyncReplicas {
		return
	}
	hw := r.log.EndOffset()
	for _, ids := range [2][]int32{r.state.ISR, r.pendingAdd} {
		for _, id := range ids {
			if id == r.self {
				continue
			}
			p := r.peers[id]
			if p == nil {
				return // an ISR member outside Replicas: nothing safe to compute
			}
			hw = min(hw, p.leo)
		}
	}
	if hw > r.hw {
		r.setHWLocked(hw)
	}
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch as leader: the largest
// epoch <= epoch this log knows and the offset where it ended (see
// EpochCache.EndOffsetFor). It fails with ErrNotLeader on a non-leader.
func (r *Replica) EndOffsetForEpoch(epoch int32) (foundEpoch int32, end int64, err error) {
	return r.endOffsetForEpoch(-1, epoch)
}

// endOffsetForEpoch is EndOffsetForEpoch for a request fenced by
// currentLeaderEpoch (-1: unchecked).
func (r *Replica) endOffsetForEpoch(currentLeaderEpoch, epoch int32) (int32, int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkEpochLocked(currentLeaderEpoch); err != nil {
		return -1, -1, err
	}
	if r.role != roleLeader {
		return -1, -1, fmt.Errorf("%w: %v", ErrNotLeader, r.tp)
	}
	found, end := r.epochs.EndOffsetFor(epoch, r.log.EndOffset())
	return found, end, nil
}

// ISRProposal is an ISR change the leader asks the controller for, with the
// epochs it is based on (cluster.ISRUpdater.AlterISR's arguments).
type ISRProposal struct {
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32
}

// Tick checks the ISR at time now and returns the ISR to propose, ok=false
// when nothing should change. A committed ISR member other than the leader
// leaves it when its LEO differs from the leader's and it has not caught up
// for more than ReplicaLagTime; pending additions join. The driver sends
// the proposal with cluster.ISRUpdater.AlterISR and gives the result to
// ISRCommitted; until then the change has no effect (except that pending
// additions already count for the HW).
func (r *Replica) Tick(now time.Time) (proposal []int32, ok bool) {
	p, ok := r.TickProposal(now)
	return p.ISR, ok
}

// TickProposal is Tick returning the epochs the proposal is based on, read
// under the same lock (what AlterISR needs).
func (r *Replica) TickProposal(now time.Time) (ISRProposal, bool) {
	r.mu.Lock()
	defer r.unlock()
	r.advanceLocked(now)
	if r.role != roleLeader {
		return ISRProposal{}, false
	}
	leo := r.log.EndOffset()
	isr := make([]int32, 0, len(r.state.ISR)+len(r.pendingAdd))
	changed := false
	for _, id := range r.state.ISR {
		if id != r.self {
			p := r.peers[id]
			if p == nil || (p.leo != leo && now.Sub(p.lastCaughtUp) > r.cfg.ReplicaLagTime) {
				changed = true
				continue
			}
		}
		isr = append(isr, id)
	}
	for _, id := range r.pendingAdd {
		if !slices.Contains(isr, id) {
			isr = append(isr, id)
			changed = true
		}
	}
	if !changed {
		return ISRProposal{}, false
	}
	return ISRProposal{
		Leader:         r.self,
		LeaderEpoch:    r.state.LeaderEpoch,
		PartitionEpoch: r.state.PartitionEpoch,
		ISR:            isr,
	}, true
}
