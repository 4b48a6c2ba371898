package replication

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/internal/batch"
)

// memLog is an in-memory Log made of real RecordBatch v2 bytes.
type memLog struct {
	mu      sync.Mutex
	start   int64
	end     int64
	batches [][]byte // whole batches, in offset order
	epoch   int32    // leader epoch stamped by appendLeader
	grow    chan struct{}
}

func newMemLog() *memLog { return &memLog{grow: make(chan struct{}), epoch: -1} }

func (l *memLog) StartOffset() int64 { l.mu.Lock(); defer l.mu.Unlock(); return l.start }
func (l *memLog) EndOffset() int64   { l.mu.Lock(); defer l.mu.Unlock(); return l.end }

func (l *memLog) SetLeaderEpoch(e int32) { l.mu.Lock(); defer l.mu.Unlock(); l.epoch = e }

func hdr(b []byte) batch.Header {
	h, err := batch.ReadHeader(b)
	if err != nil {
		panic(err)
	}
	return h
}

func (l *memLog) ReadBatches(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset < l.start || offset > l.end {
		return dst, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, l.start, l.end)
	}
	n := 0
	for _, b := range l.batches {
		if hdr(b).NextOffset() <= offset {
			continue
		}
		if n > 0 && n+len(b) > maxBytes {
			break
		}
		dst = append(dst, b...)
		n += len(b)
	}
	return dst, nil
}

func (l *memLog) AppendReplicated(bs []byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var split [][]byte
	end := l.end
	valid, err := batch.Scan(bs, len(bs), func(pos int, h batch.Header) bool {
		if pos == 0 && h.BaseOffset != l.end {
			err := fmt.Errorf("first batch at %d, end %d", h.BaseOffset, l.end)
			panic(err) // Replica must have checked
		}
		split = append(split, bytes.Clone(bs[pos:pos+h.Size()]))
		end = h.NextOffset()
		return true
	})
	if err != nil || valid != len(bs) {
		return l.end, fmt.Errorf("bad batches: %v", err)
	}
	l.batches = append(l.batches, split...)
	l.end = end
	l.wakeLocked()
	return l.end, nil
}

func (l *memLog) wakeLocked() {
	close(l.grow)
	l.grow = make(chan struct{})
}

func (l *memLog) Truncate(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.batches) > 0 && hdr(l.batches[len(l.batches)-1]).NextOffset() > offset {
		l.batches = l.batches[:len(l.batches)-1]
	}
	if len(l.batches) > 0 {
		l.end = hdr(l.batches[len(l.batches)-1]).NextOffset()
	} else {
		l.end = l.start
	}
	return nil
}

func (l *memLog) ResetTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = nil
	l.start, l.end = offset, offset
	return nil
}

func (l *memLog) Wait(ctx context.Context, offset int64) error {
	for {
		l.mu.Lock()
		if l.end > offset {
			l.mu.Unlock()
			return nil
		}
		ch := l.grow
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// appendLeader appends one batch of the given values as leader, stamped
// with the log's leader epoch, and returns the new end.
func (l *memLog) appendLeader(values ...string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := buildBatch(l.end, l.epoch, values...)
	l.batches = append(l.batches, b)
	l.end = hdr(b).NextOffset()
	l.wakeLocked()
	return l.end
}

// appendEpoch appends a batch of n records stamped with epoch, whatever
// the log's epoch (to build divergent logs).
func (l *memLog) appendEpoch(epoch int32, n int) int64 {
	vals := make([]string, n)
	for i := range vals {
		vals[i] = fmt.Sprintf("e%d-%d", epoch, i)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := buildBatch(l.end, epoch, vals...)
	l.batches = append(l.batches, b)
	l.end = hdr(b).NextOffset()
	l.wakeLocked()
	return l.end
}

// content is the log's bytes below offset (whole batches).
func (l *memLog) content(below int64) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	for _, b := range l.batches {
		if hdr(b).NextOffset() <= below {
			out = append(out, b...)
		}
	}
	return out
}

// epochAt is the leader epoch of the batch holding offset, or -2.
func (l *memLog) epochAt(offset int64) int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.batches {
		h := hdr(b)
		if h.BaseOffset <= offset && offset < h.NextOffset() {
			return h.PartitionLeaderEpoch
		}
	}
	return -2
}

// valueAt is the value of the record at offset, or "".
func (l *memLog) valueAt(offset int64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var it batch.Iter
	for _, b := range l.batches {
		h := hdr(b)
		if h.BaseOffset <= offset && offset < h.NextOffset() {
			if err := it.Reset(b, 1<<20); err != nil {
				panic(err)
			}
			for rec, ok := it.Next(); ok; rec, ok = it.Next() {
				if h.RecordOffset(rec.OffsetDelta) == offset {
					return string(rec.Value)
				}
			}
		}
	}
	return ""
}

// buildBatch builds a real batch at base stamped with epoch.
func buildBatch(base int64, epoch int32, values ...string) []byte {
	var bld batch.Builder
	bld.Reset(batch.CodecNone)
	for i, v := range values {
		bld.Add(int64(1000+i), nil, []byte(v), nil)
	}
	b, err := bld.Build(nil)
	if err != nil {
		panic(err)
	}
	batch.SetBaseOffset(b, base)
	batch.SetPartitionLeaderEpoch(b, epoch)
	return b
}

var (
	tp0 = cluster.TopicPartition{Topic: "t", Partition: 0}
	t0  = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

// newTestReplica makes a replica of tp0 on broker self over a fresh log
// and an epoch cache in a temporary directory.
func newTestReplica(t *testing.T, self int32, cfg Config) (*Replica, *memLog) {
	t.Helper()
	l := newMemLog()
	c, err := OpenEpochCache(filepath.Join(t.TempDir(), EpochCheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	return NewReplica(tp0, self, l, c, cfg), l
}

// state builds a PartitionState.
func state(leader, epoch, pepoch int32, replicas, isr []int32) cluster.PartitionState {
	return cluster.PartitionState{Replicas: replicas, ISR: isr, Leader: leader, LeaderEpoch: epoch, PartitionEpoch: pepoch}
}

// checkInvariants checks what Replica documents, from outside.
func checkInvariants(t *testing.T, r *Replica) {
	t.Helper()
	if hw, leo := r.HighWatermark(), r.log.EndOffset(); hw > leo {
		t.Fatalf("HW %d above LEO %d", hw, leo)
	}
	es := r.epochs.Entries()
	for i := 1; i < len(es); i++ {
		if es[i].Epoch <= es[i-1].Epoch || es[i].StartOffset <= es[i-1].StartOffset {
			t.Fatalf("epoch entries not increasing: %v", es)
		}
	}
	if len(es) > 0 && es[len(es)-1].StartOffset > r.log.EndOffset() {
		t.Fatalf("epoch entry %v past LEO %d", es[len(es)-1], r.log.EndOffset())
	}
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ids(v ...int32) []int32 { return v }

func sameSet(a, b []int32) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
