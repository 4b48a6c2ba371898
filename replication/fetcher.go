package replication

import (
	"errors"
	"time"

	"github.com/streamkit/commitlog/cluster"
)

// fetcher replicates, from one leader broker, every partition this Node
// follows there (Kafka's ReplicaFetcherThread). Each round it truncates the
// partitions that need it (OffsetForLeaderEpoch), then fetches the others
// in one long-polling request. It exits when it has no partition left;
// Node.Apply starts a new one when needed (both under Node.mu, so no
// partition is ever left without a fetcher).
type fetcher struct {
	n      *Node
	leader int32
	kickCh chan struct{} // capacity 1: the partition set may have changed
}

// kick wakes the fetcher if it is waiting.
func (f *fetcher) kick() {
	select {
	case f.kickCh <- struct{}{}:
	default:
	}
}

// fetchedPartition is one partition of a round, with the state its request
// was made in.
type fetchedPartition struct {
	r           *Replica
	leaderEpoch int32
	offset      int64
}

func (f *fetcher) run() {
	defer f.n.wg.Done()
	backoff := time.Duration(0)
	for {
		rs, ok := f.partitions()
		if !ok {
			return
		}
		progress, failed := f.round(rs)
		switch {
		case f.n.ctx.Err() != nil:
			return
		case failed:
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
		case progress:
			backoff = 0
			continue
		}
		// Nothing to do, or an error: wait for a kick (the set of
		// partitions changed) or the back-off.
		wait := backoff
		if wait == 0 {
			wait = maxBackoff
		}
		t := time.NewTimer(wait)
		select {
		case <-f.n.ctx.Done():
			t.Stop()
			return
		case <-f.kickCh:
		case <-t.C:
		}
		t.Stop()
	}
}

// partitions returns the replicas following f.leader; with none, it
// unregisters the fetcher and returns false.
func (f *fetcher) partitions() ([]*Replica, bool) {
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, false
	}
	var rs []*Replica
	for _, r := range n.replicas {
		st := r.State()
		if st.Leader == f.leader && st.Leader != n.cfg.BrokerID {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		if n.fetchers[f.leader] == f {
			delete(n.fetchers, f.leader)
		}
		return nil, false
	}
	return rs, true
}

// round truncates and fetches once. progress reports that a partition
// moved (truncated or fetched without error); failed that the transport or
// a partition failed.
func (f *fetcher) round(rs []*Replica) (progress, failed bool) {
	n := f.n
	var truncs []fetchedPartition // offset holds the epoch asked
	var fetches []fetchedPartition
	for _, r := range rs {
		if le, asked, ok := r.truncationNeeded(); ok {
			if asked < 0 {
				// No epoch information: truncate to the HW, nothing to ask.
				if err := r.truncateAnswer(le, asked, -1, -1); err != nil {
					n.logf("%v: truncate: %v", r.tp, err)
					failed = true
				} else {
					progress = true
				}
				continue
			}
			truncs = append(truncs, fetchedPartition{r: r, leaderEpoch: le, offset: int64(asked)})
			continue
		}
		if off, le, ok := r.FetchPosition(); ok {
			fetches = append(fetches, fetchedPartition{r: r, leaderEpoch: le, offset: off})
		}
	}
	if len(truncs) > 0 {
		p, fl := f.truncate(truncs)
		progress, failed = progress || p, failed || fl
	}
	if len(fetches) > 0 {
		p, fl := f.fetch(fetches)
		progress, failed = progress || p, failed || fl
	}
	return progress, failed
}

// truncate asks the leader where the partitions' epochs ended and
// truncates them.
func (f *fetcher) truncate(ps []fetchedPartition) (progress, failed bool) {
	n := f.n
	req := &EpochRequest{ReplicaID: n.cfg.BrokerID, Partitions: make([]EpochQuery, len(ps))}
	for i, p := range ps {
		req.Partitions[i] = EpochQuery{Partition: p.r.tp, CurrentLeaderEpoch: p.leaderEpoch, LeaderEpoch: int32(p.offset)}
	}
	resp, err := n.cfg.Transport.OffsetForLeaderEpoch(n.ctx, f.leader, req)
	if err != nil {
		if n.ctx.Err() == nil {
			n.logf("offset for leader epoch from broker %d: %v", f.leader, err)
		}
		return false, true
	}
	answers := indexAnswers(resp.Partitions, func(a EpochAnswer) cluster.TopicPartition { return a.Partition })
	for _, p := range ps {
		a, ok := answers[p.r.tp]
		switch {
		case !ok:
			failed = true
		case a.Err != nil:
			n.logf("%v: offset for leader epoch %d from broker %d: %v", p.r.tp, p.offset, f.leader, a.Err)
			failed = true
		default:
			if err := p.r.truncateAnswer(p.leaderEpoch, int32(p.offset), a.LeaderEpoch, a.EndOffset); err != nil {
				n.logf("%v: truncate: %v", p.r.tp, err)
				failed = true
			} else {
				progress = true
			}
		}
	}
	return progress, failed
}

// fetch fetches the partitions from their positions and applies the
// answers.
func (f *fetcher) fetch(ps []fetchedPartition) (progress, failed bool) {
	n := f.n
	req := &FetchRequest{
		ReplicaID:  n.cfg.BrokerID,
		MaxWait:    n.cfg.FetchMaxWait,
		MaxBytes:   n.cfg.FetchMaxBytes * requestBytesFactor,
		Partitions: make([]FetchPartition, len(ps)),
	}
	for i, p := range ps {
		req.Partitions[i] = FetchPartition{Partition: p.r.tp, CurrentLeaderEpoch: p.leaderEpoch, FetchOffset: p.offset, MaxBytes: n.cfg.FetchMaxBytes}
	}
	resp, err := n.cfg.Transport.Fetch(n.ctx, f.leader, req)
	if err != nil {
		if n.ctx.Err() == nil {
			n.logf("fetch from broker %d: %v", f.leader, err)
		}
		return false, true
	}
	answers := indexAnswers(resp.Partitions, func(a FetchedPartition) cluster.TopicPartition { return a.Partition })
	for _, p := range ps {
		a, ok := answers[p.r.tp]
		switch {
		case !ok:
			failed = true
		case errors.Is(a.Err, ErrOffsetOutOfRange):
			failed = true
			if p.offset < a.LogStartOffset {
				// The leader deleted what this follower lacks.
				if err := p.r.resetTo(p.leaderEpoch, a.LogStartOffset); err != nil {
					n.logf("%v: %v", p.r.tp, err)
				}
			} else {
				// The follower is ahead of the leader: truncate again.
				p.r.restartTruncation(p.leaderEpoch)
			}
		case a.Err != nil:
			n.logf("%v: fetch from broker %d: %v", p.r.tp, f.leader, a.Err)
			failed = true
		default:
			if err := p.r.Fetched(p.leaderEpoch, a.Records, a.HighWatermark, a.LogStartOffset); err != nil {
				n.logf("%v: %v", p.r.tp, err)
				failed = true
			} else {
				progress = true
			}
		}
	}
	return progress, failed
}

// indexAnswers maps answers by partition.
func indexAnswers[A any](as []A, key func(A) cluster.TopicPartition) map[cluster.TopicPartition]A {
	m := make(map[cluster.TopicPartition]A, len(as))
	for _, a := range as {
		m[key(a)] = a
	}
	return m
}
