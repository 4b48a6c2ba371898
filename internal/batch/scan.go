package batch

import (
	"fmt"
	"math"
)

// Scan walks the batches laid end to end from the start of b, as in a log
// segment, and is a pure function of its arguments (used for recovery).
//
// It returns valid, the length of the longest prefix of b made of whole
// batches that each pass Check(…, maxBytes) and whose offsets increase: the
// first base offset is non-negative and each next one is at least the
// previous batch's NextOffset. err says why the bytes at valid were
// rejected (wrapping ErrTruncated for a torn tail, ErrOffsetOrder for
// offsets going backwards, or Check's error); it is nil when b ends exactly
// at a batch boundary, including when b is empty.
//
// fn, if non-nil, is called with each valid batch's position and header, in
// order. If it returns false Scan stops there and returns the end of that
// batch and a nil error.
func Scan(b []byte, maxBytes int, fn func(pos int, h Header) bool) (valid int, err error) {
	var next int64 // lowest acceptable base offset
	pos := 0
	for pos < len(b) {
		h, err := Check(b[pos:], maxBytes)
		if err != nil {
			return pos, fmt.Errorf("%w (at byte %d)", err, pos)
		}
		if h.BaseOffset < next {
			return pos, fmt.Errorf("%w: at byte %d: base offset %d, want at least %d", ErrOffsetOrder, pos, h.BaseOffset, next)
		}
		// Check guarantees 0 <= LastOffsetDelta < MaxInt32.
		if h.BaseOffset > math.MaxInt64-int64(h.LastOffsetDelta)-1 {
			return pos, fmt.Errorf("%w: at byte %d: offsets from %d overflow", ErrOffsetOrder, pos, h.BaseOffset)
		}
		next = h.NextOffset()
		pos += h.Size()
		if fn != nil && !fn(pos-h.Size(), h) {
			return pos, nil
		}
	}
	return pos, nil
}
