package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoundTripAllCodecs(t *testing.T) {
	recs := sampleRecords()
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			b := buildBatch(t, c, recs)
			h, err := Check(b, len(b))
			require.NoError(t, err)
			require.Equal(t, c, h.Codec())
			require.Equal(t, int32(len(recs)), h.NumRecords)
			require.Equal(t, recs[0].ts, h.BaseTimestamp)
			require.Equal(t, int64(1_800_000_000_000), h.MaxTimestamp)
			require.Equal(t, recs, readAll(t, b, 1<<20))
		})
	}
}

func TestRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randBytes := func(max int) []byte {
		switch rng.IntN(5) {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		p := make([]byte, rng.IntN(max))
		for i := range p {
			p[i] = byte(rng.IntN(4)) + 'a' // compressible
		}
		return p
	}
	var bld Builder
	var it Iter
	var dst []byte
	for round := range 200 {
		c := allCodecs[round%len(allCodecs)]
		bld.Reset(c)
		n := 1 + rng.IntN(300)
		var recs []testRecord
		for range n {
			r := testRecord{ts: rng.Int64N(1<<42) - 1<<41, key: randBytes(40), value: randBytes(3000)}
			for range rng.IntN(4) {
				r.headers = append(r.headers, RecordHeader{Key: string(randBytes(10)), Value: randBytes(20)})
			}
			recs = append(recs, r)
			bld.Add(r.ts, r.key, r.value, r.headers)
		}
		require.Equal(t, n, bld.Len())
		var err error
		dst, err = bld.Build(dst[:0])
		require.NoError(t, err)
		if c == CodecNone {
			require.Equal(t, bld.Size(), len(dst))
		}
		h, err := Check(dst, len(dst))
		require.NoError(t, err)
		require.NoError(t, it.Reset(dst, 16<<20))
		for i := range recs {
			r, ok := it.Next()
			require.True(t, ok, "record %d: %v", i, it.Err())
			want := recs[i]
			require.Equal(t, want.ts, h.BaseTimestamp+r.TimestampDelta)
			require.Equal(t, want.key == nil, r.Key == nil)
			require.Equal(t, want.value == nil, r.Value == nil)
			require.True(t, bytes.Equal(want.key, r.Key))
			require.True(t, bytes.Equal(want.value, r.Value))
			require.Len(t, r.Headers, len(want.headers))
			for j, hd := range r.Headers {
				require.Equal(t, want.headers[j].Key, hd.Key)
				require.Equal(t, want.headers[j].Value == nil, hd.Value == nil)
				require.True(t, bytes.Equal(want.headers[j].Value, hd.Value))
			}
		}
		_, ok := it.Next()
		require.False(t, ok)
		require.NoError(t, it.Err())
	}
}

func TestIterClippedCapacity(t *testing.T) {
	for _, c := range allCodecs {
		b := buildBatch(t, c, goldenRecords())
		var it Iter
		require.NoError(t, it.Reset(b, 1<<20))
		r, ok := it.Next()
		require.True(t, ok)
		require.Equal(t, len(r.Key), cap(r.Key))
		_ = append(r.Key, 'X', 'X', 'X') // must not clobber the value
		require.Equal(t, "hello", string(r.Value))
		require.Equal(t, len(r.Headers[0].Value), cap(r.Headers[0].Value))
	}
}

// rawBatch builds an uncompressed batch around a hand-made records section,
// with the CRC fixed so only the records are wrong.
func rawBatch(n int32, records ...[]byte) []byte {
	return makeBatch(CodecNone, n, bytes.Join(records, nil))
}

// rec encodes one record from raw varint fields, with a correct length
// prefix unless length is given.
func rec(fields ...[]byte) []byte {
	body := bytes.Join(fields, nil)
	return append(binary.AppendVarint(nil, int64(len(body))), body...)
}

func v(x int64) []byte { return binary.AppendVarint(nil, x) }

func TestIterCorrupt(t *testing.T) {
	okRec := func(i int64) []byte { return rec([]byte{0}, v(0), v(i), v(-1), v(1), []byte("x"), v(0)) }
	cases := map[string][]byte{
		"trailing bytes":         rawBatch(1, okRec(0), []byte{0, 0, 0, 0, 0, 0, 0, 0}),
		"offset delta mismatch":  rawBatch(1, okRec(1), make([]byte, 7)[:0]),
		"second offset delta":    rawBatch(2, okRec(0), okRec(0)),
		"negative length":        rawBatch(1, v(-3), make([]byte, 7)),
		"length past end":        rawBatch(1, v(100), make([]byte, 7)),
		"length too small":       rawBatch(1, v(5), make([]byte, 7)),
		"key past record":        rawBatch(1, rec([]byte{0}, v(0), v(0), v(50), v(-1), v(0)), make([]byte, 50)),
		"key length -2":          rawBatch(1, rec([]byte{0}, v(0), v(0), v(-2), v(-1), v(0))),
		"value past record":      rawBatch(1, rec([]byte{0}, v(0), v(0), v(-1), v(9), v(0)), make([]byte, 10)),
		"negative headers":       rawBatch(1, rec([]byte{0}, v(0), v(0), v(-1), v(-1), v(-1))),
		"too many headers":       rawBatch(1, rec([]byte{0}, v(0), v(0), v(-1), v(-1), v(math.MaxInt32), v(0), v(0))),
		"null header key":        rawBatch(1, rec([]byte{0}, v(0), v(0), v(-1), v(-1), v(1), v(-1), v(-1))),
		"header value past end":  rawBatch(1, rec([]byte{0}, v(0), v(0), v(-1), v(-1), v(1), v(0), v(3))),
		"unread bytes in record": rawBatch(1, rec([]byte{0}, v(0), v(0), v(-1), v(-1), v(0), []byte{1, 2})),
		"varint overflow":        rawBatch(1, rec([]byte{0}, v(0), bytes.Repeat([]byte{0xff}, 11), v(0))),
		"int32 varint too big":   rawBatch(1, rec([]byte{0}, v(0), v(0), v(math.MaxInt32+1), v(-1), v(0))),
		"truncated varint":       rawBatch(1, rec([]byte{0}, v(0), v(0), v(-1), v(-1), []byte{0x80})),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var it Iter
			if err := it.Reset(b, 1<<20); err != nil {
				require.ErrorIs(t, err, ErrCorrupt)
				return
			}
			for {
				if _, ok := it.Next(); !ok {
					break
				}
			}
			require.ErrorIs(t, it.Err(), ErrCorrupt)
			_, ok := it.Next()
			require.False(t, ok, "Next stays false after an error")
		})
	}
	// Sanity: the well-formed variants decode.
	var it Iter
	require.NoError(t, it.Reset(rawBatch(2, okRec(0), okRec(1)), 1<<20))
	n := 0
	for {
		r, ok := it.Next()
		if !ok {
			break
		}
		require.Nil(t, r.Key)
		require.Equal(t, "x", string(r.Value))
		n++
	}
	require.NoError(t, it.Err())
	require.Equal(t, 2, n)
}

func TestIterResetErrors(t *testing.T) {
	var it Iter
	_, ok := it.Next()
	require.False(t, ok, "zero Iter is empty")
	require.NoError(t, it.Err())

	good := buildBatch(t, CodecGzip, sampleRecords())
	require.ErrorIs(t, it.Reset(good[:30], 1<<20), ErrTruncated)
	require.ErrorIs(t, it.Err(), ErrTruncated)
	require.ErrorIs(t, it.Reset(good[:len(good)-1], 1<<20), ErrTruncated)

	bad := append([]byte(nil), good...)
	bad[OffsetAttributes+1] = 7
	require.ErrorIs(t, it.Reset(bad, 1<<20), ErrUnknownCodec)

	// Garbage in place of the gzip stream.
	require.ErrorIs(t, it.Reset(makeBatch(CodecGzip, 1, []byte("not gzip at all")), 1<<20), ErrCorrupt)
	require.ErrorIs(t, it.Reset(makeBatch(CodecLZ4, 1, []byte("not lz4 at all")), 1<<20), ErrCorrupt)
	require.ErrorIs(t, it.Reset(makeBatch(CodecZstd, 1, []byte("not zstd at all")), 1<<20), ErrCorrupt)
	require.ErrorIs(t, it.Reset(makeBatch(CodecSnappy, 1, []byte("not snappy at all")), 1<<20), ErrCorrupt)

	// A truncated compressed stream.
	for _, c := range allCodecs[1:] {
		b := buildBatch(t, c, sampleRecords())
		body := b[HeaderSize : len(b)-5]
		err := it.Reset(makeBatch(c, int32(len(sampleRecords())), body), 1<<20)
		require.ErrorIs(t, err, ErrCorrupt, c.String())
	}

	// The Iter recovers after errors.
	require.NoError(t, it.Reset(good, 1<<20))
	n := 0
	for _, ok := it.Next(); ok; _, ok = it.Next() {
		n++
	}
	require.NoError(t, it.Err())
	require.Equal(t, len(sampleRecords()), n)
	require.Equal(t, int32(n), it.Header().NumRecords)
}

func TestIterZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			b := buildBatch(t, c, sampleRecords())
			var it Iter
			run := func() {
				if err := it.Reset(b, 1<<20); err != nil {
					t.Fatal(err)
				}
				for _, ok := it.Next(); ok; _, ok = it.Next() {
				}
				if it.Err() != nil {
					t.Fatal(it.Err())
				}
			}
			run() // warm up: buffers, interned header keys, pools
			allocs := testing.AllocsPerRun(50, run)
			if c == CodecNone || c == CodecSnappy {
				require.Zero(t, allocs)
			} else {
				t.Logf("%s: %.1f allocs per batch", c, allocs)
				require.LessOrEqual(t, allocs, 1.0)
			}
		})
	}
}

func TestBuilderZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	key := []byte("0123456789abcdef")
	value := bytes.Repeat([]byte("v"), 100)
	hdrs := []RecordHeader{{Key: "traceparent", Value: []byte("00-1-2-01")}}
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			var b Builder
			var dst []byte
			run := func() {
				b.Reset(c)
				for i := range 128 {
					b.Add(int64(i), key, value, hdrs)
				}
				var err error
				if dst, err = b.Build(dst[:0]); err != nil {
					t.Fatal(err)
				}
			}
			run()
			allocs := testing.AllocsPerRun(20, run)
			t.Logf("%s: %.1f allocs per 128-record batch", c, allocs)
			if c == CodecNone || c == CodecSnappy {
				require.Zero(t, allocs)
			} else {
				require.LessOrEqual(t, allocs, 1.0)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	// Builders and Iters are per-goroutine; the codec pools are shared.
	done := make(chan error)
	for g := range 4 {
		go func() {
			var bld Builder
			var it Iter
			var dst []byte
			var err error
			for round := range 40 {
				c := allCodecs[(g+round)%len(allCodecs)]
				bld.Reset(c)
				for i := range 50 {
					bld.Add(int64(i), []byte("key"), bytes.Repeat([]byte{byte(g)}, 100+i), nil)
				}
				if dst, err = bld.Build(dst[:0]); err == nil {
					err = it.Reset(dst, 1<<20)
				}
				for n := 0; err == nil; n++ {
					r, ok := it.Next()
					if !ok {
						err = it.Err()
						if err == nil && n != 50 {
							err = errors.New("short batch")
						}
						break
					}
					if len(r.Value) != 100+n || r.Value[0] != byte(g) {
						err = errors.New("wrong record")
					}
				}
				if err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-done)
	}
}
