package replication

import (
	"fmt"
	"slices"

	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/internal/batch"
)

// The follower side of a Replica: truncation by leader epoch (KIP-101,
// KIP-279) and appending what the leader sent.

// fetchingLocked reports whether this broker should replicate from a
// leader: it follows, a leader is known, and it is one of the replicas.
func (r *Replica) fetchingLocked() bool {
	return r.role == roleFollower && r.state.Leader != cluster.NoLeader &&
		slices.Contains(r.state.Replicas, r.self)
}

// TruncationNeeded reports whether the follower must truncate before it
// fetches, and the epoch to ask the leader about (OffsetForLeaderEpoch):
// the latest epoch in its cache, or a lower one while KIP-279's rounds go
// on. lastEpoch is -1 when the cache is empty: then there is nothing to
// ask, and Truncate(-1, -1) truncates to the HW (Kafka's behaviour without
// epoch information).
func (r *Replica) TruncationNeeded() (lastEpoch int32, ok bool) {
	_, e, ok := r.truncationNeeded()
	return e, ok
}

// truncationNeeded is TruncationNeeded with the leader epoch the question
// belongs to, for truncateAnswer.
func (r *Replica) truncationNeeded() (leaderEpoch, lastEpoch int32, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.fetchingLocked() || !r.truncating {
		return 0, -1, false
	}
	return r.state.LeaderEpoch, r.truncEpoch, true
}

// Truncate applies the leader's answer to the pending truncation question
// (see TruncationNeeded): leaderEpoch is the largest epoch the leader knows
// that is <= the epoch asked, leaderEnd where it ended on the leader.
//
// Following Kafka (KIP-279): with the cache's end for leaderEpoch
// (foundEpoch, followerEnd):
//
//   - foundEpoch == leaderEpoch: truncate to min(followerEnd, leaderEnd,
//     LEO); done;
//   - foundEpoch < leaderEpoch (the follower does not know the leader's
//     epoch): truncate to min(followerEnd, LEO), which drops the epochs the
//     leader lacks, and ask again with the now-latest epoch;
//   - no epoch information here (cache empty or nothing <= leaderEpoch):
//     truncate to min(leaderEnd, LEO); done;
//   - undefined answer (leaderEnd < 0): no truncation (Kafka truncates to
//     the fetch offset, the LEO); done.
//
// When no epoch was asked (TruncationNeeded gave -1) it truncates to the HW.
// It never truncates by the HW otherwise. The epoch cache is truncated with
// the log and the HW lowered to the new LEO if above. A call when no
// truncation is pending does nothing.
func (r *Replica) Truncate(leaderEpoch int32, leaderEnd int64) error {
	r.mu.Lock()
	defer r.unlock()
	if !r.fetchingLocked() || !r.truncating {
		return nil
	}
	return r.truncateLocked(leaderEpoch, leaderEnd)
}

// truncateAnswer is Truncate for an answer to the question (stateEpoch,
// asked) from truncationNeeded; a stale answer (the state or the question
// moved on) is ignored.
func (r *Replica) truncateAnswer(stateEpoch, asked, leaderEpoch int32, leaderEnd int64) error {
	r.mu.Lock()
	defer r.unlock()
	if !r.fetchingLocked() || !r.truncating || r.state.LeaderEpoch != stateEpoch || r.truncEpoch != asked {
		return nil
	}
	return r.truncateLocked(leaderEpoch, leaderEnd)
}

func (r *Replica) truncateLocked(leaderEpoch int32, leaderEnd int64) error {
	leo := r.log.EndOffset()
	var target int64
	done := true
	switch {
	case r.truncEpoch < 0:
		target = r.hw
	case leaderEpoch < 0 || leaderEnd < 0:
		target = leo
	default:
		found, followerEnd := r.epochs.EndOffsetFor(leaderEpoch, leo)
		switch {
		case found < 0:
			target = min(leaderEnd, leo)
		case found != leaderEpoch:
			target = min(followerEnd, leo)
			done = false
		default:
			target = min(followerEnd, leaderEnd, leo)
		}
	}
	if err := r.truncateLogLocked(target); err != nil {
		return err
	}
	if done {
		r.truncating = false
	} else {
		r.truncEpoch = r.epochs.latestEpoch()
	}
	return nil
}

// truncateLogLocked truncates the log, the epoch cache and the HW to
// offset (or below, where the log cut a whole batch).
func (r *Replica) truncateLogLocked(offset int64) error {
	if offset < r.log.EndOffset() {
		if err := r.log.Truncate(offset); err != nil {
			return fmt.Errorf("replication: %v: truncate to %d: %w", r.tp, offset, err)
		}
	}
	leo := r.log.EndOffset()
	if err := r.epochs.TruncateFrom(leo); err != nil {
		return fmt.Errorf("replication: %v: truncate epochs to %d: %w", r.tp, leo, err)
	}
	if r.hw > leo {
		r.setHWLocked(leo)
	}
	return nil
}

// restartTruncation makes the follower of leader epoch stateEpoch truncate
// again before its next fetch (the leader said its fetch offset is out of
// range).
func (r *Replica) restartTruncation(stateEpoch int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.fetchingLocked() || r.state.LeaderEpoch != stateEpoch {
		return
	}
	r.truncating = true
	r.truncEpoch = r.epochs.latestEpoch()
}

// resetTo empties the log of the follower of leader epoch stateEpoch and
// restarts it at the leader's log start (Kafka's truncateFullyAndStartAt),
// when its log ends below that start. It needs the Log to be a
// LogResetter.
func (r *Replica) resetTo(stateEpoch int32, leaderStart int64) error {
	r.mu.Lock()
	defer r.unlock()
	if !r.fetchingLocked() || r.state.LeaderEpoch != stateEpoch || r.log.EndOffset() >= leaderStart {
		return nil
	}
	lr, ok := r.log.(LogResetter)
	if !ok {
		return fmt.Errorf("replication: %v: log ends at %d, below the leader's start %d, and cannot be reset", r.tp, r.log.EndOffset(), leaderStart)
	}
	if err := lr.ResetTo(leaderStart); err != nil {
		return fmt.Errorf("replication: %v: reset log to %d: %w", r.tp, leaderStart, err)
	}
	if err := r.epochs.clear(); err != nil {
		return err
	}
	r.truncating = false
	r.setHWLocked(leaderStart)
	return nil
}

// FetchPosition is where the follower fetches next: its LEO and the leader
// epoch it knows. ok is false when it does not follow a leader or must
// truncate first.
func (r *Replica) FetchPosition() (offset int64, epoch int32, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.fetchingLocked() || r.truncating {
		return 0, 0, false
	}
	return r.log.EndOffset(), r.state.LeaderEpoch, true
}

// Fetched applies the leader's answer to a fetch made at FetchPosition in
// leader epoch epoch: records (whole batches, possibly none) are appended
// with AppendReplicated, every batch stamped with a leader epoch above the
// cache's latest starts that epoch in the cache, and HW = min(leaderHW,
// LEO). An answer for another epoch than the current, or while truncation
// is pending, is ignored. Records that are not whole valid batches (CRC
// included), that do not start at the LEO, or that carry a leader epoch
// above epoch are refused with an error wrapping ErrInvalidRecords, and
// nothing is appended. leaderLogStart is not used: the follower's own
// retention moves its log start.
func (r *Replica) Fetched(epoch int32, records []byte, leaderHW, leaderLogStart int64) error {
	r.mu.Lock()
	defer r.unlock()
	if !r.fetchingLocked() || r.truncating || epoch != r.state.LeaderEpoch {
		return nil
	}
	leo := r.log.EndOffset()
	var aerr error
	if len(records) > 0 {
		type start struct {
			epoch int32
			base  int64
		}
		var starts []start
		latest := r.epochs.latestEpoch()
		var bad error
		valid, err := batch.Scan(records, len(records), func(pos int, h batch.Header) bool {
			switch {
			case pos == 0 && h.BaseOffset != leo:
				bad = fmt.Errorf("first batch at offset %d, log end is %d", h.BaseOffset, leo)
			case h.PartitionLeaderEpoch > epoch:
				bad = fmt.Errorf("batch at offset %d has leader epoch %d, above the leader's %d", h.BaseOffset, h.PartitionLeaderEpoch, epoch)
			case h.PartitionLeaderEpoch > latest:
				latest = h.PartitionLeaderEpoch
				starts = append(starts, start{h.PartitionLeaderEpoch, h.BaseOffset})
			}
			return bad == nil
		})
		if err == nil {
			err = bad
		}
		if err == nil && valid != len(records) {
			err = fmt.Errorf("%d of %d bytes are batches", valid, len(records))
		}
		if err != nil {
			return fmt.Errorf("%w: %v: %w", ErrInvalidRecords, r.tp, err)
		}
		end, err := r.log.AppendReplicated(records)
		if err != nil {
			return fmt.Errorf("replication: %v: append replicated records at %d: %w", r.tp, leo, err)
		}
		for _, s := range starts {
			if err := r.epochs.Assign(s.epoch, s.base); err != nil && aerr == nil {
				aerr = err
			}
		}
		leo = end
		r.events |= evData
	}
	_ = leaderLogStart // the follower's own log start follows retention, not the leader
	if hw := min(leaderHW, leo); hw != r.hw && hw >= 0 {
		r.setHWLocked(hw)
	}
	return aerr
}
