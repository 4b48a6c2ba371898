package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/vfs"
)

// Idempotent producers (Kafka's KIP-98 without transactions). A batch
// written with a producer id (>= 0) carries the producer's epoch and the
// sequence number of its first record. Per producer id the log keeps the
// epoch and its last producerBatches batches, and checks every new batch
// against them under the writer's lock, before offsets are assigned:
//
//   - the same first and last sequence as a kept batch is a retry: Append
//     returns that batch's base offset and writes nothing;
//   - an older epoch fails with ErrInvalidProducerEpoch;
//   - a newer epoch must start at sequence 0, and a batch of the current
//     epoch must follow the last one (sequences wrap after MaxInt32), else
//     ErrOutOfOrderSequence;
//   - a producer id the log does not know starts its state there.
//
// The state is rebuilt from batch headers. So that opening stays fast, a
// snapshot is written when a segment rolls and on a clean close; open reads
// it and the batches after its offset.
//
// Snapshot file format (producer-snapshot, big-endian):
//
//	magic "CLPS" | version uint16 = 1 | offset int64 | count uint32 |
//	count × (producer id int64 | epoch int16 | last write ms int64 |
//	         batches uint8 | batches × (first seq int32 | last seq int32 |
//	                                    base offset int64))
//	| CRC-32C (Castagnoli) uint32 of everything before it
//
// A snapshot that fails its CRC or does not parse is ignored and the state
// is rebuilt from the whole log.

const (
	producerBatches      = 5 // batches kept per producer, as Kafka does
	producerSnapshotFile = "producer-snapshot"
	producerSnapshotV1   = 1
	// producerExpiration drops producers idle this long from snapshots
	// (Kafka's producer.id.expiration.ms).
	producerExpiration = 24 * time.Hour
	// maxSnapshotProducers bounds what a snapshot may claim before any
	// allocation.
	maxSnapshotProducers = 1 << 24
)

var (
	// ErrOutOfOrderSequence is returned for a batch of an idempotent
	// producer whose sequence does not follow the previous batch
	// (OUT_OF_ORDER_SEQUENCE_NUMBER). Nothing is appended.
	ErrOutOfOrderSequence = errors.New("commitlog: out of order sequence number")
	// ErrInvalidProducerEpoch is returned for a batch from a producer epoch
	// older than the latest (INVALID_PRODUCER_EPOCH): a fenced zombie.
	// Nothing is appended.
	ErrInvalidProducerEpoch = errors.New("commitlog: invalid producer epoch")
)

// producerBatch is one kept batch of a producer.
type producerBatch struct {
	firstSeq, lastSeq int32
	base              int64
}

// producerEntry is the state of one producer id.
type producerEntry struct {
	epoch     int16
	lastWrite int64           // ms, the last batch's max timestamp
	batches   []producerBatch // oldest first, at most producerBatches
}

// producers is a log's producer state. It is guarded by the log's mutex.
type producers map[int64]*producerEntry

// lastSeq returns the sequence after which the next batch must start.
func seqAfter(last int32, n int32) int32 {
	return int32((int64(last) + int64(n)) % (math.MaxInt32 + 1))
}

// check looks at a batch about to be appended. It returns the base offset
// of the original when the batch is a retry (dup), or an error.
func (ps producers) check(h batch.Header) (dup int64, isDup bool, err error) {
	if h.ProducerID < 0 {
		return 0, false, nil
	}
	e, ok := ps[h.ProducerID]
	if !ok {
		return 0, false, nil
	}
	first, last := h.BaseSequence, seqAfter(h.BaseSequence, h.LastOffsetDelta)
	switch {
	case h.ProducerEpoch < e.epoch:
		return 0, false, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
	case h.ProducerEpoch > e.epoch:
		if first != 0 {
			return 0, false, fmt.Errorf("%w: producer %d new epoch %d starts at sequence %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, first)
		}
		return 0, false, nil
	}
	for _, b := range e.batches {
		if b.firstSeq == first && b.lastSeq == last {
			return b.base, true, nil
		}
	}
	if n := len(e.batches); n > 0 {
		if want := seqAfter(e.batches[n-1].lastSeq, 1); first != want {
			return 0, false, fmt.Errorf("%w: producer %d epoch %d sent sequence %d, expected %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, first, want)
		}
	}
	return 0, false, nil
}

// update records an appended batch (h.BaseOffset assigned).
func (ps producers) update(h batch.Header) {
	if h.ProducerID < 0 {
		return
	}
	e, ok := ps[h.ProducerID]
	if !ok || h.ProducerEpoch != e.epoch {
		e = &producerEntry{epoch: h.ProducerEpoch}
		ps[h.ProducerID] = e
	}
	if len(e.batches) == producerBatches {
		copy(e.batches, e.batches[1:])
		e.batches = e.batches[:producerBatches-1]
	}
	e.batches = append(e.batches, producerBatch{firstSeq: h.BaseSequence, lastSeq: seqAfter(h.BaseSequence, h.LastOffsetDelta), base: h.BaseOffset})
	e.lastWrite = max(e.lastWrite, h.MaxTimestamp)
}

// truncate forgets batches at or after end.
func (ps producers) truncate(end int64) {
	for id, e := range ps {
		n := 0
		for _, b := range e.batches {
			if b.base < end {
				e.batches[n] = b
				n++
			}
		}
		e.batches = e.batches[:n]
		if n == 0 {
			delete(ps, id)
		}
	}
}

var snapshotMagic = [4]byte{'C', 'L', 'P', 'S'}

// encode serialises the state as of offset, leaving out producers idle
// since before now - producerExpiration.
func (ps producers) encode(offset int64, now time.Time) []byte {
	cutoff := now.Add(-producerExpiration).UnixMilli()
	b := append([]byte(nil), snapshotMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, producerSnapshotV1)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	countAt := len(b)
	b = binary.BigEndian.AppendUint32(b, 0)
	count := 0
	for id, e := range ps {
		if e.lastWrite < cutoff {
			continue
		}
		count++
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastWrite))
		b = append(b, byte(len(e.batches)))
		for _, pb := range e.batches {
			b = binary.BigEndian.AppendUint32(b, uint32(pb.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(pb.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.base))
		}
	}
	binary.BigEndian.PutUint32(b[countAt:], uint32(count))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decodeSnapshot parses a snapshot; ok is false for anything invalid.
func decodeSnapshot(b []byte) (ps producers, offset int64, ok bool) {
	const head = 4 + 2 + 8 + 4
	if len(b) < head+4 || [4]byte(b[:4]) != snapshotMagic || binary.BigEndian.Uint16(b[4:]) != producerSnapshotV1 {
		return nil, 0, false
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, 0, false
	}
	offset = int64(binary.BigEndian.Uint64(b[6:]))
	count := binary.BigEndian.Uint32(b[14:])
	if count > maxSnapshotProducers || int(count)*(8+2+8+1) > len(body)-head {
		return nil, 0, false
	}
	ps = make(producers, count)
	p := body[head:]
	for range count {
		if len(p) < 19 {
			return nil, 0, false
		}
		id := int64(binary.BigEndian.Uint64(p))
		e := &producerEntry{epoch: int16(binary.BigEndian.Uint16(p[8:])), lastWrite: int64(binary.BigEndian.Uint64(p[10:]))}
		n := int(p[18])
		p = p[19:]
		if n > producerBatches || len(p) < n*16 {
			return nil, 0, false
		}
		for range n {
			e.batches = append(e.batches, producerBatch{
				firstSeq: int32(binary.BigEndian.Uint32(p)),
				lastSeq:  int32(binary.BigEndian.Uint32(p[4:])),
				base:     int64(binary.BigEndian.Uint64(p[8:])),
			})
			p = p[16:]
		}
		ps[id] = e
	}
	if len(p) != 0 {
		return nil, 0, false
	}
	return ps, offset, true
}

// saveProducersLocked writes the producer snapshot as of the end offset.
func (l *Log) saveProducersLocked() error {
	data := l.producers.encode(l.end.Load(), time.Now())
	return vfs.WriteFileAtomic(l.fs, filepath.Join(l.dir, producerSnapshotFile), data, 0o644)
}

// loadProducers rebuilds the producer state on open: from the snapshot
// and the batches after it, or from every batch when there is no usable
// snapshot.
func (l *Log) loadProducers(segs []*segment) error {
	from := int64(-1)
	l.producers = producers{}
	if data, err := os.ReadFile(filepath.Join(l.dir, producerSnapshotFile)); err == nil {
		if ps, off, ok := decodeSnapshot(data); ok && off <= segs[len(segs)-1].next.Load() {
			l.producers, from = ps, off
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if from >= 0 {
		l.producers.truncate(segs[len(segs)-1].next.Load())
	}
	for _, s := range segs {
		if s.next.Load() <= from {
			continue
		}
		pos := int64(0)
		if from > s.base {
			pos = s.index.lookup(from)
		}
		_, err := s.walk(s.data(), pos, false, func(_ int64, h batch.Header) error {
			if h.BaseOffset >= from {
				l.producers.update(h)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
