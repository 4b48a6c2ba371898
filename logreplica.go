package commitlog

import (
	"context"
	"fmt"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/invariants"
)

// The log's side of replication: what a follower does to its log (append
// the leader's batches as they are, truncate to the leader's epoch end) and
// what a leader reads for its followers and consumers (up to a limit: the
// log end for followers, the high watermark for consumers).

// AppendReplicated appends record batches exactly as a leader sent them:
// their base offsets and partition leader epochs are kept, nothing is
// rewritten. The first batch must start at or after EndOffset and each
// next one at or after the end of the one before (compaction leaves gaps
// in offsets, never overlaps). Every batch is validated (size, magic,
// CRC) before anything is written; a batch that does not fit the rules
// fails the whole call with ErrCorruptBatch. It returns the new end offset;
// durability follows the log's SyncPolicy as for Append's write.
func (l *Log) AppendReplicated(b []byte) (int64, error) {
	hs, err := checkReplicated(b, l.cfg.MaxBatchBytes)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return 0, err
	}
	next := l.end.Load()
	if len(hs) > 0 && hs[0].BaseOffset < next {
		return 0, fmt.Errorf("%w: replicated batch at offset %d below the log end %d", ErrCorruptBatch, hs[0].BaseOffset, next)
	}
	pos := 0
	now := time.Now()
	for _, h := range hs {
		b := b[pos : pos+h.Size()]
		pos += h.Size()
		if l.active.full(h, h.BaseOffset, &l.cfg, now) {
			if err := l.rollLocked(); err != nil {
				return 0, err
			}
		}
		seg := l.active
		if err := seg.append(b, h, &l.cfg); err != nil {
			l.err = err
			return 0, err
		}
		next = h.NextOffset()
		l.producers.update(h)
		seg.publish(seg.size.Load()+int64(len(b)), next)
		l.end.Store(next)
	}
	if invariants.Enabled {
		l.checkLocked(segs(l.active))
	}
	if len(hs) > 0 {
		l.dataCh.broadcast()
		l.sync.written()
	}
	return next, nil
}

// checkReplicated validates a run of batches and returns their headers: each
// whole, within maxBatch, and starting where the previous one ended or
// later.
func checkReplicated(b []byte, maxBatch int) ([]batch.Header, error) {
	var hs []batch.Header
	next := int64(-1)
	for len(b) > 0 {
		h, err := batch.Check(b, maxBatch)
		if err != nil {
			return nil, fmt.Errorf("%w: replicated batch %d: %w", ErrCorruptBatch, len(hs), err)
		}
		if h.BaseOffset < next {
			return nil, fmt.Errorf("%w: replicated batch at offset %d overlaps the one before (ending at %d)", ErrCorruptBatch, h.BaseOffset, next)
		}
		next = h.NextOffset()
		hs = append(hs, h)
		b = b[h.Size():]
	}
	return hs, nil
}

// SetLeaderEpoch sets the partition leader epoch stamped on every batch
// appended from now on (Append and its kin; AppendReplicated keeps the
// leader's stamps).
func (l *Log) SetLeaderEpoch(epoch int32) {
	l.mu.Lock()
	l.leaderEpoch = epoch
	l.mu.Unlock()
}

// ReadTo is Read that stops before the first batch at or after limit: a
// leader serves consumers up to its high watermark. At or past limit (but
// within the log) it returns an empty Slice.
func (l *Log) ReadTo(offset, limit int64, maxBytes int) (Slice, error) {
	return l.read(offset, limit, maxBytes)
}

// ReadBatches appends to dst a copy of the whole batches Read(offset,
// maxBytes) returns: a replica serving a follower over a transport that
// cannot send from the mapping.
func (l *Log) ReadBatches(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	s, err := l.Read(offset, maxBytes)
	if err != nil {
		return dst, err
	}
	dst = append(dst, s.Bytes...)
	s.Release()
	return dst, nil
}

// waitTo blocks until limit() passes offset, waking on every append and
// on every wake of the log's data notifier (a high watermark that moves
// wakes it too), or ctx is done.
func (l *Log) waitTo(ctx context.Context, offset int64, limit func() int64) error {
	for {
		ch := l.dataCh.wait()
		if limit() > offset {
			return nil
		}
		if l.segs.Load() == nil {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ResetTo empties the log and restarts it at offset, which becomes both
// its start and its end offset (Kafka's truncateFullyAndStartAt): a
// follower whose log ends below its leader's start offset (retention
// deleted what it lacks) starts again where the leader's log starts. The
// old segments are deleted (readers holding Slices keep theirs), the
// producer state goes with them, and the change is durable when ResetTo
// returns.
func (l *Log) ResetTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("%w: reset to offset %d", ErrOffsetOutOfRange, offset)
	}
	old := l.segs.Load().segs
	if err := l.active.seal(); err != nil {
		l.err = fmt.Errorf("commitlog: reset %s: %w", l.dir, err)
		return l.err
	}
	// The old segments go first (one of them may have offset's file
	// names). A crash before the new one exists leaves an empty directory,
	// which opens as an empty log at 0: the follower resets again.
	for _, s := range old {
		if err := s.markDeleted(); err != nil {
			l.err = fmt.Errorf("commitlog: reset %s: %w", l.dir, err)
			return l.err
		}
	}
	seg, err := createSegment(l.fs, l.dir, offset, l.config())
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		l.err = fmt.Errorf("commitlog: reset %s: %w", l.dir, err)
		return l.err
	}
	l.segs.Store(&segmentList{segs: []*segment{seg}})
	l.active = seg
	for _, s := range old {
		s.release()
	}
	clear(l.producers)
	l.end.Store(offset)
	l.sync.truncated(offset)
	l.sync.advance(offset)
	if err := l.saveProducersLocked(); err != nil {
		l.err = fmt.Errorf("commitlog: reset %s: producer snapshot: %w", l.dir, err)
		return l.err
	}
	if invariants.Enabled {
		l.checkLocked(nil)
	}
	l.dataCh.broadcast()
	return nil
}
