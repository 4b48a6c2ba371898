package commitlog

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/batch"
)

// testRecord is what the tests write and expect to read back.
type testRecord struct {
	Offset    int64
	Timestamp int64
	Key       string
	Value     string
}

// makeBatch encodes n records with keys and values derived from seq (the
// first record's sequence number) and timestamps ts, ts+1, ...
func makeBatch(t testing.TB, codec batch.Codec, seq, n int, ts int64) []byte {
	t.Helper()
	var b batch.Builder
	b.Reset(codec)
	for i := 0; i < n; i++ {
		b.Add(ts+int64(i), fmt.Appendf(nil, "k%d", seq+i), fmt.Appendf(nil, "value-%d", seq+i), nil)
	}
	out, err := b.Build(nil)
	require.NoError(t, err)
	return out
}

// readAll reads every record of l from offset to the end.
func readAll(t testing.TB, l *Log, from int64) []testRecord {
	t.Helper()
	var out []testRecord
	var it batch.Iter
	for off := from; off < l.EndOffset(); {
		s, err := l.Read(off, 1<<20)
		require.NoError(t, err)
		if len(s.Bytes) == 0 {
			s.Release()
			break
		}
		data := s.Bytes
		for len(data) > 0 {
			h, err := batch.Check(data, len(data))
			require.NoError(t, err)
			require.NoError(t, it.Reset(data[:h.Size()], 64<<20))
			for {
				r, ok := it.Next()
				if !ok {
					break
				}
				o := h.BaseOffset + int64(r.OffsetDelta)
				if o >= off {
					out = append(out, testRecord{Offset: o, Timestamp: h.BaseTimestamp + r.TimestampDelta, Key: string(r.Key), Value: string(r.Value)})
				}
			}
			require.NoError(t, it.Err())
			data = data[h.Size():]
		}
		off = s.NextOffset
		s.Release()
	}
	return out
}

// expectRecords returns the records makeBatch wrote for sequence numbers
// [from, to), with offsets equal to sequence numbers and timestamps ts0+seq.
func expectRecords(from, to int, ts0 int64) []testRecord {
	var out []testRecord
	for i := from; i < to; i++ {
		out = append(out, testRecord{Offset: int64(i), Timestamp: ts0 + int64(i), Key: fmt.Sprintf("k%d", i), Value: fmt.Sprintf("value-%d", i)})
	}
	return out
}

// crash abandons l as a killed process would: no seal, no marker, files
// left as they are. The flusher is stopped so the test leaks nothing.
func crash(l *Log) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.sync.stop()
	segs := l.segs.Load()
	l.segs.Store(nil)
	for _, s := range segs.segs {
		// Leave extents as they are: a crash trims nothing.
		s.extent = s.size.Load()
		s.release()
	}
}

// appendN appends batches of per records until n records were written,
// with sequence numbers and timestamps continuing from the log's end.
func appendN(t testing.TB, l *Log, codec batch.Codec, n, per int, ts0 int64) {
	t.Helper()
	for done := 0; done < n; done += per {
		seq := int(l.EndOffset())
		base, err := l.Append(makeBatch(t, codec, seq, min(per, n-done), ts0+int64(seq)))
		require.NoError(t, err)
		require.Equal(t, int64(seq), base)
	}
}
