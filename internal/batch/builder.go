package batch

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
)

// RecordHeader is one record header. Keys are never null; a nil Value is
// encoded as null.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Builder encodes records into one batch. The zero value is ready for use
// as an uncompressed, non-idempotent builder; Reset makes it reusable. It is
// not safe for concurrent use. Records are encoded as they are added, into a
// buffer the Builder keeps across Reset, so adding records does not allocate
// in steady state.
type Builder struct {
	codec         Codec
	attrs         int16 // attribute bits other than the codec
	producerID    int64
	producerEpoch int16
	baseSequence  int32
	initialized   bool // producer fields have been set (by Reset or SetProducer)

	n             int32
	baseTimestamp int64
	maxTimestamp  int64
	// records holds room for the batch header, then the encoded records,
	// uncompressed: Finish writes the header in place.
	records []byte
	out     []byte // Finish's compressed batch, kept for the next one
}

// Reset discards the records and starts a new batch compressed with codec.
// Producer fields go back to -1 (not idempotent) and the attributes to
// CreateTime, non-transactional.
func (b *Builder) Reset(codec Codec) {
	b.codec = codec
	b.attrs = 0
	b.producerID, b.producerEpoch, b.baseSequence = -1, -1, -1
	b.initialized = true
	b.n = 0
	b.baseTimestamp, b.maxTimestamp = 0, 0
	b.records = append(b.records[:0], make([]byte, HeaderSize)...)
}

func (b *Builder) init() {
	if !b.initialized {
		b.Reset(b.codec)
	}
}

// SetProducer sets the idempotent/transactional producer fields.
func (b *Builder) SetProducer(id int64, epoch int16, baseSequence int32) {
	b.init()
	b.producerID, b.producerEpoch, b.baseSequence = id, epoch, baseSequence
}

// SetAttributes sets the timestamp type and the transactional flag.
func (b *Builder) SetAttributes(logAppendTime, transactional bool) {
	b.init()
	b.attrs = 0
	if logAppendTime {
		b.attrs |= attrLogAppendTime
	}
	if transactional {
		b.attrs |= attrTransactional
	}
}

// Add appends a record with the given timestamp (ms). A nil key or value is
// encoded as null; an empty non-nil one as empty. The first record's
// timestamp becomes the batch's baseTimestamp (later records may be
// earlier: deltas can be negative).
func (b *Builder) Add(timestamp int64, key, value []byte, headers []RecordHeader) {
	b.init()
	if b.n == 0 {
		b.baseTimestamp, b.maxTimestamp = timestamp, timestamp
	} else if timestamp > b.maxTimestamp {
		b.maxTimestamp = timestamp
	}
	b.records = appendRecord(b.records, 0, timestamp-b.baseTimestamp, int64(b.n), key, value, headers)
	b.n++
}

// appendRecord appends one encoded record: its length, attributes, deltas,
// key, value and headers.
func appendRecord(r []byte, attrs int8, tsDelta, offsetDelta int64, key, value []byte, headers []RecordHeader) []byte {
	body := 1 + varintLen(tsDelta) + varintLen(offsetDelta) + bytesLen(key) + bytesLen(value) + varintLen(int64(len(headers)))
	for i := range headers {
		body += varintLen(int64(len(headers[i].Key))) + len(headers[i].Key) + bytesLen(headers[i].Value)
	}
	r = binary.AppendVarint(r, int64(body))
	r = append(r, byte(attrs))
	r = binary.AppendVarint(r, tsDelta)
	r = binary.AppendVarint(r, offsetDelta)
	r = appendBytes(r, key)
	r = appendBytes(r, value)
	r = binary.AppendVarint(r, int64(len(headers)))
	for i := range headers {
		r = binary.AppendVarint(r, int64(len(headers[i].Key)))
		r = append(r, headers[i].Key...)
		r = appendBytes(r, headers[i].Value)
	}
	return r
}

// Len is the number of records added since Reset.
func (b *Builder) Len() int { return int(b.n) }

// Size is the size of the batch if it were built now without compression:
// the header plus the encoded records.
func (b *Builder) Size() int { return max(len(b.records), HeaderSize) }

// Build appends the finished batch to dst and returns the extended slice:
// baseOffset 0, partitionLeaderEpoch -1, records compressed with the codec
// given to Reset, CRC filled in. It fails when no records were added
// (ErrEmpty), when the codec is invalid (ErrUnknownCodec), when compression
// fails, or when the batch would exceed 2^31-1 bytes (ErrTooLarge). The
// Builder is unchanged; call Reset to start the next batch.
func (b *Builder) Build(dst []byte) ([]byte, error) {
	b.init()
	if b.n == 0 {
		return dst, fmt.Errorf("%w: build called before add", ErrEmpty)
	}
	if !b.codec.Valid() {
		return dst, fmt.Errorf("%w: %d", ErrUnknownCodec, int8(b.codec))
	}
	start := len(dst)
	payload := b.records[HeaderSize:]
	if b.codec == CodecNone {
		if len(b.records) > maxBatchSize {
			return dst, fmt.Errorf("%w: batch of %d bytes exceeds 2^31-1", ErrTooLarge, b.Size())
		}
		dst = slices.Grow(dst, b.Size())
		dst = append(dst, make([]byte, HeaderSize)...)
		dst = append(dst, payload...)
	} else {
		dst = append(dst, make([]byte, HeaderSize)...)
		var err error
		if dst, err = compress(dst, b.codec, payload); err != nil {
			return dst[:start], err
		}
		if len(dst)-start > maxBatchSize {
			return dst[:start], fmt.Errorf("%w: compressed batch of %d bytes exceeds 2^31-1", ErrTooLarge, len(dst)-start)
		}
	}
	b.putHeader(dst[start:])
	return dst, nil
}

// Finish is Build into memory the Builder owns: an uncompressed batch is
// finished in place, its header written in the room kept in front of the
// records, with no copy; a compressed one goes to a buffer the Builder
// keeps. The batch is valid until the next Reset or Add.
func (b *Builder) Finish() ([]byte, error) {
	b.init()
	if b.codec != CodecNone || b.n == 0 {
		out, err := b.Build(b.out[:0])
		if err == nil {
			b.out = out
		}
		return out, err
	}
	if len(b.records) > maxBatchSize {
		return nil, fmt.Errorf("%w: batch of %d bytes exceeds 2^31-1", ErrTooLarge, b.Size())
	}
	b.putHeader(b.records)
	return b.records, nil
}

// putHeader fills in the header of the batch in out: baseOffset 0,
// partitionLeaderEpoch -1, the Builder's fields, the CRC last.
func (b *Builder) putHeader(out []byte) {
	be := binary.BigEndian
	be.PutUint64(out[OffsetBaseOffset:], 0)
	be.PutUint32(out[OffsetLength:], uint32(len(out)-lengthOverhead))
	be.PutUint32(out[OffsetLeaderEpoch:], 0xffffffff) // -1
	out[OffsetMagic] = Magic
	be.PutUint16(out[OffsetAttributes:], uint16(b.attrs|int16(b.codec)))
	be.PutUint32(out[OffsetLastOffsetDelta:], uint32(b.n-1))
	be.PutUint64(out[OffsetBaseTimestamp:], uint64(b.baseTimestamp))
	be.PutUint64(out[OffsetMaxTimestamp:], uint64(b.maxTimestamp))
	be.PutUint64(out[OffsetProducerID:], uint64(b.producerID))
	be.PutUint16(out[OffsetProducerEpoch:], uint16(b.producerEpoch))
	be.PutUint32(out[OffsetBaseSequence:], uint32(b.baseSequence))
	be.PutUint32(out[OffsetRecordCount:], uint32(b.n))
	be.PutUint32(out[OffsetCRC:], crc(out[OffsetAttributes:]))
}

// varintLen is the size of v as a zig-zag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

// bytesLen is the encoded size of a nullable byte string.
func bytesLen(p []byte) int {
	if p == nil {
		return 1
	}
	return varintLen(int64(len(p))) + len(p)
}

// appendBytes appends a nullable byte string: varint length (-1 for nil)
// then the bytes.
func appendBytes(dst, p []byte) []byte {
	if p == nil {
		return append(dst, 1) // zig-zag -1
	}
	dst = binary.AppendVarint(dst, int64(len(p)))
	return append(dst, p...)
}
