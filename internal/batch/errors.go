package batch

import "errors"

// Sentinel errors. Functions return them wrapped with detail; test with
// errors.Is.
var (
	// ErrTruncated: fewer bytes than the header or the length field says.
	// A torn write at the end of a log looks like this.
	ErrTruncated = errors.New("batch: truncated")
	// ErrTooLarge: the batch, or its decompressed records, exceed the
	// caller's limit.
	ErrTooLarge = errors.New("batch: too large")
	// ErrBadMagic: the magic byte is not 2.
	ErrBadMagic = errors.New("batch: bad magic")
	// ErrBadCRC: the CRC-32C does not match the bytes it covers.
	ErrBadCRC = errors.New("batch: crc mismatch")
	// ErrBadLength: the length field is below the header size or otherwise
	// impossible.
	ErrBadLength = errors.New("batch: bad length")
	// ErrCorrupt: the record count or the records section is malformed (bad
	// varint, lengths past the end, count mismatch, offsetDelta out of
	// sequence, undecodable compressed data).
	ErrCorrupt = errors.New("batch: corrupt records")
	// ErrUnknownCodec: the attributes name a codec other than none, gzip,
	// snappy, lz4 or zstd.
	ErrUnknownCodec = errors.New("batch: unknown codec")
	// ErrOffsetOrder: Scan found a batch whose base offset is negative, is
	// below the previous batch's next offset, or whose offset range
	// overflows int64.
	ErrOffsetOrder = errors.New("batch: offsets out of order")
	// ErrEmpty: Builder.Build was called with no records.
	ErrEmpty = errors.New("batch: no records")
)
