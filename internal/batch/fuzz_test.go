package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

var sentinels = []error{ErrTruncated, ErrTooLarge, ErrBadMagic, ErrBadCRC, ErrBadLength, ErrCorrupt, ErrUnknownCodec, ErrOffsetOrder}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// fuzzSeeds are valid batches of every codec, alone and concatenated.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	var seg []byte
	for i, c := range allCodecs {
		b := buildBatch(t, c, sampleRecords()[:2+i])
		seeds = append(seeds, b)
		start := len(seg)
		seg = append(seg, b...)
		SetBaseOffset(seg[start:], int64(10*i))
	}
	return append(seeds, seg)
}

func FuzzCheckAndIter(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAndIter(t, data)
		// Random bytes almost never carry a valid CRC; fix the length,
		// magic and CRC so the record decoder gets exercised too.
		if len(data) >= HeaderSize {
			b := append([]byte(nil), data...)
			binary.BigEndian.PutUint32(b[OffsetLength:], uint32(len(b)-lengthOverhead))
			b[OffsetMagic] = Magic
			fixCRC(b)
			checkAndIter(t, b)
		}
	})
}

func checkAndIter(t *testing.T, data []byte) {
	const limit = 1 << 20
	var it Iter
	h, err := Check(data, limit)
	if err != nil {
		if !isSentinel(err) {
			t.Fatalf("Check: non-sentinel error %v", err)
		}
		// Iter must cope with unchecked input as well.
		if it.Reset(data, limit) == nil {
			for _, ok := it.Next(); ok; _, ok = it.Next() {
			}
		}
		return
	}
	if h.Size() > len(data) || h.Size() < HeaderSize {
		t.Fatalf("Check passed a batch of size %d with %d bytes", h.Size(), len(data))
	}
	if err := it.Reset(data[:h.Size()], limit); err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Reset after Check: %v", err)
		}
		return
	}
	type rec struct {
		delta      int64
		key, value []byte
		headers    []RecordHeader
	}
	var recs []rec
	for r, ok := it.Next(); ok; r, ok = it.Next() {
		recs = append(recs, rec{r.TimestampDelta, r.Key, r.Value, append([]RecordHeader(nil), r.Headers...)})
	}
	if err := it.Err(); err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Next: %v", err)
		}
		return
	}
	if len(recs) != int(h.NumRecords) {
		t.Fatalf("decoded %d records, header says %d", len(recs), h.NumRecords)
	}

	// Re-encoding what was decoded must give back the same records.
	var b Builder
	b.Reset(CodecNone)
	for _, r := range recs {
		b.Add(h.BaseTimestamp+r.delta, r.key, r.value, r.headers)
	}
	out, err := b.Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	var it2 Iter
	if err := it2.Reset(out, limit); err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		r, ok := it2.Next()
		if !ok {
			t.Fatalf("rebuilt batch ends at %d: %v", i, it2.Err())
		}
		want := recs[i]
		if r.TimestampDelta != want.delta-recs[0].delta ||
			!bytes.Equal(r.Key, want.key) || (r.Key == nil) != (want.key == nil) ||
			!bytes.Equal(r.Value, want.value) || (r.Value == nil) != (want.value == nil) ||
			len(r.Headers) != len(want.headers) {
			t.Fatalf("record %d differs after rebuild", i)
		}
		for j, hd := range r.Headers {
			w := want.headers[j]
			if hd.Key != w.Key || !bytes.Equal(hd.Value, w.Value) || (hd.Value == nil) != (w.Value == nil) {
				t.Fatalf("record %d header %d differs after rebuild", i, j)
			}
		}
	}
	if _, ok := it2.Next(); ok || it2.Err() != nil {
		t.Fatalf("rebuilt batch: extra record or error %v", it2.Err())
	}
}

func FuzzScan(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, 1<<20, false)
		f.Add(s, 1<<20, true)
		f.Add(s[:len(s)-1], 1<<20, false)
		f.Add(s, 100, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, maxBytes int, fix bool) {
		if fix {
			// Fix up CRCs so the fuzzer can explore offsets and framing
			// rather than only CRC mismatches.
			data = append([]byte(nil), data...)
			for pos := 0; pos < len(data); {
				h, err := ReadHeader(data[pos:])
				if err != nil || h.Size() > len(data)-pos {
					break
				}
				fixCRC(data[pos:])
				pos += h.Size()
			}
		}
		var ends []int
		valid, err := Scan(data, maxBytes, func(pos int, h Header) bool {
			if len(ends) > 0 && pos != ends[len(ends)-1] || len(ends) == 0 && pos != 0 {
				t.Fatalf("batch at %d does not follow the previous one", pos)
			}
			ends = append(ends, pos+h.Size())
			return true
		})
		if valid < 0 || valid > len(data) {
			t.Fatalf("valid %d out of range [0, %d]", valid, len(data))
		}
		if (err == nil) != (valid == len(data)) {
			t.Fatalf("valid %d of %d with error %v", valid, len(data), err)
		}
		if err != nil && !isSentinel(err) {
			t.Fatalf("non-sentinel error %v", err)
		}
		if len(ends) > 0 && ends[len(ends)-1] != valid || len(ends) == 0 && valid != 0 {
			t.Fatalf("valid %d but batches end at %v", valid, ends)
		}
		// The valid prefix scans clean on its own.
		if v2, err := Scan(data[:valid], maxBytes, nil); v2 != valid || err != nil {
			t.Fatalf("rescan of prefix: %d, %v; want %d, nil", v2, err, valid)
		}
		// Stopping after the first batch.
		if len(ends) > 0 {
			v3, err := Scan(data, maxBytes, func(int, Header) bool { return false })
			if v3 != ends[0] || err != nil {
				t.Fatalf("early stop: %d, %v; want %d, nil", v3, err, ends[0])
			}
		}
	})
}
