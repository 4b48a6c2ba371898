package batch

import (
	"bytes"
	"encoding/binary"
	"math"
	"runtime"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/pierrec/lz4/v4"
	"github.com/stretchr/testify/require"
)

// recordsSection returns the uncompressed records of a batch built from recs.
func recordsSection(t *testing.T, recs []testRecord) []byte {
	return buildBatch(t, CodecNone, recs)[HeaderSize:]
}

func manyRecords(n int) []testRecord {
	recs := make([]testRecord, n)
	for i := range recs {
		recs[i] = testRecord{ts: int64(i), key: []byte("key"), value: bytes.Repeat([]byte{byte(i)}, 200)}
	}
	return recs
}

func TestCompressedFraming(t *testing.T) {
	recs := sampleRecords()
	body := func(c Codec) []byte { return buildBatch(t, c, recs)[HeaderSize:] }

	require.Equal(t, []byte{0x1f, 0x8b}, body(CodecGzip)[:2], "gzip member")
	require.Equal(t, xerialMagic, body(CodecSnappy)[:8], "xerial framing")
	require.Equal(t, []byte{0, 0, 0, 1, 0, 0, 0, 1}, body(CodecSnappy)[8:16], "xerial version 1, compatible 1")
	lz := body(CodecLZ4)
	require.Equal(t, []byte{0x04, 0x22, 0x4d, 0x18}, lz[:4], "lz4 frame magic")
	require.Equal(t, byte(0x40), lz[4]&0xc0, "lz4 frame version 01")
	require.Zero(t, lz[4]&0x04, "no content checksum")
	require.Equal(t, byte(0x40), lz[5], "64 KiB blocks")
	require.Equal(t, []byte{0x28, 0xb5, 0x2f, 0xfd}, body(CodecZstd)[:4], "zstd frame magic")
}

func TestSnappyRawAndXerial(t *testing.T) {
	for _, recs := range [][]testRecord{sampleRecords(), manyRecords(600)} { // the second spans several 32 KiB xerial blocks
		tmpl := buildBatch(t, CodecNone, recs)
		raw := tmpl[HeaderSize:]

		framed := rewrap(tmpl, CodecSnappy, xerial.Encode(nil, raw))
		require.Equal(t, recs, readAll(t, framed, 1<<20), "xerial")

		plain := rewrap(tmpl, CodecSnappy, snappy.Encode(nil, raw))
		require.Equal(t, recs, readAll(t, plain, 1<<20), "raw snappy (librdkafka)")

		// Our own output decodes with the reference xerial decoder.
		ours := buildBatch(t, CodecSnappy, recs)
		dec, err := xerial.Decode(ours[HeaderSize:])
		require.NoError(t, err)
		require.Equal(t, raw, dec)
	}
}

func TestSnappyMalformed(t *testing.T) {
	raw := recordsSection(t, sampleRecords())
	framed := xerial.Encode(nil, raw)
	var it Iter
	cases := map[string][]byte{
		"header only":          framed[:16],
		"short header":         framed[:12],
		"cut size":             framed[:18],
		"block past end":       framed[:len(framed)-1],
		"garbage block":        append(append([]byte(nil), framed[:16]...), 0, 0, 0, 3, 0xff, 0xff, 0xff),
		"block size overflows": append(append([]byte(nil), framed[:16]...), 0xff, 0xff, 0xff, 0xff, 1),
	}
	for name, body := range cases {
		err := it.Reset(makeBatch(CodecSnappy, int32(len(sampleRecords())), body), 1<<20)
		require.ErrorIs(t, err, ErrCorrupt, name)
	}
}

// allocated reports the bytes allocated while f runs.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestDecompressionBomb(t *testing.T) {
	const limit = 1 << 20
	zeros := make([]byte, 32<<20)
	for _, c := range allCodecs[1:] {
		t.Run(c.String(), func(t *testing.T) {
			body, err := compress(nil, c, zeros)
			require.NoError(t, err)
			t.Logf("%d MiB of zeros compress to %d bytes", len(zeros)>>20, len(body))
			b := makeBatch(c, 1, body)
			var it Iter
			// Prime pools so the measurement is of this call alone.
			require.NoError(t, it.Reset(buildBatch(t, c, sampleRecords()), limit))
			var resetErr error
			n := allocated(func() { resetErr = it.Reset(b, limit) })
			require.ErrorIs(t, resetErr, ErrTooLarge)
			t.Logf("allocated %d KiB", n>>10)
			// The output buffer is bounded by the limit (plus growth
			// copies); codec state by the codec (zstd: its window).
			bound := uint64(4 * limit)
			if c == CodecZstd {
				bound += zstdMinWindow + 1<<20
			}
			require.Less(t, n, bound)

			// Exactly at the limit passes decompression (then fails to
			// parse: zeros are not records).
			body, err = compress(nil, c, zeros[:limit])
			require.NoError(t, err)
			err = it.Reset(makeBatch(c, 1, body), limit)
			require.NoError(t, err)
			for _, ok := it.Next(); ok; _, ok = it.Next() {
			}
			require.ErrorIs(t, it.Err(), ErrCorrupt)
			require.ErrorIs(t, it.Reset(makeBatch(c, 1, body), limit-1), ErrTooLarge)
		})
	}
}

func TestSnappyLyingHeader(t *testing.T) {
	// A raw snappy block claiming 1 GiB from a handful of bytes is rejected
	// before anything is allocated for it, whatever the limit.
	body := binary.AppendUvarint(nil, 1<<30)
	body = append(body, 0, 'x') // a 1-byte literal
	var it Iter
	var err error
	n := allocated(func() { err = it.Reset(makeBatch(CodecSnappy, 1, body), math.MaxInt32) })
	require.ErrorIs(t, err, ErrCorrupt)
	require.Less(t, n, uint64(64<<10))

	// Within the ratio but above the limit: ErrTooLarge, nothing allocated.
	body = snappy.Encode(nil, make([]byte, 1<<20))
	n = allocated(func() { err = it.Reset(makeBatch(CodecSnappy, 1, body), 1000) })
	require.ErrorIs(t, err, ErrTooLarge)
	require.Less(t, n, uint64(64<<10))
}

func TestZstdLyingHeader(t *testing.T) {
	// A single-segment frame claiming 1 TiB of content (hence a 1 TiB
	// window) followed by one raw 1-byte block.
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0}
	frame = binary.LittleEndian.AppendUint64(frame, 1<<40)
	frame = append(frame, 0x09, 0, 0, 'x')
	var it Iter
	var err error
	n := allocated(func() { err = it.Reset(makeBatch(CodecZstd, 1, frame), 1<<30) })
	require.Error(t, err)
	require.Less(t, n, uint64(1<<20))

	// Claiming 100 MiB (within the window cap for a large limit) but holding
	// one byte: the decoder errors out without the output growing to the
	// claim.
	frame = []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0}
	frame = binary.LittleEndian.AppendUint64(frame, 100<<20)
	frame = append(frame, 0x09, 0, 0, 'x')
	err = it.Reset(makeBatch(CodecZstd, 1, frame), 1<<20)
	require.Error(t, err)
}

func TestCodecErrorClassification(t *testing.T) {
	_, err := decompress(nil, CodecNone, []byte("x"), 10)
	require.ErrorIs(t, err, ErrUnknownCodec)
	_, err = decompress(nil, Codec(9), []byte("x"), 10)
	require.ErrorIs(t, err, ErrUnknownCodec)
	_, err = compress(nil, Codec(9), []byte("x"))
	require.ErrorIs(t, err, ErrUnknownCodec)
	// Negative limits behave as zero.
	body, err := compress(nil, CodecGzip, []byte("x"))
	require.NoError(t, err)
	_, err = decompress(nil, CodecGzip, body, -5)
	require.ErrorIs(t, err, ErrTooLarge)
	out, err := decompress(nil, CodecGzip, body, 1)
	require.NoError(t, err)
	require.Equal(t, "x", string(out))
}

func TestConcatenatedStreams(t *testing.T) {
	// gzip members and zstd frames may be concatenated; readers accept both.
	tmpl := buildBatch(t, CodecNone, sampleRecords())
	raw := tmpl[HeaderSize:]
	half := len(raw) / 2
	for _, c := range []Codec{CodecGzip, CodecZstd, CodecLZ4} {
		a, err := compress(nil, c, raw[:half])
		require.NoError(t, err)
		a, err = compress(a, c, raw[half:])
		require.NoError(t, err)
		require.Equal(t, sampleRecords(), readAll(t, rewrap(tmpl, c, a), 1<<20), c.String())
	}
}

func TestLZ4Frames(t *testing.T) {
	tmpl := buildBatch(t, CodecNone, sampleRecords())
	raw := tmpl[HeaderSize:]

	// Frames written with every optional field: block and content
	// checksums, content size; behind a skippable frame.
	var buf bytes.Buffer
	buf.Write([]byte{0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c'})
	w := lz4.NewWriter(&buf)
	require.NoError(t, w.Apply(lz4.BlockSizeOption(lz4.Block256Kb), lz4.BlockChecksumOption(true), lz4.ChecksumOption(true), lz4.SizeOption(uint64(len(raw)))))
	_, err := w.Write(raw)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.Equal(t, sampleRecords(), readAll(t, rewrap(tmpl, CodecLZ4, buf.Bytes()), 1<<20))

	// Linked blocks: the second block copies from the first.
	first := []byte("hello world, hello world")
	frame := []byte{0x04, 0x22, 0x4d, 0x18, 0x40, 0x40, 0x00} // linked, 64 KiB blocks, HC (unchecked)
	frame = binary.LittleEndian.AppendUint32(frame, uint32(len(first))|0x80000000)
	frame = append(frame, first...)
	second := []byte{0x01, byte(len(first)), 0, 0x10, '!'} // copy 5 bytes from 24 back; literal "!"
	frame = binary.LittleEndian.AppendUint32(frame, uint32(len(second)))
	frame = append(frame, second...)
	frame = append(frame, 0, 0, 0, 0)
	out, err := lz4Decode(nil, frame, 1<<20)
	require.NoError(t, err)
	require.Equal(t, "hello world, hello worldhello!", string(out))

	// The same blocks in an independent frame cannot reach back.
	frame[4] |= 0x20
	_, err = lz4Decode(nil, frame, 1<<20)
	require.ErrorIs(t, err, ErrCorrupt)

	// Nothing carries over from one call to the next: a frame that
	// reaches before its own start fails even right after another frame.
	indep := append([]byte{0x04, 0x22, 0x4d, 0x18, 0x40, 0x40, 0x00}, binary.LittleEndian.AppendUint32(nil, uint32(len(second)))...)
	indep = append(append(indep, second...), 0, 0, 0, 0)
	_, err = lz4Decode(nil, indep, 1<<20)
	require.ErrorIs(t, err, ErrCorrupt)

	bad := map[string][]byte{
		"empty":          {},
		"bad magic":      {1, 2, 3, 4, 0x40, 0x40, 0},
		"version 0":      {0x04, 0x22, 0x4d, 0x18, 0x00, 0x40, 0, 0, 0, 0, 0},
		"dictionary id":  {0x04, 0x22, 0x4d, 0x18, 0x61, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"block size id":  {0x04, 0x22, 0x4d, 0x18, 0x60, 0x30, 0, 0, 0, 0, 0},
		"no end mark":    {0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0},
		"block too big":  {0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0, 0x01, 0x00, 0x01, 0x80},
		"block past end": {0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0, 10, 0, 0, 0x80, 'x'},
		"skippable past": {0x50, 0x2a, 0x4d, 0x18, 10, 0, 0, 0, 'x'},
	}
	for name, frame := range bad {
		_, err := lz4Decode(nil, frame, 1<<20)
		require.ErrorIs(t, err, ErrCorrupt, name)
	}
}

func TestSnappyRatioBound(t *testing.T) {
	// The densest snappy any encoder produces (runs of one byte) stays
	// under snappyMaxRatio, so real data is never rejected by the check.
	for _, n := range []int{100, 64 << 10, 1 << 20, 4 << 20} {
		enc := snappy.Encode(nil, make([]byte, n))
		require.Less(t, n, snappyMaxRatio*len(enc), "n=%d encoded=%d", n, len(enc))
		t.Logf("%d zero bytes: ratio %.2f", n, float64(n)/float64(len(enc)))
	}
}
