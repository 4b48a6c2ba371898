package batch

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goldenHex is a two-record uncompressed batch computed by hand from the
// format (see format.go); the same bytes come out of an independent encoder
// (kafkajs 2.2.4's RecordBatch v0 encoder, given the same fields).
//
// Records:
//
//	0: ts 1700000000000, key "k", value "hello", header h="v"
//	1: ts 1699999999995 (delta -5), key null, value "" (empty)
var goldenHex = strings.Join([]string{
	"0000000000000000", // baseOffset 0
	"00000049",         // length 73 = 85 - 12
	"ffffffff",         // partitionLeaderEpoch -1
	"02",               // magic
	"5c8be2fe",         // CRC-32C of bytes 21..85
	"0000",             // attributes: no codec, CreateTime
	"00000001",         // lastOffsetDelta 1
	"0000018bcfe56800", // baseTimestamp 1700000000000
	"0000018bcfe56800", // maxTimestamp
	"ffffffffffffffff", // producerId -1
	"ffff",             // producerEpoch -1
	"ffffffff",         // baseSequence -1
	"00000002",         // 2 records
	// record 0
	"20",       // length 16 (zig-zag 32)
	"00",       // attributes
	"00",       // timestampDelta 0
	"00",       // offsetDelta 0
	"02", "6b", // key length 1, "k"
	"0a", "68656c6c6f", // value length 5, "hello"
	"02",       // 1 header
	"02", "68", // header key length 1, "h"
	"02", "76", // header value length 1, "v"
	// record 1
	"0c", // length 6
	"00", // attributes
	"09", // timestampDelta -5 (zig-zag 9)
	"02", // offsetDelta 1
	"01", // key null (-1)
	"00", // value length 0
	"00", // no headers
}, "")

// kafkajsGzipHex is the same record set compressed with gzip by kafkajs
// (node's zlib): an interoperability vector from another implementation.
const kafkajsGzipHex = "00000000000000000000005dffffffff02f39ae9f00001000000010000018bcfe568000000018bcfe56800ffffffffffffffffffffffffffff000000021f8b08000000000000035360606060cae6ca48cdc9c96762ca602ae361e0646264600000d24a7f4918000000"

func goldenRecords() []testRecord {
	return []testRecord{
		{ts: 1_700_000_000_000, key: []byte("k"), value: []byte("hello"), headers: []RecordHeader{{Key: "h", Value: []byte("v")}}},
		{ts: 1_699_999_999_995, key: nil, value: []byte{}},
	}
}

func TestCRC32CReference(t *testing.T) {
	// The standard CRC-32C check value.
	require.Equal(t, uint32(0xE3069283), crc32cBitwise([]byte("123456789")))
	require.Equal(t, uint32(0xE3069283), crc([]byte("123456789")))
}

func TestGoldenBatch(t *testing.T) {
	want, err := hex.DecodeString(goldenHex)
	require.NoError(t, err)
	require.Len(t, want, 85)
	require.Equal(t, binary.BigEndian.Uint32(want[OffsetCRC:]), crc32cBitwise(want[OffsetAttributes:]), "hand-written CRC")

	got := buildBatch(t, CodecNone, goldenRecords())
	require.Equal(t, hex.EncodeToString(want), hex.EncodeToString(got))

	h, err := Check(got, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, Header{
		BaseOffset: 0, Length: 73, PartitionLeaderEpoch: -1, Magic: 2, CRC: 0x5c8be2fe,
		Attributes: 0, LastOffsetDelta: 1, BaseTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_000,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, NumRecords: 2,
	}, h)
	assert.Equal(t, 85, h.Size())
	assert.Equal(t, int64(2), h.NextOffset())
	assert.Equal(t, goldenRecords(), readAll(t, got, 1<<20))
}

func TestKafkajsGzipVector(t *testing.T) {
	b, err := hex.DecodeString(kafkajsGzipHex)
	require.NoError(t, err)
	h, err := Check(b, len(b))
	require.NoError(t, err)
	require.Equal(t, CodecGzip, h.Codec())
	require.Equal(t, goldenRecords(), readAll(t, b, 1<<20))
}

func TestHeaderAccessors(t *testing.T) {
	h := Header{BaseOffset: 100, Length: 49, LastOffsetDelta: 9, Attributes: 0x3b, BaseTimestamp: 10, MaxTimestamp: 50}
	assert.Equal(t, 61, h.Size())
	assert.Equal(t, int64(110), h.NextOffset())
	assert.Equal(t, CodecLZ4, h.Codec())
	assert.True(t, h.LogAppendTime())
	assert.True(t, h.Transactional())
	assert.True(t, h.Control())
	assert.False(t, h.DeleteHorizon())
	assert.Equal(t, int64(105), h.RecordOffset(5))
	assert.Equal(t, int64(50), h.RecordTimestamp(3), "LogAppendTime: every record has MaxTimestamp")
	h.Attributes = 0x40
	assert.Equal(t, CodecNone, h.Codec())
	assert.False(t, h.LogAppendTime() || h.Transactional() || h.Control())
	assert.True(t, h.DeleteHorizon())
	assert.Equal(t, int64(13), h.RecordTimestamp(3))
}

func TestCodecString(t *testing.T) {
	for i, name := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		assert.Equal(t, name, Codec(i).String())
		assert.True(t, Codec(i).Valid())
	}
	for _, c := range []Codec{-1, 5, 6, 7, 127} {
		assert.False(t, c.Valid())
		assert.Contains(t, c.String(), "codec(")
	}
}

func TestBuilderAttributesAndProducer(t *testing.T) {
	var b Builder
	b.Reset(CodecNone)
	b.SetProducer(12345, 7, 99)
	b.SetAttributes(true, true)
	b.Add(5, nil, []byte("x"), nil)
	b.Add(3, nil, []byte("y"), nil)
	out, err := b.Build(nil)
	require.NoError(t, err)
	h, err := Check(out, len(out))
	require.NoError(t, err)
	assert.Equal(t, int64(12345), h.ProducerID)
	assert.Equal(t, int16(7), h.ProducerEpoch)
	assert.Equal(t, int32(99), h.BaseSequence)
	assert.True(t, h.LogAppendTime())
	assert.True(t, h.Transactional())
	assert.False(t, h.Control())
	assert.Equal(t, int64(5), h.BaseTimestamp)
	assert.Equal(t, int64(5), h.MaxTimestamp)

	// Reset clears producer fields and attributes.
	b.Reset(CodecNone)
	b.Add(1, nil, nil, nil)
	out, err = b.Build(out[:0])
	require.NoError(t, err)
	h, err = Check(out, len(out))
	require.NoError(t, err)
	assert.Equal(t, int64(-1), h.ProducerID)
	assert.Equal(t, int16(-1), h.ProducerEpoch)
	assert.Equal(t, int32(-1), h.BaseSequence)
	assert.Equal(t, int16(0), h.Attributes)

	// The zero Builder is usable and non-idempotent too.
	var z Builder
	z.Add(1, nil, nil, nil)
	out, err = z.Build(nil)
	require.NoError(t, err)
	h, err = Check(out, len(out))
	require.NoError(t, err)
	assert.Equal(t, int64(-1), h.ProducerID)
}

func TestBuildErrors(t *testing.T) {
	var b Builder
	b.Reset(CodecZstd)
	_, err := b.Build(nil)
	require.ErrorIs(t, err, ErrEmpty)
	b.Reset(Codec(6))
	b.Add(0, nil, nil, nil)
	dst := []byte("prefix")
	out, err := b.Build(dst)
	require.ErrorIs(t, err, ErrUnknownCodec)
	require.Equal(t, "prefix", string(out))
}

func TestBuildAppends(t *testing.T) {
	prefix := []byte("existing bytes")
	var b Builder
	for _, c := range allCodecs {
		b.Reset(c)
		b.Add(1, []byte("k"), []byte("v"), nil)
		out, err := b.Build(append([]byte(nil), prefix...))
		require.NoError(t, err, c)
		require.Equal(t, prefix, out[:len(prefix)])
		_, err = Check(out[len(prefix):], math.MaxInt)
		require.NoError(t, err, c)
	}
}

func TestReadHeaderErrors(t *testing.T) {
	good := buildBatch(t, CodecNone, goldenRecords())
	for i := range HeaderSize {
		_, err := ReadHeader(good[:i])
		require.ErrorIs(t, err, ErrTruncated, "cut at %d", i)
	}
	_, err := ReadHeader(good[:HeaderSize])
	require.NoError(t, err, "ReadHeader never needs more than the header")

	for _, magic := range []byte{0, 1, 3, 0xff} {
		b := append([]byte(nil), good...)
		b[OffsetMagic] = magic
		_, err := ReadHeader(b)
		require.ErrorIs(t, err, ErrBadMagic)
		_, err = Check(b, len(b))
		require.ErrorIs(t, err, ErrBadMagic)
	}
	for _, length := range []int32{-1, math.MinInt32, 0, minLength - 1, math.MaxInt32, math.MaxInt32 - 11} {
		b := append([]byte(nil), good...)
		binary.BigEndian.PutUint32(b[OffsetLength:], uint32(length))
		_, err := ReadHeader(b)
		require.ErrorIs(t, err, ErrBadLength, "length %d", length)
	}
}

func TestCheckErrors(t *testing.T) {
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			good := buildBatch(t, c, sampleRecords())
			size := len(good)

			// Truncated at every byte.
			for i := range size {
				_, err := Check(good[:i], math.MaxInt)
				require.ErrorIs(t, err, ErrTruncated, "cut at %d", i)
			}
			// Extra bytes after the batch are fine.
			h, err := Check(append(append([]byte(nil), good...), 0xde, 0xad), math.MaxInt)
			require.NoError(t, err)
			require.Equal(t, size, h.Size())

			// Every single-bit flip is detected or harmless.
			b := append([]byte(nil), good...)
			for i := range size * 8 {
				b[i/8] ^= 1 << (i % 8)
				_, err := Check(b, math.MaxInt)
				switch off := i / 8; {
				case off < OffsetLength, off >= OffsetLeaderEpoch && off < OffsetMagic:
					require.NoError(t, err, "byte %d not under the CRC", off)
				case off < OffsetLeaderEpoch:
					require.Error(t, err, "length byte %d", off)
				case off == OffsetMagic:
					require.ErrorIs(t, err, ErrBadMagic)
				default:
					require.ErrorIs(t, err, ErrBadCRC, "bit %d", i)
				}
				b[i/8] ^= 1 << (i % 8)
			}

			// maxBytes: exact size passes, one less fails.
			_, err = Check(good, size)
			require.NoError(t, err)
			_, err = Check(good, size-1)
			require.ErrorIs(t, err, ErrTooLarge)
		})
	}
}

func TestCheckHugeLengthBeforeTruncation(t *testing.T) {
	good := buildBatch(t, CodecNone, goldenRecords())
	b := append([]byte(nil), good[:HeaderSize]...)
	binary.BigEndian.PutUint32(b[OffsetLength:], maxLength)
	_, err := Check(b, 1<<20)
	require.ErrorIs(t, err, ErrTooLarge, "the limit is checked before the size against len(b)")
	require.False(t, errors.Is(err, ErrTruncated))
	_, err = Check(b, math.MaxInt)
	require.ErrorIs(t, err, ErrTruncated)
	// Nothing is allocated for the claimed size (only the error itself).
	n := allocated(func() { _, err = Check(b, 1<<20) })
	require.Less(t, n, uint64(4<<10))

	var it Iter
	require.ErrorIs(t, it.Reset(b, 1<<20), ErrTruncated)
	_, ok := it.Next()
	require.False(t, ok)
}

func TestCheckRecordCount(t *testing.T) {
	good := buildBatch(t, CodecNone, goldenRecords())
	mod := func(f func(b []byte)) error {
		b := append([]byte(nil), good...)
		f(b)
		fixCRC(b)
		_, err := Check(b, len(b))
		return err
	}
	be := binary.BigEndian
	require.ErrorIs(t, mod(func(b []byte) {
		be.PutUint32(b[OffsetRecordCount:], 0)
		be.PutUint32(b[OffsetLastOffsetDelta:], 0xffffffff)
	}), ErrCorrupt)
	require.ErrorIs(t, mod(func(b []byte) { be.PutUint32(b[OffsetRecordCount:], 0xffffffff) }), ErrCorrupt)
	require.ErrorIs(t, mod(func(b []byte) { be.PutUint32(b[OffsetRecordCount:], 3) }), ErrCorrupt)
	// Fewer records than the offset range: a compacted batch, valid.
	require.NoError(t, mod(func(b []byte) { be.PutUint32(b[OffsetLastOffsetDelta:], 5) }))
	// Consistent, but more records than 24 bytes can hold.
	require.ErrorIs(t, mod(func(b []byte) { be.PutUint32(b[OffsetRecordCount:], 4); be.PutUint32(b[OffsetLastOffsetDelta:], 3) }), ErrCorrupt)
	for _, c := range []int{5, 6, 7} {
		require.ErrorIs(t, mod(func(b []byte) { b[OffsetAttributes+1] = byte(c) }), ErrUnknownCodec)
	}
	// Attribute bits other than the codec do not matter to Check.
	require.NoError(t, mod(func(b []byte) { b[OffsetAttributes+1] |= 0x78; b[OffsetAttributes] = 0xff }))
}

func TestSetBaseOffsetAndEpoch(t *testing.T) {
	for _, c := range allCodecs {
		b := buildBatch(t, c, sampleRecords())
		SetBaseOffset(b, 1<<40)
		SetPartitionLeaderEpoch(b, 17)
		h, err := Check(b, len(b))
		require.NoError(t, err)
		require.Equal(t, int64(1<<40), h.BaseOffset)
		require.Equal(t, int32(17), h.PartitionLeaderEpoch)
		require.Equal(t, int64(1<<40)+int64(len(sampleRecords())), h.NextOffset())
	}
	// Short slices are left alone rather than panicking.
	short := []byte{1, 2, 3}
	SetBaseOffset(short, 5)
	SetPartitionLeaderEpoch(short, 5)
	SetBaseOffset(nil, 5)
	SetPartitionLeaderEpoch(make([]byte, 15), 5)
	require.Equal(t, []byte{1, 2, 3}, short)
}

func TestErrorMessages(t *testing.T) {
	good := buildBatch(t, CodecNone, goldenRecords())
	_, err := Check(good[:10], 100)
	require.True(t, strings.HasPrefix(err.Error(), "batch: "), err.Error())
	require.Equal(t, strings.ToLower(err.Error()), err.Error())
	for _, e := range []error{ErrTruncated, ErrTooLarge, ErrBadMagic, ErrBadCRC, ErrBadLength, ErrCorrupt, ErrUnknownCodec, ErrOffsetOrder, ErrEmpty} {
		require.True(t, strings.HasPrefix(e.Error(), "batch: "), e.Error())
	}
}

func TestCheckAllocs(t *testing.T) {
	b := buildBatch(t, CodecNone, sampleRecords())
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Check(b, len(b)); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}
