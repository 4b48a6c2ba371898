package commitlog

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
)

// Records and record batches.
//
// A log stores record batches (Kafka's RecordBatch v2, drawn in
// internal/batch/format.go), never loose records. AppendBatch and
// Log.AppendRecords encode Records into one batch; Records decodes the
// batches of a Slice back into Records. Both reuse pooled codec state, so in
// steady state neither allocates per record.

// Record is one record of a log: an optional key, a value, headers and a
// timestamp, at an offset. A Record yielded by Records aliases memory that
// the iteration reuses; see Records for how long it stays valid.
type Record struct {
	// Topic and Partition say where the record goes or came from. A
	// Producer reads Topic, and Partition only with ManualPartitioner; it
	// fills Partition in. A Consumer fills both. A Log ignores them.
	Topic     string
	Partition int32
	// Offset is the record's position in its log. Records sets it to the
	// batch's base offset plus the record's offset delta; AppendBatch and
	// Log.AppendRecords ignore it, since the log assigns offsets.
	Offset int64
	// Timestamp is the record's create time, stored to the millisecond
	// (Kafka's CreateTime). AppendBatch stores time.Now() in place of a zero
	// Timestamp. For a batch written with LogAppendTime, Records reports the
	// batch's append time for every record.
	Timestamp time.Time
	// Key and Value are the record's payload. A nil Key or Value is stored
	// as null, which Kafka distinguishes from empty: Records returns nil for
	// null and a non-nil empty slice for empty. Compaction keeps the last
	// record of each key; a null Value is a tombstone.
	Key, Value []byte
	// Headers are metadata pairs carried with the record, in order. Keys
	// may repeat.
	Headers []Header
}

// Header is one record header: a key and a value, which may be nil (null).
type Header struct {
	Key   string
	Value []byte
}

// Compression is the codec that compresses a record batch. A batch is
// compressed as a whole, so larger batches compress better.
type Compression int8

// The compressions Kafka defines, with Kafka's numbers (bits 0-2 of a
// batch's attributes).
const (
	CompressionNone   Compression = 0
	CompressionGzip   Compression = 1
	CompressionSnappy Compression = 2 // xerial framing, as the Java client writes it
	CompressionLZ4    Compression = 3 // LZ4 frame format
	CompressionZstd   Compression = 4
)

// String returns Kafka's name for c ("none", "gzip", "snappy", "lz4",
// "zstd").
func (c Compression) String() string {
	if c.valid() {
		return batch.Codec(c).String()
	}
	return "Compression(" + strconv.Itoa(int(c)) + ")"
}

func (c Compression) valid() bool { return batch.Codec(c).Valid() }

// ErrNoRecords is returned by AppendBatch and Log.AppendRecords when given
// no records: a record batch holds at least one.
var ErrNoRecords = errors.New("commitlog: no records")

// maxPooledBytes bounds the buffers kept in the codec pools, so that one
// huge batch does not pin its memory for the life of the process.
const maxPooledBytes = 4 << 20

// encoder is the pooled state of AppendBatch and Log.AppendRecords.
type encoder struct {
	b    batch.Builder
	hdrs []batch.RecordHeader // one record's headers, converted
	buf  []byte               // AppendRecords' output
}

var encoders = sync.Pool{New: func() any { return new(encoder) }}

func getEncoder() *encoder { return encoders.Get().(*encoder) }

func putEncoder(e *encoder) {
	if e.b.Size() > maxPooledBytes || cap(e.buf) > maxPooledBytes {
		return
	}
	encoders.Put(e)
}

// AppendBatch encodes records into one record batch compressed with c,
// appends it to dst and returns the extended slice, ready for Log.Append.
// Records' Offset fields are ignored: the batch's offsets are relative, and
// the log that appends the batch assigns absolute ones. A zero Timestamp
// becomes the time of the call.
//
// It fails with ErrNoRecords when records is empty, with ErrRecordTooLarge
// when the batch would not fit its 32-bit length field, and when c is not
// one of the defined compressions. On error dst is returned unchanged.
func AppendBatch(dst []byte, c Compression, records ...Record) ([]byte, error) {
	e := getEncoder()
	defer putEncoder(e)
	return e.encode(dst, c, records)
}

func (e *encoder) encode(dst []byte, c Compression, records []Record) ([]byte, error) {
	if len(records) == 0 {
		return dst, ErrNoRecords
	}
	if !c.valid() {
		return dst, fmt.Errorf("commitlog: unknown compression %v", c)
	}
	if len(records) > math.MaxInt32 {
		return dst, fmt.Errorf("%w: %d records in one batch", ErrRecordTooLarge, len(records))
	}
	e.b.Reset(batch.Codec(c))
	var now int64 // time.Now() in ms, read once for every zero Timestamp
	for i := range records {
		r := &records[i]
		ts := r.Timestamp.UnixMilli()
		if r.Timestamp.IsZero() {
			if now == 0 {
				now = time.Now().UnixMilli()
			}
			ts = now
		}
		var hdrs []batch.RecordHeader
		if len(r.Headers) > 0 {
			hdrs = e.hdrs[:0]
			for _, h := range r.Headers {
				hdrs = append(hdrs, batch.RecordHeader(h))
			}
		}
		e.b.Add(ts, r.Key, r.Value, hdrs)
		if hdrs != nil {
			clear(hdrs) // the Builder copied them; drop the caller's values
			e.hdrs = hdrs[:0]
		}
	}
	out, err := e.b.Build(dst)
	switch {
	case errors.Is(err, batch.ErrTooLarge):
		return dst, fmt.Errorf("%w: %w", ErrRecordTooLarge, err)
	case err != nil:
		return dst, fmt.Errorf("commitlog: encode batch: %w", err)
	}
	return out, nil
}

// AppendRecords encodes records into one batch compressed with c (as
// AppendBatch does) and appends it as Append does, returning the offset of
// the first record; the others follow it in order. The encoding buffer is
// pooled, so a steady stream of AppendRecords calls does not allocate for
// it.
func (l *Log) AppendRecords(c Compression, records ...Record) (int64, error) {
	e := getEncoder()
	defer putEncoder(e)
	b, err := e.encode(e.buf[:0], c, records)
	e.buf = b[:0]
	if err != nil {
		return -1, err
	}
	return l.Append(b)
}

// decoder is the pooled state of Records.
type decoder struct {
	it   batch.Iter
	hdrs []Header // one record's headers, converted
	big  bool     // the Iter decompressed more than maxPooledBytes
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

// Records returns an iterator over the records of the batches in s, in
// offset order, decompressing them as needed. Control batches (transaction
// markers) are skipped. Every batch is checked (length, CRC, codec, record
// encoding) before its records are decoded; at the first invalid one the
// iterator yields a single error that wraps ErrCorruptBatch and stops.
//
// A Slice returned by Log.Read starts with the whole batch holding the
// offset asked for, so its first records may precede that offset: skip
// records whose Offset is below it.
//
// Lifetime: a yielded Record is valid only until the loop moves on to the
// next one. Its Key, Value and header Values alias either s.Bytes (which
// itself is valid only until s.Release) or a decompression buffer that the
// next batch overwrites, and its Headers slice is reused for the next
// record; copy what you keep (bytes.Clone, slices.Clone). The iterator may
// be ranged over more than once and by several goroutines at a time.
//
// To decode batches that did not come from a log, such as bytes built by
// AppendBatch, wrap them in a Slice: Records(Slice{Bytes: b}).
func Records(s Slice) iter.Seq2[Record, error] {
	data := s.Bytes
	return func(yield func(Record, error) bool) {
		if len(data) == 0 {
			return
		}
		d := decoders.Get().(*decoder)
		defer func() {
			clear(d.hdrs[:cap(d.hdrs)])
			d.hdrs = d.hdrs[:0]
			if !d.big {
				decoders.Put(d)
			}
		}()
		for pos := 0; pos < len(data); {
			h, err := batch.Check(data[pos:], math.MaxInt)
			if err != nil {
				yield(Record{}, fmt.Errorf("%w: at byte %d of the slice: %w", ErrCorruptBatch, pos, err))
				return
			}
			b := data[pos : pos+h.Size()]
			pos += h.Size()
			if h.Control() {
				continue
			}
			if !d.decodeBatch(h, b, yield) {
				return
			}
		}
	}
}

// decodeBatch yields the records of the checked batch b with header h. It
// returns false when the iteration is over: the consumer stopped or an
// error was yielded.
func (d *decoder) decodeBatch(h batch.Header, b []byte, yield func(Record, error) bool) bool {
	if err := d.it.Reset(b, maxUncompressedBytes); err != nil {
		yield(Record{}, fmt.Errorf("%w: batch at offset %d: %w", ErrCorruptBatch, h.BaseOffset, err))
		return false
	}
	compressed := h.Codec() != batch.CodecNone
	decoded := 0 // approximate bytes decompressed, to keep huge buffers out of the pool
	for {
		r, ok := d.it.Next()
		if !ok {
			break
		}
		hdrs := d.hdrs[:0]
		for _, rh := range r.Headers {
			hdrs = append(hdrs, Header(rh))
		}
		d.hdrs = hdrs
		if compressed && !d.big {
			decoded += len(r.Key) + len(r.Value)
			for _, rh := range r.Headers {
				decoded += len(rh.Key) + len(rh.Value)
			}
			d.big = decoded > maxPooledBytes
		}
		rec := Record{
			Offset:    h.RecordOffset(r.OffsetDelta),
			Timestamp: time.UnixMilli(h.RecordTimestamp(r.TimestampDelta)),
			Key:       r.Key,
			Value:     r.Value,
		}
		if len(hdrs) > 0 {
			rec.Headers = hdrs
		}
		if !yield(rec, nil) {
			return false
		}
	}
	if err := d.it.Err(); err != nil {
		yield(Record{}, fmt.Errorf("%w: batch at offset %d: %w", ErrCorruptBatch, h.BaseOffset, err))
		return false
	}
	return true
}
