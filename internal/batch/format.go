package batch

// RecordBatch v2 (magic 2), exactly as on the Kafka wire and on disk.
// Every integer is big-endian; offsets are from the start of the batch.
//
//	offset size field                  notes
//	     0    8 baseOffset             int64; written by the broker/log, not under the CRC
//	     8    4 length                 int32; bytes that follow this field (= total size - 12)
//	    12    4 partitionLeaderEpoch   int32; written by the broker/log, not under the CRC
//	    16    1 magic                  int8; always 2
//	    17    4 crc                    uint32; CRC-32C (Castagnoli) of bytes 21 .. end of batch
//	    21    2 attributes             int16; see below
//	    23    4 lastOffsetDelta        int32; numRecords - 1
//	    27    8 baseTimestamp          int64; ms; first record's timestamp (or delete horizon)
//	    35    8 maxTimestamp           int64; ms; largest record timestamp (or LogAppendTime)
//	    43    8 producerId             int64; -1 when not idempotent
//	    51    2 producerEpoch          int16; -1 when not idempotent
//	    53    4 baseSequence           int32; -1 when not idempotent
//	    57    4 numRecords             int32; never compressed
//	    61    . records                numRecords records; one compressed blob when codec != 0
//
// attributes:
//
//	bits 0-2  codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd (5-7 invalid)
//	0x08      timestamp type: 0 CreateTime, 1 LogAppendTime
//	0x10      transactional
//	0x20      control batch
//	0x40      baseTimestamp holds the delete horizon (set by compaction)
//
// A record (after decompression) is a sequence of zig-zag varints (varint =
// 32-bit value, varlong = 64-bit value; encoding/binary's Varint encoding):
//
//	length          varint   bytes that follow (attributes .. end of headers)
//	attributes      int8     unused, 0
//	timestampDelta  varlong  timestamp - baseTimestamp
//	offsetDelta     varint   offset - baseOffset; the record's index in the batch
//	keyLength       varint   -1 = null key
//	key             bytes
//	valueLength     varint   -1 = null value
//	value           bytes
//	headerCount     varint
//	headers         headerCount x { keyLength varint (>= 0), key (UTF-8),
//	                                valueLength varint (-1 = null), value }
//
// Untrusted input: ReadHeader never looks past HeaderSize; Check compares the
// declared size with the caller's maxBytes before touching the body or the
// CRC, and with len(b) before reading it. Nothing in this package allocates
// from a length read off the wire without first bounding it.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// HeaderSize is the size of the fixed batch header, up to and including the
// record count.
const HeaderSize = 61

// Magic is the only batch format version this package reads and writes.
const Magic = 2

// Byte offsets of the header fields, for callers that patch or peek at
// batches in place.
const (
	OffsetBaseOffset      = 0
	OffsetLength          = 8
	OffsetLeaderEpoch     = 12
	OffsetMagic           = 16
	OffsetCRC             = 17
	OffsetAttributes      = 21
	OffsetLastOffsetDelta = 23
	OffsetBaseTimestamp   = 27
	OffsetMaxTimestamp    = 35
	OffsetProducerID      = 43
	OffsetProducerEpoch   = 51
	OffsetBaseSequence    = 53
	OffsetRecordCount     = 57
)

// lengthOverhead is the part of a batch not counted by its length field
// (baseOffset and length itself).
const lengthOverhead = OffsetLeaderEpoch

// minLength is the smallest valid length field: a header with no records.
const minLength = HeaderSize - lengthOverhead

// minRecordSize is the smallest encoded record: a 1-byte length followed by
// attributes, timestampDelta, offsetDelta, keyLength, valueLength and
// headerCount, one byte each.
const minRecordSize = 7

// Attribute bits.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
	attrDeleteHorizon = 0x40
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc computes the batch CRC: CRC-32C over everything from the attributes on.
func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Header is the decoded fixed header of a batch.
type Header struct {
	BaseOffset           int64
	Length               int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Size is the total size of the batch in bytes (the length field plus the
// 12 bytes before it).
func (h Header) Size() int { return int(h.Length) + lengthOverhead }

// NextOffset is the offset following the batch's last record.
func (h Header) NextOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) + 1 }

// Codec is the compression codec from the attributes.
func (h Header) Codec() Codec { return Codec(h.Attributes & attrCodecMask) }

// LogAppendTime reports whether timestamps are the broker's append time
// (MaxTimestamp) instead of the producer's create time.
func (h Header) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// Transactional reports whether the batch belongs to a transaction.
func (h Header) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports whether the batch holds a control record (commit/abort
// marker) instead of data.
func (h Header) Control() bool { return h.Attributes&attrControl != 0 }

// DeleteHorizon reports whether BaseTimestamp holds the delete horizon set by
// log compaction rather than the first record's timestamp.
func (h Header) DeleteHorizon() bool { return h.Attributes&attrDeleteHorizon != 0 }

// RecordOffset is the absolute offset of a record given its OffsetDelta.
func (h Header) RecordOffset(offsetDelta int32) int64 {
	return h.BaseOffset + int64(offsetDelta)
}

// RecordTimestamp is the timestamp (ms) of a record given its
// TimestampDelta, following Kafka's rules: with LogAppendTime every record
// carries MaxTimestamp, otherwise it is BaseTimestamp + delta.
func (h Header) RecordTimestamp(timestampDelta int64) int64 {
	if h.LogAppendTime() {
		return h.MaxTimestamp
	}
	return h.BaseTimestamp + timestampDelta
}

// ReadHeader parses the fixed header at the start of b. It checks that b
// holds a whole header (ErrTruncated), the magic byte (ErrBadMagic) and that
// the length field is at least the header's and keeps the batch size within
// an int32 (ErrBadLength). It does not verify the CRC and never reads past
// HeaderSize.
func ReadHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: header needs %d bytes, have %d", ErrTruncated, HeaderSize, len(b))
	}
	b = b[:HeaderSize]
	be := binary.BigEndian
	h := Header{
		BaseOffset:           int64(be.Uint64(b[OffsetBaseOffset:])),
		Length:               int32(be.Uint32(b[OffsetLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[OffsetLeaderEpoch:])),
		Magic:                int8(b[OffsetMagic]),
		CRC:                  be.Uint32(b[OffsetCRC:]),
		Attributes:           int16(be.Uint16(b[OffsetAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[OffsetLastOffsetDelta:])),
		BaseTimestamp:        int64(be.Uint64(b[OffsetBaseTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[OffsetMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[OffsetProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[OffsetProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[OffsetBaseSequence:])),
		NumRecords:           int32(be.Uint32(b[OffsetRecordCount:])),
	}
	if h.Magic != Magic {
		return h, fmt.Errorf("%w: %d, want %d", ErrBadMagic, h.Magic, Magic)
	}
	if h.Length < minLength {
		return h, fmt.Errorf("%w: length field %d below minimum %d", ErrBadLength, h.Length, minLength)
	}
	if h.Length > maxLength {
		// Kafka sizes are int32: the whole batch must fit one too.
		return h, fmt.Errorf("%w: length field %d puts the batch size past 2^31-1", ErrBadLength, h.Length)
	}
	return h, nil
}

// Check validates the batch at the start of b, which may extend past it.
// In order: the header as ReadHeader; Size() <= maxBytes (ErrTooLarge,
// before the body is touched); Size() <= len(b) (ErrTruncated); the CRC
// (ErrBadCRC); the codec (ErrUnknownCodec); and the record count: at least
// one, equal to LastOffsetDelta+1 and, for uncompressed batches, small
// enough for the body to hold that many records (ErrCorrupt). Records are
// not decoded; use Iter for that.
func Check(b []byte, maxBytes int) (Header, error) {
	h, err := ReadHeader(b)
	if err != nil {
		return h, err
	}
	size := h.Size()
	if size > maxBytes {
		return h, fmt.Errorf("%w: batch size %d exceeds limit %d", ErrTooLarge, size, maxBytes)
	}
	if size > len(b) {
		return h, fmt.Errorf("%w: batch size %d, have %d bytes", ErrTruncated, size, len(b))
	}
	if got := crc(b[OffsetAttributes:size]); got != h.CRC {
		return h, fmt.Errorf("%w: stored %#08x, computed %#08x", ErrBadCRC, h.CRC, got)
	}
	if c := h.Codec(); !c.Valid() {
		return h, fmt.Errorf("%w: %d", ErrUnknownCodec, int8(c))
	}
	if err := checkCount(h); err != nil {
		return h, err
	}
	return h, nil
}

// checkCount validates NumRecords against LastOffsetDelta and, for an
// uncompressed body, against the body size.
func checkCount(h Header) error {
	if h.NumRecords <= 0 {
		return fmt.Errorf("%w: record count %d", ErrCorrupt, h.NumRecords)
	}
	// Compaction leaves gaps, so a batch may hold fewer records than its
	// offset range; never more.
	if int64(h.NumRecords) > int64(h.LastOffsetDelta)+1 {
		return fmt.Errorf("%w: record count %d but last offset delta %d", ErrCorrupt, h.NumRecords, h.LastOffsetDelta)
	}
	if h.Codec() == CodecNone {
		if body := h.Size() - HeaderSize; int64(h.NumRecords)*minRecordSize > int64(body) {
			return fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrCorrupt, h.NumRecords, body)
		}
	}
	return nil
}

// SetBaseOffset overwrites the base offset of the batch at the start of b in
// place. The CRC does not cover it, so the batch stays valid. A b shorter
// than the field is left untouched.
func SetBaseOffset(b []byte, off int64) {
	if len(b) < OffsetBaseOffset+8 {
		return
	}
	binary.BigEndian.PutUint64(b[OffsetBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch overwrites the partition leader epoch of the batch
// at the start of b in place. The CRC does not cover it. A b shorter than the
// field is left untouched.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	if len(b) < OffsetLeaderEpoch+4 {
		return
	}
	binary.BigEndian.PutUint32(b[OffsetLeaderEpoch:], uint32(epoch))
}

// maxBatchSize is the largest valid batch: Kafka sizes are int32.
const maxBatchSize = math.MaxInt32

// maxLength is the length field of a batch of maxBatchSize bytes.
const maxLength = maxBatchSize - lengthOverhead
