package batch

import (
	"encoding/binary"
	"fmt"
)

// Filter appends to dst a copy of the batch src (one whole batch that passed
// Check) keeping only the records keep accepts, as log compaction needs:
// the base offset, every kept record's offset and timestamp, the
// lastOffsetDelta (so offsets after the batch are unchanged), the codec,
// the attributes, the producer fields and the leader epoch stay as they
// were. For CreateTime batches maxTimestamp becomes the largest kept
// timestamp. When every record is kept src is appended unchanged; when none
// is, nothing is appended. It returns the extended dst and how many records
// were kept. it is the Iter used to decode src, and scratch a buffer for
// the uncompressed records (both reused across calls); maxUncompressed
// caps decompression as in Iter.Reset.
func Filter(dst, src []byte, it *Iter, scratch *[]byte, maxUncompressed int, keep func(Record) bool) ([]byte, int, error) {
	if err := it.Reset(src, maxUncompressed); err != nil {
		return dst, 0, err
	}
	h := it.Header()
	recs := (*scratch)[:0]
	kept := 0
	maxTs := int64(-1)
	for {
		r, ok := it.Next()
		if !ok {
			break
		}
		if !keep(r) {
			continue
		}
		kept++
		maxTs = max(maxTs, h.BaseTimestamp+r.TimestampDelta)
		recs = appendRecord(recs, r.Attributes, r.TimestampDelta, int64(r.OffsetDelta), r.Key, r.Value, r.Headers)
	}
	*scratch = recs
	if err := it.Err(); err != nil {
		return dst, 0, err
	}
	switch kept {
	case int(h.NumRecords):
		return append(dst, src[:h.Size()]...), kept, nil
	case 0:
		return dst, 0, nil
	}
	start := len(dst)
	dst = append(dst, src[:HeaderSize]...)
	if c := h.Codec(); c == CodecNone {
		dst = append(dst, recs...)
	} else {
		var err error
		if dst, err = compress(dst, c, recs); err != nil {
			return dst[:start], 0, err
		}
	}
	out := dst[start:]
	if len(out) > maxBatchSize {
		return dst[:start], 0, fmt.Errorf("%w: filtered batch of %d bytes", ErrTooLarge, len(out))
	}
	be := binary.BigEndian
	be.PutUint32(out[OffsetLength:], uint32(len(out)-lengthOverhead))
	if !h.LogAppendTime() {
		be.PutUint64(out[OffsetMaxTimestamp:], uint64(maxTs))
	}
	be.PutUint32(out[OffsetRecordCount:], uint32(kept))
	be.PutUint32(out[OffsetCRC:], crc(out[OffsetAttributes:]))
	return dst, kept, nil
}
