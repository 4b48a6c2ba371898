package batch

import (
	"fmt"
)

// Record is one decoded record.
//
// Key and Value are nil when null and alias memory the Iter does not copy:
// the batch passed to Reset (uncompressed batches) or the Iter's
// decompression buffer (compressed batches), so they stay valid until the
// batch bytes change or the Iter is Reset. Their capacity is clipped, so
// appending to them never overwrites neighbouring data. Headers is reused by
// the next call to Next; header Values alias like Key and Value, header Keys
// are ordinary (immutable) strings.
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key, Value     []byte
	Headers        []RecordHeader
}

// Limits on the Iter's cache of header-key strings, which lets repeated
// keys ("traceparent", "content-type", ...) decode without allocating.
const (
	maxInternedKeys   = 256
	maxInternedKeyLen = 128
)

// Iter decodes the records of one batch. The zero value is ready for
// Reset; an Iter is reusable and keeps its decompression buffer across
// batches. It is not safe for concurrent use.
type Iter struct {
	h    Header
	data []byte // records section: aliases the batch or buf
	buf  []byte // decompression buffer, owned
	pos  int
	i    int32 // records decoded so far
	// prevDelta is the last record's offset delta (-1 before the first).
	prevDelta int64
	err       error
	hdrs      []RecordHeader
	keys      map[string]string // interned header keys
}

// Reset points the Iter at batch, which holds exactly one batch (bytes past
// its length field's extent are ignored) that should already have passed
// Check: the CRC is not verified again, but nothing else is trusted.
// Compressed records are decompressed here into the Iter's buffer; more than
// maxUncompressed bytes of output fail with ErrTooLarge (uncompressed
// batches are read in place and not subject to it). The error is also what
// Err reports afterwards. Records from the previous batch become invalid if
// they aliased the Iter's buffer.
func (it *Iter) Reset(batch []byte, maxUncompressed int) error {
	it.h, it.data, it.pos, it.i, it.err, it.prevDelta = Header{}, nil, 0, 0, nil, -1
	it.hdrs = it.hdrs[:0]
	h, err := ReadHeader(batch)
	if err != nil {
		return it.fail(err)
	}
	it.h = h
	size := h.Size()
	if size > len(batch) {
		return it.fail(fmt.Errorf("%w: batch size %d, have %d bytes", ErrTruncated, size, len(batch)))
	}
	c := h.Codec()
	if !c.Valid() {
		return it.fail(fmt.Errorf("%w: %d", ErrUnknownCodec, int8(c)))
	}
	if err := checkCount(h); err != nil {
		return it.fail(err)
	}
	body := batch[HeaderSize:size:size]
	if c == CodecNone {
		it.data = body
		return nil
	}
	out, err := decompress(it.buf, c, body, maxUncompressed)
	it.buf = out[:0]
	if err != nil {
		return it.fail(err)
	}
	if int64(h.NumRecords)*minRecordSize > int64(len(out)) {
		return it.fail(fmt.Errorf("%w: %d records cannot fit in %d decompressed bytes", ErrCorrupt, h.NumRecords, len(out)))
	}
	it.data = out
	return nil
}

func (it *Iter) fail(err error) error {
	it.err, it.data = err, nil
	return err
}

// Header is the header of the batch given to the last Reset.
func (it *Iter) Header() Header { return it.h }

// Err is the error that stopped the iteration: the one Reset returned, or
// ErrCorrupt wrapped with detail when the records section is malformed.
// It is nil after a clean end.
func (it *Iter) Err() error { return it.err }

// Next decodes the next record. It returns false at the end of the batch or
// on error (see Err). After the last record it also verifies that no bytes
// follow it.
func (it *Iter) Next() (Record, bool) {
	if it.err != nil || it.data == nil {
		return Record{}, false
	}
	if it.i >= it.h.NumRecords {
		if it.pos != len(it.data) {
			it.corrupt("%d bytes after the last record", len(it.data)-it.pos)
		}
		return Record{}, false
	}
	d := it.data
	length, p := varint(d, it.pos)
	if p < 0 || length < minRecordSize-1 || length > int64(len(d)-p) {
		it.corrupt("record length %d with %d bytes left", length, len(d)-max(p, it.pos))
		return Record{}, false
	}
	end := p + int(length)
	d = d[:end] // the record's fields may not run past its length
	var r Record
	r.Attributes = int8(d[p])
	if r.TimestampDelta, p = varint(d, p+1); p < 0 {
		it.corrupt("bad timestamp delta")
		return Record{}, false
	}
	// Offset deltas increase; compaction may leave gaps between them.
	if od, p2 := varint(d, p); p2 < 0 || od <= it.prevDelta || od > int64(it.h.LastOffsetDelta) ||
		int64(it.h.LastOffsetDelta)-od < int64(it.h.NumRecords-it.i-1) {
		it.corrupt("offset delta %d after %d in a batch of last delta %d", od, it.prevDelta, it.h.LastOffsetDelta)
		return Record{}, false
	} else {
		r.OffsetDelta, p = int32(od), p2
		it.prevDelta = od
	}
	// Key and value, inlined by hand (see nullableBytes): -1 is null.
	kl, p := varint(d, p)
	if p < 0 || kl < -1 || kl > int64(end-p) {
		it.corrupt("key length %d", kl)
		return Record{}, false
	}
	if kl >= 0 {
		r.Key = d[p : p+int(kl) : p+int(kl)]
		p += int(kl)
	}
	vl, p := varint(d, p)
	if p < 0 || vl < -1 || vl > int64(end-p) {
		it.corrupt("value length %d", vl)
		return Record{}, false
	}
	if vl >= 0 {
		r.Value = d[p : p+int(vl) : p+int(vl)]
		p += int(vl)
	}
	// Each header takes at least two bytes, which bounds the count before
	// anything is allocated for it.
	nh, p2 := varint(d, p)
	if p2 < 0 || nh < 0 || nh > int64(end-p2)/2 {
		it.corrupt("header count %d with %d bytes left", nh, end-p)
		return Record{}, false
	}
	p = p2
	if nh > 0 {
		hdrs := it.hdrs[:0]
		for j := range int(nh) {
			kl, p2 := varint(d, p)
			if p2 < 0 || kl < 0 || kl > int64(end-p2) {
				it.corrupt("header %d: key length %d", j, kl)
				return Record{}, false
			}
			p = p2 + int(kl)
			key := it.intern(d[p2:p])
			var v []byte
			if v, p = nullableBytes(d, p); p < 0 {
				it.corrupt("header %d: bad value", j)
				return Record{}, false
			}
			hdrs = append(hdrs, RecordHeader{Key: key, Value: v})
		}
		it.hdrs = hdrs
		r.Headers = hdrs
	}
	if p != end {
		it.corrupt("%d unread bytes at the end of the record", end-p)
		return Record{}, false
	}
	it.pos = end
	it.i++
	return r, true
}

func (it *Iter) corrupt(format string, args ...any) {
	it.err = fmt.Errorf("%w: record %d: %s", ErrCorrupt, it.i, fmt.Sprintf(format, args...))
}

// intern returns b as a string, reusing an earlier allocation for keys seen
// before. The cache is bounded, so hostile input cannot grow it.
func (it *Iter) intern(b []byte) string {
	if s, ok := it.keys[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(b) <= maxInternedKeyLen && len(it.keys) < maxInternedKeys {
		if it.keys == nil {
			it.keys = make(map[string]string)
		}
		it.keys[s] = s
	}
	return s
}

// varint decodes the zig-zag varint (or varlong) at b[p:], returning the
// value and the position after it, or a negative position when b[p:] does
// not hold a complete varint of at most 10 bytes. Callers check the value's
// range. Small enough to be inlined.
func varint(b []byte, p int) (int64, int) {
	var u uint64
	for s := uint(0); s < 70; s += 7 {
		if uint(p) >= uint(len(b)) {
			break
		}
		x := b[p]
		p++
		u |= uint64(x&0x7f) << s
		if x < 0x80 {
			return int64(u>>1) ^ -int64(u&1), p
		}
	}
	return 0, -1
}

// nullableBytes decodes a varint length (-1 = null) and that many bytes,
// returned with their capacity clipped, and the position after them (or a
// negative position on error).
func nullableBytes(b []byte, p int) ([]byte, int) {
	l, p := varint(b, p)
	if p < 0 || l < -1 || l > int64(len(b)-p) {
		return nil, -1
	}
	if l < 0 {
		return nil, p
	}
	end := p + int(l)
	return b[p:end:end], end
}
