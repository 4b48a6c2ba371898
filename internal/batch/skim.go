package batch

// NextMeta is Next for callers that need only where and when each record
// is: it reads a record's timestamp and offset deltas and skips its key,
// value and headers by the record's length, without parsing them. A record
// whose length runs past the batch is reported through Err as Next does;
// the fields skipped are not checked (Next checks them).
func (it *Iter) NextMeta() (timestampDelta int64, offsetDelta int32, ok bool) {
	if it.err != nil || it.data == nil || it.i >= it.h.NumRecords {
		return 0, 0, false
	}
	d := it.data
	length, p := varint(d, it.pos)
	if p < 0 || length < minRecordSize-1 || length > int64(len(d)-p) {
		it.corrupt("record length %d with %d bytes left", length, len(d)-max(p, it.pos))
		return 0, 0, false
	}
	end := p + int(length)
	d = d[:end]
	ts, p := varint(d, p+1)
	if p < 0 {
		it.corrupt("bad timestamp delta")
		return 0, 0, false
	}
	od, p := varint(d, p)
	if p < 0 || od <= it.prevDelta || od > int64(it.h.LastOffsetDelta) {
		it.corrupt("offset delta %d after %d in a batch of last delta %d", od, it.prevDelta, it.h.LastOffsetDelta)
		return 0, 0, false
	}
	it.prevDelta = od
	it.pos = end
	it.i++
	return ts, int32(od), true
}
