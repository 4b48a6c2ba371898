package batch

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// segment concatenates batches of every codec with consecutive offsets and
// returns the bytes and the batch boundaries (including 0 and the end).
func segment(t *testing.T) ([]byte, []int) {
	var seg []byte
	bounds := []int{0}
	var next int64
	var b Builder
	for i, c := range append(allCodecs, CodecNone, CodecZstd) {
		b.Reset(c)
		for j := range i + 1 {
			b.Add(int64(1000+j), []byte("k"), []byte("some value"), nil)
		}
		start := len(seg)
		var err error
		seg, err = b.Build(seg)
		require.NoError(t, err)
		SetBaseOffset(seg[start:], next)
		next += int64(b.Len()) + 3 // gaps are allowed, as after compaction
		bounds = append(bounds, len(seg))
	}
	return seg, bounds
}

func TestScanCutEverywhere(t *testing.T) {
	seg, bounds := segment(t)
	bi := 0
	for cut := 0; cut <= len(seg); cut++ {
		for bi+1 < len(bounds) && bounds[bi+1] <= cut {
			bi++
		}
		valid, err := Scan(seg[:cut], math.MaxInt32, nil)
		require.Equal(t, bounds[bi], valid, "cut %d", cut)
		if cut == bounds[bi] {
			require.NoError(t, err, "cut %d", cut)
		} else {
			require.ErrorIs(t, err, ErrTruncated, "cut %d", cut)
		}
	}
}

func TestScanCallback(t *testing.T) {
	seg, bounds := segment(t)
	var positions []int
	var offsets []int64
	valid, err := Scan(seg, math.MaxInt32, func(pos int, h Header) bool {
		positions = append(positions, pos)
		offsets = append(offsets, h.BaseOffset)
		return true
	})
	require.NoError(t, err)
	require.Equal(t, len(seg), valid)
	require.Equal(t, bounds[:len(bounds)-1], positions)
	require.Equal(t, int64(0), offsets[0])

	// Stopping early: valid is the end of the last batch handed to fn.
	calls := 0
	valid, err = Scan(seg, math.MaxInt32, func(pos int, h Header) bool {
		calls++
		return calls < 3
	})
	require.NoError(t, err)
	require.Equal(t, 3, calls)
	require.Equal(t, bounds[3], valid)
}

func TestScanRejects(t *testing.T) {
	seg, bounds := segment(t)

	// Empty input.
	valid, err := Scan(nil, 100, nil)
	require.NoError(t, err)
	require.Zero(t, valid)

	// Zeroed tail (preallocated file): bad magic at the boundary.
	withZeros := append(append([]byte(nil), seg...), make([]byte, 100)...)
	valid, err = Scan(withZeros, math.MaxInt32, nil)
	require.Equal(t, len(seg), valid)
	require.ErrorIs(t, err, ErrBadMagic)

	// A corrupted byte in the third batch.
	bad := append([]byte(nil), seg...)
	bad[bounds[2]+HeaderSize+2] ^= 0x10
	valid, err = Scan(bad, math.MaxInt32, nil)
	require.Equal(t, bounds[2], valid)
	require.ErrorIs(t, err, ErrBadCRC)

	// Offsets going backwards, or repeating.
	// Batch 1 holds offsets 4..5, so batch 2 may start at 6 or later.
	for _, off := range []int64{0, 4, 5} {
		bad = append([]byte(nil), seg...)
		SetBaseOffset(bad[bounds[2]:], off)
		valid, err = Scan(bad, math.MaxInt32, nil)
		require.Equal(t, bounds[2], valid)
		require.ErrorIs(t, err, ErrOffsetOrder)
	}
	SetBaseOffset(bad[bounds[2]:], 6)
	valid, err = Scan(bad, math.MaxInt32, nil)
	require.NoError(t, err)
	require.Equal(t, len(seg), valid)
	// A negative first offset.
	bad = append([]byte(nil), seg...)
	SetBaseOffset(bad, -1)
	valid, err = Scan(bad, math.MaxInt32, nil)
	require.Zero(t, valid)
	require.ErrorIs(t, err, ErrOffsetOrder)
	// An offset range that overflows int64.
	bad = append([]byte(nil), seg[bounds[1]:bounds[2]]...) // a 2-record batch
	SetBaseOffset(bad, math.MaxInt64-1)
	valid, err = Scan(bad, math.MaxInt32, nil)
	require.Zero(t, valid)
	require.ErrorIs(t, err, ErrOffsetOrder)
	SetBaseOffset(bad, math.MaxInt64-2)
	valid, err = Scan(bad, math.MaxInt32, nil)
	require.NoError(t, err)
	require.Equal(t, len(bad), valid)

	// A batch over maxBytes.
	biggest := 0
	for i := 1; i < len(bounds); i++ {
		biggest = max(biggest, bounds[i]-bounds[i-1])
	}
	valid, err = Scan(seg, biggest-1, nil)
	require.Less(t, valid, len(seg))
	require.ErrorIs(t, err, ErrTooLarge)
	require.False(t, errors.Is(err, ErrTruncated))
}
