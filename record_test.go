package commitlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/batch"
)

var allCompressions = []Compression{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd}

// cloneRecord copies everything a Record aliases, so it outlives the
// iteration step that yielded it.
func cloneRecord(r Record) Record {
	r.Key = bytes.Clone(r.Key)
	r.Value = bytes.Clone(r.Value)
	if r.Headers != nil {
		hs := make([]Header, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = Header{Key: h.Key, Value: bytes.Clone(h.Value)}
		}
		r.Headers = hs
	}
	return r
}

// collect decodes every record of s, cloned, and the first error.
func collect(t testing.TB, s Slice) ([]Record, error) {
	t.Helper()
	var out []Record
	for r, err := range Records(s) {
		if err != nil {
			return out, err
		}
		out = append(out, cloneRecord(r))
	}
	return out, nil
}

// requireSameRecords compares records field by field; timestamps with
// time.Time.Equal, since decoded ones are in the local time zone.
func requireSameRecords(t *testing.T, want, got []Record) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(t, w.Offset, g.Offset, "record %d offset", i)
		require.True(t, w.Timestamp.Equal(g.Timestamp), "record %d timestamp: want %v, got %v", i, w.Timestamp, g.Timestamp)
		require.Equal(t, w.Key, g.Key, "record %d key", i)
		require.Equal(t, w.Value, g.Value, "record %d value", i)
		require.Equal(t, w.Headers, g.Headers, "record %d headers", i)
	}
}

// sampleRecords covers null and empty keys and values, headers with null
// and repeated keys, and timestamps that go backwards within a batch.
func sampleRecords() []Record {
	ts := time.UnixMilli(1_700_000_000_123)
	return []Record{
		{Offset: 0, Timestamp: ts, Key: []byte("k0"), Value: []byte("v0")},
		{Offset: 1, Timestamp: ts.Add(5 * time.Millisecond), Key: nil, Value: []byte("no key")},
		{Offset: 2, Timestamp: ts.Add(-time.Second), Key: []byte("tombstone"), Value: nil},
		{Offset: 3, Timestamp: ts, Key: []byte{}, Value: []byte{}},
		{Offset: 4, Timestamp: ts.Add(time.Hour), Key: []byte("h"), Value: bytes.Repeat([]byte("compressible "), 200),
			Headers: []Header{
				{Key: "traceparent", Value: []byte("00-abc-def-01")},
				{Key: "null", Value: nil},
				{Key: "empty", Value: []byte{}},
				{Key: "traceparent", Value: []byte("again")},
			}},
	}
}

func TestAppendBatchRoundTrip(t *testing.T) {
	for _, c := range allCompressions {
		t.Run(c.String(), func(t *testing.T) {
			want := sampleRecords()
			b, err := AppendBatch(nil, c, want...)
			require.NoError(t, err)
			h, err := batch.Check(b, len(b))
			require.NoError(t, err)
			require.Equal(t, len(b), h.Size())
			require.Equal(t, batch.Codec(c), h.Codec())

			got, err := collect(t, Slice{Bytes: b})
			require.NoError(t, err)
			requireSameRecords(t, want, got)
			require.Nil(t, got[1].Key, "a nil key reads back as null")
			require.Nil(t, got[2].Value, "a nil value reads back as null")
			require.NotNil(t, got[3].Key, "an empty key is not null")
			require.NotNil(t, got[3].Value, "an empty value is not null")
			require.Nil(t, got[0].Headers, "no headers reads back as nil")
		})
	}
}

func TestAppendBatchAppendsToDst(t *testing.T) {
	prefix := []byte("prefix")
	b, err := AppendBatch(slices.Clone(prefix), CompressionNone, Record{Value: []byte("one")})
	require.NoError(t, err)
	require.Equal(t, prefix, b[:len(prefix)])

	// Two batches end to end, the second with base offset 10: offsets are
	// base + delta, batch after batch.
	first := b[len(prefix):]
	b, err = AppendBatch(first, CompressionLZ4, Record{Value: []byte("two")}, Record{Value: []byte("three")})
	require.NoError(t, err)
	batch.SetBaseOffset(b[len(first):], 10)
	got, err := collect(t, Slice{Bytes: b})
	require.NoError(t, err)
	var offsets []int64
	var values []string
	for _, r := range got {
		offsets = append(offsets, r.Offset)
		values = append(values, string(r.Value))
	}
	require.Equal(t, []int64{0, 10, 11}, offsets)
	require.Equal(t, []string{"one", "two", "three"}, values)
}

func TestAppendBatchZeroTimestampIsNow(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	b, err := AppendBatch(nil, CompressionNone, Record{Value: []byte("a")}, Record{Value: []byte("b")})
	require.NoError(t, err)
	after := time.Now()
	got, err := collect(t, Slice{Bytes: b})
	require.NoError(t, err)
	require.Len(t, got, 2)
	for _, r := range got {
		require.False(t, r.Timestamp.Before(before), "%v before %v", r.Timestamp, before)
		require.False(t, r.Timestamp.After(after), "%v after %v", r.Timestamp, after)
	}
	require.True(t, got[0].Timestamp.Equal(got[1].Timestamp), "one call, one clock reading")
}

func TestAppendBatchErrors(t *testing.T) {
	dst := []byte("keep")
	out, err := AppendBatch(dst, CompressionNone)
	require.ErrorIs(t, err, ErrNoRecords)
	require.Equal(t, []byte("keep"), out)

	out, err = AppendBatch(dst, Compression(7), Record{Value: []byte("x")})
	require.ErrorContains(t, err, "unknown compression Compression(7)")
	require.Equal(t, []byte("keep"), out)
	require.Equal(t, "Compression(-1)", Compression(-1).String())
}

func TestCompressionMatchesCodec(t *testing.T) {
	codecs := []batch.Codec{batch.CodecNone, batch.CodecGzip, batch.CodecSnappy, batch.CodecLZ4, batch.CodecZstd}
	for i, c := range allCompressions {
		require.Equal(t, int8(codecs[i]), int8(c))
		require.Equal(t, codecs[i].String(), c.String())
	}
}

func TestLogAppendRecords(t *testing.T) {
	for _, c := range allCompressions {
		t.Run(c.String(), func(t *testing.T) {
			l, err := OpenLog(t.TempDir(), LogConfig{SyncPolicy: SyncNone})
			require.NoError(t, err)
			defer func() { require.NoError(t, l.Close()) }()

			recs := sampleRecords()
			base, err := l.AppendRecords(c, recs[:2]...)
			require.NoError(t, err)
			require.Equal(t, int64(0), base)
			base, err = l.AppendRecords(c, recs[2:]...)
			require.NoError(t, err)
			require.Equal(t, int64(2), base)
			require.Equal(t, int64(len(recs)), l.EndOffset())

			_, err = l.AppendRecords(c)
			require.ErrorIs(t, err, ErrNoRecords)
			require.Equal(t, int64(len(recs)), l.EndOffset(), "a failed append adds nothing")

			s, err := l.Read(0, 1<<20)
			require.NoError(t, err)
			got, err := collect(t, s)
			s.Release()
			require.NoError(t, err)
			requireSameRecords(t, recs, got)

			// Reading from inside a batch returns the whole batch: the
			// records before the offset asked for come first.
			s, err = l.Read(3, 1)
			require.NoError(t, err)
			got, err = collect(t, s)
			s.Release()
			require.NoError(t, err)
			require.Equal(t, int64(2), got[0].Offset)
			require.Equal(t, int64(len(recs)), s.NextOffset)
		})
	}
}

func TestLogAppendRecordsClosed(t *testing.T) {
	l, err := OpenLog(t.TempDir(), LogConfig{})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	_, err = l.AppendRecords(CompressionNone, Record{Value: []byte("late")})
	require.ErrorIs(t, err, ErrClosed)
}

func TestLogAppendRecordsTooLarge(t *testing.T) {
	l, err := OpenLog(t.TempDir(), LogConfig{MaxBatchBytes: 1024, SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer func() { require.NoError(t, l.Close()) }()
	_, err = l.AppendRecords(CompressionNone, Record{Value: make([]byte, 2048)})
	require.ErrorIs(t, err, ErrRecordTooLarge)
	require.Equal(t, int64(0), l.EndOffset())
}

func TestRecordsEmpty(t *testing.T) {
	for r, err := range Records(Slice{}) {
		t.Fatalf("an empty slice has no records, got %+v, %v", r, err)
	}
}

func TestRecordsCorrupt(t *testing.T) {
	good, err := AppendBatch(nil, CompressionNone, Record{Value: []byte("first")})
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		mangle func(b []byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }},
		{"torn tail", func(b []byte) []byte { return b[:len(b)-3] }},
		{"zeros", func(b []byte) []byte { return append(b, make([]byte, batch.HeaderSize)...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := slices.Clone(good)
			b, err := AppendBatch(b, CompressionGzip, Record{Value: []byte("second")})
			require.NoError(t, err)
			b = tc.mangle(b)
			var values []string
			var errs []error
			for r, err := range Records(Slice{Bytes: b}) {
				if err != nil {
					errs = append(errs, err)
					continue // the iterator must stop by itself
				}
				values = append(values, string(r.Value))
			}
			require.Len(t, errs, 1)
			require.ErrorIs(t, errs[0], ErrCorruptBatch)
			require.Contains(t, values, "first", "batches before the bad one are yielded")
		})
	}
}

func TestRecordsStopEarly(t *testing.T) {
	b, err := AppendBatch(nil, CompressionZstd, sampleRecords()...)
	require.NoError(t, err)
	b, err = AppendBatch(b, CompressionNone, sampleRecords()...)
	require.NoError(t, err)
	n := 0
	for _, err := range Records(Slice{Bytes: b}) {
		require.NoError(t, err)
		if n++; n == 3 {
			break
		}
	}
	require.Equal(t, 3, n)
	// The iterator can be ranged over again.
	got, err := collect(t, Slice{Bytes: b})
	require.NoError(t, err)
	require.Len(t, got, 2*len(sampleRecords()))
}

// setAttributes ORs bits into a built batch's attributes and fixes its CRC.
func setAttributes(b []byte, bits uint16) {
	a := binary.BigEndian.Uint16(b[batch.OffsetAttributes:])
	binary.BigEndian.PutUint16(b[batch.OffsetAttributes:], a|bits)
	sum := crc32.Checksum(b[batch.OffsetAttributes:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(b[batch.OffsetCRC:], sum)
}

func TestRecordsSkipsControlBatches(t *testing.T) {
	control, err := AppendBatch(nil, CompressionNone, Record{Key: []byte{0, 0, 0, 1}, Value: []byte("commit marker")})
	require.NoError(t, err)
	setAttributes(control, 0x20|0x10) // control, transactional
	_, err = batch.Check(control, len(control))
	require.NoError(t, err)
	b, err := AppendBatch(slices.Clone(control), CompressionNone, Record{Value: []byte("data")})
	require.NoError(t, err)
	got, err := collect(t, Slice{Bytes: b})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "data", string(got[0].Value))
}

func TestRecordsLogAppendTime(t *testing.T) {
	var bld batch.Builder
	bld.Reset(batch.CodecNone)
	bld.SetAttributes(true, false)
	bld.Add(1000, nil, []byte("a"), nil)
	bld.Add(3000, nil, []byte("b"), nil)
	b, err := bld.Build(nil)
	require.NoError(t, err)
	got, err := collect(t, Slice{Bytes: b})
	require.NoError(t, err)
	require.Len(t, got, 2)
	for _, r := range got {
		require.Equal(t, int64(3000), r.Timestamp.UnixMilli(), "LogAppendTime: every record carries the batch's max timestamp")
	}
}

// builtWithRace reports whether the test binary was built with -race, under
// which sync.Pool drops items at random and allocation counts mean nothing.
func builtWithRace() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func TestRecordCodecAllocations(t *testing.T) {
	if builtWithRace() {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	recs := make([]Record, 100)
	for i := range recs {
		recs[i] = Record{Timestamp: time.UnixMilli(int64(i)), Key: []byte("key"), Value: []byte("value"),
			Headers: []Header{{Key: "h", Value: []byte("v")}}}
	}
	for _, c := range []Compression{CompressionNone, CompressionZstd} {
		buf := make([]byte, 0, 64<<10)
		encode := testing.AllocsPerRun(50, func() {
			var err error
			if buf, err = AppendBatch(buf[:0], c, recs...); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, encode, "%v: AppendBatch allocations per batch of 100", c)
		decode := testing.AllocsPerRun(50, func() {
			for _, err := range Records(Slice{Bytes: buf}) {
				if err != nil {
					t.Fatal(err)
				}
			}
		})
		// The iterator closure itself; nothing per record or per batch.
		require.LessOrEqual(t, decode, 1.0, "%v: Records allocations per batch of 100", c)
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	for _, size := range []int{100, 1000, 10000} {
		for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
			recs := make([]Record, 10)
			for i := range recs {
				recs[i] = Record{Timestamp: time.UnixMilli(int64(i)), Key: []byte("key"), Value: bytes.Repeat([]byte{'x'}, size)}
			}
			b.Run(fmt.Sprintf("%v/%dB", c, size), func(b *testing.B) {
				b.SetBytes(int64(10 * size))
				b.ReportAllocs()
				var buf []byte
				for b.Loop() {
					var err error
					if buf, err = AppendBatch(buf[:0], c, recs...); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkRecords(b *testing.B) {
	for _, size := range []int{100, 1000, 10000} {
		for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
			recs := make([]Record, 10)
			for i := range recs {
				recs[i] = Record{Timestamp: time.UnixMilli(int64(i)), Key: []byte("key"), Value: bytes.Repeat([]byte{'x'}, size)}
			}
			buf, err := AppendBatch(nil, c, recs...)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%v/%dB", c, size), func(b *testing.B) {
				b.SetBytes(int64(10 * size))
				b.ReportAllocs()
				for b.Loop() {
					for _, err := range Records(Slice{Bytes: buf}) {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
