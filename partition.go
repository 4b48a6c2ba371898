package commitlog

import (
	"context"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
)

// Partition is one partition of a topic: an ordered, append-only log of
// records. Its methods are safe for concurrent use; appends are serialised
// and reads never wait for them.
type Partition struct {
	topic *Topic
	id    int32
	log   *Log
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
func (p *Partition) AppendBatch(b []byte) (int64, error) {
	base, next, _, err := p.write(b)
	if err != nil {
		return -1, err
	}
	if p.log.cfg.SyncPolicy == SyncGroupCommit {
		if err := p.log.WaitDurable(context.Background(), next); err != nil {
			return -1, err
		}
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
func (p *Partition) WriteBatch(b []byte) (WriteResult, error) {
	base, next, at, err := p.write(b)
	return WriteResult{BaseOffset: base, NextOffset: next, LogAppendTime: at}, err
}

// WaitDurable blocks until every record below offset is on stable storage,
// syncing if the broker's SyncPolicy would not do it by itself, or until
// ctx is done.
func (p *Partition) WaitDurable(ctx context.Context, offset int64) error {
	return p.log.WaitDurable(ctx, offset)
}

// write is WriteBatch with plain results.
func (p *Partition) write(b []byte) (base, next, appendTime int64, err error) {
	appendTime = -1
	if p.topic.cfg.TimestampType == LogAppendTime {
		if _, err := batch.Check(b, p.log.cfg.MaxBatchBytes); err == nil {
			appendTime = time.Now().UnixMilli()
			batch.SetLogAppendTime(b, appendTime)
		}
	}
	base, next, err = p.log.write(b)
	return base, next, appendTime, err
}

// Read returns whole record batches from the one holding offset, at most
// maxBytes of them but at least one; see Log.Read. Decode them with
// Records and Release the Slice when done.
func (p *Partition) Read(offset int64, maxBytes int) (Slice, error) {
	return p.log.Read(offset, maxBytes)
}

// StartOffset returns the first offset the partition still holds.
func (p *Partition) StartOffset() int64 { return p.log.StartOffset() }

// EndOffset returns the offset the next record will get.
func (p *Partition) EndOffset() int64 { return p.log.EndOffset() }

// DurableOffset returns the offset below which every record is fsynced.
func (p *Partition) DurableOffset() int64 { return p.log.DurableOffset() }

// OffsetForTime returns the offset of the first record whose timestamp is
// at or after ts; ok is false when every record is older.
func (p *Partition) OffsetForTime(ts time.Time) (offset int64, ok bool, err error) {
	return p.log.OffsetForTime(ts.UnixMilli())
}

// Wait blocks until the partition holds a record at offset (its end offset
// passes offset), ctx is done, or the broker closes. It does not poll: an
// append wakes it.
func (p *Partition) Wait(ctx context.Context, offset int64) error {
	return p.log.WaitData(ctx, offset)
}

// NotifyData makes every append to the partition try a non-blocking send
// on ch until stop is called; see Log.NotifyData.
func (p *Partition) NotifyData(ch chan<- struct{}) (stop func()) { return p.log.NotifyData(ch) }
