package batch

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFilter(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			var b Builder
			b.Reset(codec)
			b.SetProducer(7, 1, 40)
			for i := 0; i < 10; i++ {
				b.Add(int64(1000+i), fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i), []RecordHeader{{Key: "h", Value: []byte{byte(i)}}})
			}
			src, err := b.Build(nil)
			require.NoError(t, err)
			SetBaseOffset(src, 500)
			SetPartitionLeaderEpoch(src, 3)

			var it Iter
			var scratch []byte
			odd := func(r Record) bool { return r.OffsetDelta%2 == 1 }
			out, kept, err := Filter([]byte("prefix"), src, &it, &scratch, 1<<20, odd)
			require.NoError(t, err)
			require.Equal(t, 5, kept)
			require.Equal(t, "prefix", string(out[:6]))
			out = out[6:]
			h, err := Check(out, len(out))
			require.NoError(t, err)
			require.Equal(t, len(out), h.Size())
			orig, _ := ReadHeader(src)
			require.Equal(t, int64(500), h.BaseOffset)
			require.Equal(t, int32(3), h.PartitionLeaderEpoch)
			require.Equal(t, int32(9), h.LastOffsetDelta, "offsets after the batch unchanged")
			require.Equal(t, int32(5), h.NumRecords)
			require.Equal(t, orig.BaseTimestamp, h.BaseTimestamp)
			require.Equal(t, int64(1009), h.MaxTimestamp)
			require.Equal(t, codec, h.Codec())
			require.Equal(t, int64(7), h.ProducerID)
			require.Equal(t, int32(40), h.BaseSequence)
			require.NoError(t, it.Reset(out, 1<<20))
			var got []string
			for r, ok := it.Next(); ok; r, ok = it.Next() {
				got = append(got, fmt.Sprintf("%d:%s=%s@%d/%d", h.BaseOffset+int64(r.OffsetDelta), r.Key, r.Value, h.BaseTimestamp+r.TimestampDelta, r.Headers[0].Value[0]))
			}
			require.NoError(t, it.Err())
			require.Equal(t, []string{"501:k1=v1@1001/1", "503:k3=v3@1003/3", "505:k5=v5@1005/5", "507:k7=v7@1007/7", "509:k9=v9@1009/9"}, got)

			all, kept, err := Filter(nil, src, &it, &scratch, 1<<20, func(Record) bool { return true })
			require.NoError(t, err)
			require.Equal(t, 10, kept)
			require.Equal(t, src, all, "a batch kept whole is copied byte for byte")

			none, kept, err := Filter(nil, src, &it, &scratch, 1<<20, func(Record) bool { return false })
			require.NoError(t, err)
			require.Zero(t, kept)
			require.Empty(t, none)

			_, _, err = Filter(nil, src[:40], &it, &scratch, 1<<20, odd)
			require.Error(t, err)
		})
	}
}

// TestIterOffsetDeltas checks the deltas a compacted batch may carry: gaps
// are fine, going backwards or past lastOffsetDelta is not.
func TestIterOffsetDeltas(t *testing.T) {
	build := func(last int32, deltas ...int64) []byte {
		var recs []byte
		for _, d := range deltas {
			recs = appendRecord(recs, 0, 0, d, []byte("k"), []byte("v"), nil)
		}
		var b Builder
		b.Reset(CodecNone)
		b.Add(0, []byte("k"), []byte("v"), nil)
		out, err := b.Build(nil)
		require.NoError(t, err)
		out = append(out[:HeaderSize], recs...)
		be := binary.BigEndian
		be.PutUint32(out[OffsetLength:], uint32(len(out)-lengthOverhead))
		be.PutUint32(out[OffsetLastOffsetDelta:], uint32(last))
		be.PutUint32(out[OffsetRecordCount:], uint32(len(deltas)))
		be.PutUint32(out[OffsetCRC:], crc(out[OffsetAttributes:]))
		return out
	}
	decode := func(b []byte) error {
		if _, err := Check(b, len(b)); err != nil {
			return err
		}
		var it Iter
		if err := it.Reset(b, 1<<20); err != nil {
			return err
		}
		for _, ok := it.Next(); ok; _, ok = it.Next() {
		}
		return it.Err()
	}
	require.NoError(t, decode(build(9, 1, 4, 9)))
	require.ErrorIs(t, decode(build(9, 4, 1)), ErrCorrupt)
	require.ErrorIs(t, decode(build(9, 4, 4)), ErrCorrupt)
	require.ErrorIs(t, decode(build(3, 1, 5)), ErrCorrupt)
	require.ErrorIs(t, decode(build(3, 3, 3)), ErrCorrupt)
	require.ErrorIs(t, decode(build(2, 0, 1, 2, 3)), ErrCorrupt)
}

func TestNextMeta(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecZstd} {
		var b Builder
		b.Reset(codec)
		for i := 0; i < 20; i++ {
			b.Add(int64(1000+i*3), fmt.Appendf(nil, "key-%d", i), make([]byte, i*10), []RecordHeader{{Key: "h", Value: []byte("v")}})
		}
		out, err := b.Build(nil)
		require.NoError(t, err)
		var full, skim Iter
		require.NoError(t, full.Reset(out, 1<<20))
		require.NoError(t, skim.Reset(out, 1<<20))
		for {
			r, ok := full.Next()
			ts, od, ok2 := skim.NextMeta()
			require.Equal(t, ok, ok2)
			if !ok {
				break
			}
			require.Equal(t, r.TimestampDelta, ts)
			require.Equal(t, r.OffsetDelta, od)
		}
		require.NoError(t, skim.Err())
		// A length that runs past the batch is caught.
		bad := append([]byte(nil), out...)
		if codec == CodecNone {
			bad[HeaderSize] = 0x7e // record length 63, past the first record
			bad = bad[:HeaderSize+40]
			binary.BigEndian.PutUint32(bad[OffsetLength:], uint32(len(bad)-lengthOverhead))
			binary.BigEndian.PutUint32(bad[OffsetRecordCount:], 1)
			binary.BigEndian.PutUint32(bad[OffsetLastOffsetDelta:], 0)
			var it Iter
			require.NoError(t, it.Reset(bad, 1<<20))
			_, _, ok := it.NextMeta()
			require.False(t, ok)
			require.ErrorIs(t, it.Err(), ErrCorrupt)
		}
	}
}
