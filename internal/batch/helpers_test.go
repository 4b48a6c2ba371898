package batch

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

var allCodecs = []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

// testRecord is what a test adds to a Builder and expects back from Iter.
type testRecord struct {
	ts         int64
	key, value []byte
	headers    []RecordHeader
}

// sampleRecords covers null and empty keys/values, null and empty header
// values, multi-byte varints and negative timestamp deltas.
func sampleRecords() []testRecord {
	big := bytes.Repeat([]byte("0123456789abcdef"), 300) // 4800 bytes: 2-byte length varint
	return []testRecord{
		{ts: 1_700_000_000_000, key: []byte("key-0"), value: []byte("value-0")},
		{ts: 1_700_000_000_005, key: nil, value: []byte("null key")},
		{ts: 1_699_999_999_000, key: []byte("null value"), value: nil},
		{ts: 1_700_000_000_001, key: []byte{}, value: []byte{}},
		{ts: 1_700_000_000_002, key: nil, value: nil, headers: []RecordHeader{
			{Key: "traceparent", Value: []byte("00-abc-def-01")},
			{Key: "null", Value: nil},
			{Key: "empty", Value: []byte{}},
			{Key: "", Value: []byte("empty key")},
		}},
		{ts: 1_600_000_000_000, key: big[:200], value: big, headers: []RecordHeader{{Key: "traceparent", Value: big[:130]}}},
		{ts: 1_800_000_000_000, key: []byte("last"), value: []byte("ü€𝄞 utf-8")},
	}
}

func buildBatch(t testing.TB, codec Codec, recs []testRecord) []byte {
	t.Helper()
	var b Builder
	b.Reset(codec)
	for _, r := range recs {
		b.Add(r.ts, r.key, r.value, r.headers)
	}
	out, err := b.Build(nil)
	require.NoError(t, err)
	return out
}

// readAll checks and iterates a batch, returning the records as testRecords.
func readAll(t testing.TB, batch []byte, limit int) []testRecord {
	t.Helper()
	h, err := Check(batch, len(batch))
	require.NoError(t, err)
	var it Iter
	require.NoError(t, it.Reset(batch, limit))
	var out []testRecord
	for {
		r, ok := it.Next()
		if !ok {
			break
		}
		tr := testRecord{ts: h.RecordTimestamp(r.TimestampDelta), key: r.Key, value: r.Value}
		require.Equal(t, int32(len(out)), r.OffsetDelta)
		tr.headers = append(tr.headers, r.Headers...) // copied: Headers is reused
		out = append(out, tr)
	}
	require.NoError(t, it.Err())
	return out
}

// crc32cBitwise is a from-the-definition CRC-32C (reflected polynomial
// 0x82F63B78), independent of hash/crc32's table and hardware paths.
func crc32cBitwise(b []byte) uint32 {
	c := ^uint32(0)
	for _, x := range b {
		c ^= uint32(x)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0x82F63B78
			} else {
				c >>= 1
			}
		}
	}
	return ^c
}

// makeBatch wraps an arbitrary records section (already compressed with
// codec) in a valid header claiming n records, with a correct CRC.
func makeBatch(codec Codec, n int32, body []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(body))
	b = append(b, body...)
	be := binary.BigEndian
	be.PutUint32(b[OffsetLength:], uint32(len(b)-12))
	be.PutUint32(b[OffsetLeaderEpoch:], 0xffffffff)
	b[OffsetMagic] = Magic
	be.PutUint16(b[OffsetAttributes:], uint16(codec))
	be.PutUint32(b[OffsetLastOffsetDelta:], uint32(n-1))
	be.PutUint64(b[OffsetProducerID:], ^uint64(0))
	be.PutUint16(b[OffsetProducerEpoch:], 0xffff)
	be.PutUint32(b[OffsetBaseSequence:], 0xffffffff)
	be.PutUint32(b[OffsetRecordCount:], uint32(n))
	fixCRC(b)
	return b
}

// fixCRC recomputes the CRC of the batch at the start of b in place.
func fixCRC(b []byte) {
	size := int(int32(binary.BigEndian.Uint32(b[OffsetLength:]))) + 12
	binary.BigEndian.PutUint32(b[OffsetCRC:], crc(b[OffsetAttributes:size]))
}

// rewrap returns a batch with template's header fields but codec and body
// replaced (length and CRC fixed up).
func rewrap(template []byte, codec Codec, body []byte) []byte {
	b := append(append([]byte(nil), template[:HeaderSize]...), body...)
	binary.BigEndian.PutUint32(b[OffsetLength:], uint32(len(b)-12))
	binary.BigEndian.PutUint16(b[OffsetAttributes:], uint16(codec))
	fixCRC(b)
	return b
}
