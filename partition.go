package commitlog

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/replication"
)

// Partition is one partition of a topic: an ordered, append-only log of
// records. Its methods are safe for concurrent use; appends are serialised
// and reads never wait for them.
type Partition struct {
	topic *Topic
	id    int32
	log   *Log

	// repl is the partition's replication state on a broker of a cluster
	// (Options.Cluster), nil on a single broker. roleMu is held for
	// reading across a leader's check-and-append and for writing while
	// the partition changes role, so that no append of an old leader
	// lands after it became a follower.
	repl   *replication.Replica
	roleMu sync.RWMutex
}

// Topic returns the name of the partition's topic.
func (p *Partition) Topic() string { return p.topic.name }

// ID returns the partition's number within its topic.
func (p *Partition) ID() int32 { return p.id }

// Append encodes records into one uncompressed batch and appends it,
// returning the offset of the first record. See AppendBatch.
func (p *Partition) Append(records ...Record) (int64, error) {
	e := getEncoder()
	defer putEncoder(e)
	var err error
	if e.buf, err = e.encode(e.buf[:0], CompressionNone, records); err != nil {
		return -1, err
	}
	return p.AppendBatch(e.buf)
}

// AppendBatch appends one record batch (RecordBatch v2 as on the Kafka
// wire, e.g. made by AppendBatch) and returns its base offset. The batch's
// offsets, and on LogAppendTime topics its timestamps, are rewritten in b.
// When it returns the batch is durable if the broker's SyncPolicy is
// SyncGroupCommit. Errors: ErrRecordTooLarge past the topic's
// MaxMessageBytes, ErrCorruptBatch, ErrClosed, or a sticky I/O error.
//
// On a broker of a cluster it is an acks=all produce: it fails with
// ErrNotLeader unless this broker leads the partition, with
// ErrNotEnoughReplicas when fewer replicas than the topic's
// MinInsyncReplicas are in sync, and returns once the high watermark
// passed the batch.
func (p *Partition) AppendBatch(b []byte) (int64, error) {
	base, next, _, err := p.write(b, AcksAll)
	if err != nil {
		return -1, err
	}
	if err := p.waitAcked(context.Background(), next, AcksAll); err != nil {
		return -1, err
	}
	return base, nil
}

// WriteResult is what WriteBatch reports of an appended batch.
type WriteResult struct {
	BaseOffset    int64 // offset of the batch's first record
	NextOffset    int64 // the partition's end offset after the batch
	LogAppendTime int64 // ms stamped on a LogAppendTime topic, else -1
}

// WriteBatch is AppendBatch without the wait for durability: the batch is
// appended (readable, in the page cache) when it returns, and durable once
// WaitDurable(ctx, result.NextOffset) returns. Callers that append to many
// partitions (a Kafka Produce request) write them all and then wait, so
// that one fsync round covers them.
//
// On a broker of a cluster, acks is checked before the append (acks=all
// needs MinInsyncReplicas in sync) and WaitAcked waits for it afterwards.
func (p *Partition) WriteBatch(b []byte, acks Acks) (WriteResult, error) {
	base, next, at, err := p.write(b, acks)
	return WriteResult{BaseOffset: base, NextOffset: next, LogAppendTime: at}, err
}

// WaitDurable blocks until every record below offset is on stable storage,
// syncing if the broker's SyncPolicy would not do it by itself, or until
// ctx is done.
func (p *Partition) WaitDurable(ctx context.Context, offset int64) error {
	if p.log == nil {
		return p.notHeld()
	}
	return p.log.WaitDurable(ctx, offset)
}

// notHeld is the error of a partition of a cluster that this broker holds
// no replica of.
func (p *Partition) notHeld() error {
	return fmt.Errorf("%w: %s partition %d has no replica on this broker", ErrNotLeader, p.topic.name, p.id)
}

// WaitAcked blocks until the records below offset are written as acks
// promises: for AcksLeader durable on this broker under SyncGroupCommit;
// for AcksAll also below the high watermark on a broker of a cluster (every
// in-sync replica has them). It fails with ErrNotLeader when the broker
// stops leading the partition first.
func (p *Partition) WaitAcked(ctx context.Context, offset int64, acks Acks) error {
	return p.waitAcked(ctx, offset, acks)
}

func (p *Partition) waitAcked(ctx context.Context, offset int64, acks Acks) error {
	if acks == AcksNone {
		return nil
	}
	if p.log == nil {
		return p.notHeld()
	}
	if p.log.cfg.SyncPolicy == SyncGroupCommit {
		if err := p.log.WaitDurable(ctx, offset); err != nil {
			return err
		}
	}
	if acks == AcksAll && p.repl != nil {
		return p.repl.WaitHighWatermark(ctx, offset)
	}
	return nil
}

// write is WriteBatch with plain results.
func (p *Partition) write(b []byte, acks Acks) (base, next, appendTime int64, err error) {
	if p.log == nil {
		return -1, -1, -1, p.notHeld()
	}
	if p.repl != nil {
		p.roleMu.RLock()
		defer p.roleMu.RUnlock()
		if err := p.repl.CheckProduce(acks == AcksAll); err != nil {
			return -1, -1, -1, err
		}
	}
	appendTime = -1
	if p.topic.config().TimestampType == LogAppendTime {
		if _, err := batch.Check(b, p.log.config().MaxBatchBytes); err == nil {
			appendTime = time.Now().UnixMilli()
			batch.SetLogAppendTime(b, appendTime)
		}
	}
	base, next, err = p.log.write(b)
	if err == nil && p.repl != nil {
		p.repl.Appended(p.log.EndOffset())
	}
	return base, next, appendTime, err
}

// Read returns whole record batches from the one holding offset, at most
// maxBytes of them but at least one; see Log.Read. Decode them with
// Records and Release the Slice when done.
// On a broker of a cluster it reads only below the high watermark: records
// every in-sync replica has.
func (p *Partition) Read(offset int64, maxBytes int) (Slice, error) {
	if p.log == nil {
		return Slice{}, p.notHeld()
	}
	if p.repl != nil {
		return p.log.ReadTo(offset, p.repl.HighWatermark(), maxBytes)
	}
	return p.log.Read(offset, maxBytes)
}

// StartOffset returns the first offset the partition still holds.
// A partition of a cluster that this broker holds no replica of reports
// 0 for all of its offsets.
func (p *Partition) StartOffset() int64 {
	if p.log == nil {
		return 0
	}
	return p.log.StartOffset()
}

// EndOffset returns the end of what consumers can read: the offset the next
// record will get on a single broker, the high watermark on a broker of a
// cluster (the records at and after it are not yet on every in-sync
// replica). LogEndOffset is the end of the local log either way.
func (p *Partition) EndOffset() int64 {
	if p.log == nil {
		return 0
	}
	if p.repl != nil {
		return p.repl.HighWatermark()
	}
	return p.log.EndOffset()
}

// LogEndOffset returns the offset the next record appended to the local
// log gets (Kafka's log end offset, LEO).
func (p *Partition) LogEndOffset() int64 {
	if p.log == nil {
		return 0
	}
	return p.log.EndOffset()
}

// HighWatermark returns the offset below which every in-sync replica has
// the records: EndOffset.
func (p *Partition) HighWatermark() int64 { return p.EndOffset() }

// Leader reports whether this broker leads the partition: always on a
// single broker.
func (p *Partition) Leader() bool { return p.log != nil && (p.repl == nil || p.repl.IsLeader()) }

// DurableOffset returns the offset below which every record is fsynced.
func (p *Partition) DurableOffset() int64 {
	if p.log == nil {
		return 0
	}
	return p.log.DurableOffset()
}

// OffsetForTime returns the offset of the first record whose timestamp is
// at or after ts; ok is false when every record is older.
func (p *Partition) OffsetForTime(ts time.Time) (offset int64, ok bool, err error) {
	if p.log == nil {
		return 0, false, p.notHeld()
	}
	return p.log.OffsetForTime(ts.UnixMilli())
}

// Wait blocks until the partition holds a record at offset (its end offset
// passes offset), ctx is done, or the broker closes. It does not poll: an
// append wakes it.
func (p *Partition) Wait(ctx context.Context, offset int64) error {
	if p.log == nil {
		return p.notHeld()
	}
	return p.log.waitTo(ctx, offset, p.EndOffset)
}

// NotifyData makes every append to the partition try a non-blocking send
// on ch until stop is called; see Log.NotifyData.
func (p *Partition) NotifyData(ch chan<- struct{}) (stop func()) {
	if p.log == nil {
		return func() {}
	}
	return p.log.NotifyData(ch)
}
