package commitlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/layout"
)

var allCodecs = []batch.Codec{batch.CodecNone, batch.CodecGzip, batch.CodecSnappy, batch.CodecLZ4, batch.CodecZstd}
var allPolicies = []SyncPolicy{SyncGroupCommit, SyncPeriodic, SyncNone}

// TestLogMatrix runs the same append, read, roll, reopen and recover
// sequence for every codec and sync policy.
func TestLogMatrix(t *testing.T) {
	const ts0 = 1_700_000_000_000
	for _, codec := range allCodecs {
		for _, policy := range allPolicies {
			t.Run(fmt.Sprintf("%v/%v", codec, policy), func(t *testing.T) {
				dir := t.TempDir()
				cfg := LogConfig{SegmentBytes: 4096, IndexIntervalBytes: 256, SyncPolicy: policy}
				l, err := OpenLog(dir, cfg)
				require.NoError(t, err)
				appendN(t, l, codec, 500, 7, ts0)
				require.Greater(t, l.Segments(), 2, "small segments roll")
				require.Equal(t, int64(500), l.EndOffset())
				require.Equal(t, expectRecords(0, 500, ts0), readAll(t, l, 0))
				require.Equal(t, expectRecords(333, 500, ts0), readAll(t, l, 333))
				require.NoError(t, l.Sync())
				require.Equal(t, int64(500), l.DurableOffset())

				require.NoError(t, l.Close())
				require.NoError(t, l.Close(), "Close is idempotent")
				_, err = l.Append(makeBatch(t, codec, 0, 1, ts0))
				require.ErrorIs(t, err, ErrClosed)

				l, err = OpenLog(dir, cfg)
				require.NoError(t, err)
				require.Equal(t, int64(500), l.EndOffset())
				require.Equal(t, expectRecords(0, 500, ts0), readAll(t, l, 0))
				appendN(t, l, codec, 100, 9, ts0)
				crash(l)

				l, err = OpenLog(dir, cfg)
				require.NoError(t, err)
				defer l.Close()
				require.Equal(t, int64(600), l.EndOffset())
				require.Equal(t, expectRecords(0, 600, ts0), readAll(t, l, 0))
				off, ok, err := l.OffsetForTime(ts0 + 421)
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, int64(421), off)
			})
		}
	}
}

func TestLogReadBounds(t *testing.T) {
	l, err := OpenLog(t.TempDir(), LogConfig{SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer l.Close()
	s, err := l.Read(0, 100)
	require.NoError(t, err)
	require.Empty(t, s.Bytes)
	require.Equal(t, int64(0), s.NextOffset)

	appendN(t, l, batch.CodecNone, 30, 10, 0)
	_, err = l.Read(31, 100)
	var oor *OffsetOutOfRangeError
	require.ErrorAs(t, err, &oor)
	require.ErrorIs(t, err, ErrOffsetOutOfRange)
	require.Equal(t, OffsetOutOfRangeError{Offset: 31, Start: 0, End: 30}, *oor)
	_, err = l.Read(-1, 100)
	require.ErrorIs(t, err, ErrOffsetOutOfRange)

	// maxBytes smaller than a batch still returns the whole batch holding
	// the offset (KIP-74), and only that one.
	s, err = l.Read(15, 1)
	require.NoError(t, err)
	h, err := batch.Check(s.Bytes, len(s.Bytes))
	require.NoError(t, err)
	require.Equal(t, int64(10), h.BaseOffset)
	require.Equal(t, h.Size(), len(s.Bytes))
	require.Equal(t, int64(20), s.NextOffset)
	s.Release()
	s.Release()
}

func TestLogRejectsBadBatches(t *testing.T) {
	l, err := OpenLog(t.TempDir(), LogConfig{SyncPolicy: SyncNone, MaxBatchBytes: 1000})
	require.NoError(t, err)
	defer l.Close()
	good := makeBatch(t, batch.CodecNone, 0, 3, 0)

	big := makeBatch(t, batch.CodecNone, 0, 100, 0)
	_, err = l.Append(big)
	require.ErrorIs(t, err, ErrRecordTooLarge)

	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 1
	_, err = l.Append(flipped)
	require.ErrorIs(t, err, ErrCorruptBatch)
	require.ErrorIs(t, err, batch.ErrBadCRC)

	_, err = l.Append(good[:len(good)-1])
	require.ErrorIs(t, err, ErrCorruptBatch)
	_, err = l.Append(append(append([]byte(nil), good...), 0))
	require.ErrorIs(t, err, ErrCorruptBatch)
	magic := append([]byte(nil), good...)
	magic[batch.OffsetMagic] = 1
	_, err = l.Append(magic)
	require.ErrorIs(t, err, ErrCorruptBatch)
	_, err = l.Append(nil)
	require.ErrorIs(t, err, ErrCorruptBatch)

	require.Equal(t, int64(0), l.EndOffset(), "nothing appended")
	base, err := l.Append(good)
	require.NoError(t, err, "the log still works")
	require.Equal(t, int64(0), base)
}

func TestLogTruncate(t *testing.T) {
	dir := t.TempDir()
	cfg := LogConfig{SegmentBytes: 2048, IndexIntervalBytes: 128, SyncPolicy: SyncNone}
	l, err := OpenLog(dir, cfg)
	require.NoError(t, err)
	appendN(t, l, batch.CodecNone, 300, 5, 0)
	segs := l.Segments()
	require.Greater(t, segs, 3)

	held, err := l.Read(290, 1<<20)
	require.NoError(t, err)

	end, err := l.Truncate(152)
	require.NoError(t, err)
	require.Equal(t, int64(150), end, "whole batches go")
	require.Equal(t, int64(150), l.EndOffset())
	require.Less(t, l.Segments(), segs)
	require.Equal(t, expectRecords(0, 150, 0), readAll(t, l, 0))
	// A slice taken before is still readable (its segment was deleted).
	_, err = batch.Check(held.Bytes, len(held.Bytes))
	require.NoError(t, err)
	held.Release()

	appendN(t, l, batch.CodecNone, 50, 5, 0)
	require.Equal(t, expectRecords(0, 200, 0), readAll(t, l, 0))
	off, ok, err := l.OffsetForTime(180)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(180), off)

	// Truncation survives both kinds of reopen.
	_, err = l.Truncate(177)
	require.NoError(t, err)
	crash(l)
	l, err = OpenLog(dir, cfg)
	require.NoError(t, err)
	require.Equal(t, int64(175), l.EndOffset())
	require.Equal(t, expectRecords(0, 175, 0), readAll(t, l, 0))
	_, err = l.Truncate(100)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	l, err = OpenLog(dir, cfg)
	require.NoError(t, err)
	defer l.Close()
	require.Equal(t, int64(100), l.EndOffset())
	require.Equal(t, expectRecords(0, 100, 0), readAll(t, l, 0))
	appendN(t, l, batch.CodecNone, 20, 5, 0)
	require.Equal(t, expectRecords(0, 120, 0), readAll(t, l, 0))
}

func TestLogRetention(t *testing.T) {
	dir := t.TempDir()
	cfg := LogConfig{SegmentBytes: 2048, SyncPolicy: SyncNone}
	l, err := OpenLog(dir, cfg)
	require.NoError(t, err)
	defer l.Close()
	now := time.UnixMilli(1_000_000)
	appendN(t, l, batch.CodecNone, 400, 10, now.UnixMilli())
	total := l.Segments()

	held, err := l.Read(0, 100)
	require.NoError(t, err)

	n, err := l.DeleteBefore(100)
	require.NoError(t, err)
	require.Greater(t, n, 0)
	require.LessOrEqual(t, l.StartOffset(), int64(100))
	require.Greater(t, l.StartOffset(), int64(0))
	_, err = l.Read(0, 100)
	require.ErrorIs(t, err, ErrOffsetOutOfRange)
	require.Equal(t, expectRecords(int(l.StartOffset()), 400, now.UnixMilli()), readAll(t, l, l.StartOffset()))
	_, err = batch.Check(held.Bytes, len(held.Bytes))
	require.NoError(t, err, "a held slice outlives deletion")
	held.Release()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NotContains(t, e.Name(), layout.DeletedSuffix, "files go once the last reader is done")
	}

	size := l.Size()
	n, err = l.RetainBytes(size / 2)
	require.NoError(t, err)
	require.Greater(t, n, 0)
	require.GreaterOrEqual(t, l.Size(), size/2)
	require.Less(t, l.Size(), size)

	// Age: records carry timestamps now+seq; keep those newer than now+300.
	_, err = l.RetainAge(time.Hour, now.Add(time.Hour+300*time.Millisecond))
	require.NoError(t, err)
	require.Greater(t, l.StartOffset(), int64(200))
	require.LessOrEqual(t, l.StartOffset(), int64(301))
	require.Less(t, l.Segments(), total)

	// Everything expired: the active segment rolls and goes too.
	n, err = l.RetainAge(time.Hour, now.Add(2*time.Hour))
	require.NoError(t, err)
	require.Greater(t, n, 0)
	require.Equal(t, int64(400), l.StartOffset())
	require.Equal(t, int64(400), l.EndOffset())
	require.Equal(t, 1, l.Segments())
	appendN(t, l, batch.CodecNone, 10, 10, now.UnixMilli())
	require.Equal(t, expectRecords(400, 410, now.UnixMilli()), readAll(t, l, 400))
	_, err = os.Stat(filepath.Join(dir, layout.SegmentFile(0, layout.KindLog)))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestConcurrentReadersWriterRetention tails the log from several readers
// while one goroutine appends and another applies retention: readers see
// every record they reach in order and intact, jump forward when retention
// passes them, and never block the writer.
func TestConcurrentReadersWriterRetention(t *testing.T) {
	l, err := OpenLog(t.TempDir(), LogConfig{SegmentBytes: 4096, IndexIntervalBytes: 256, SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer l.Close()
	const total = 5000
	errs := make(chan error, 8)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var it batch.Iter
			off := int64(0)
			for off < total {
				if err := l.WaitData(context.Background(), off); err != nil {
					errs <- err
					return
				}
				s, err := l.Read(off, 2048)
				if errors.Is(err, ErrOffsetOutOfRange) {
					off = l.StartOffset()
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				for b := s.Bytes; len(b) > 0; {
					h, err := batch.Check(b, len(b))
					if err == nil {
						err = it.Reset(b[:h.Size()], 1<<20)
					}
					if err != nil {
						errs <- err
						return
					}
					for rec, ok := it.Next(); ok; rec, ok = it.Next() {
						o := h.BaseOffset + int64(rec.OffsetDelta)
						if want := fmt.Sprintf("k%d", o); string(rec.Key) != want {
							errs <- fmt.Errorf("offset %d has key %q", o, rec.Key)
							return
						}
					}
					b = b[h.Size():]
				}
				if s.NextOffset <= off && len(s.Bytes) > 0 {
					errs <- fmt.Errorf("no progress at %d", off)
					return
				}
				off = max(off, s.NextOffset)
				s.Release()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := l.RetainBytes(16 << 10); err != nil {
				errs <- err
				return
			}
			runtime.Gosched()
		}
	}()
	appendN(t, l, batch.CodecNone, total, 5, 0)
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Greater(t, l.StartOffset(), int64(0), "retention ran")
}

// TestSliceWriteTo sends a read slice over loopback TCP (zero-copy on
// Linux) and into a buffer (copy), and gets the same bytes both ways.
func TestSliceWriteTo(t *testing.T) {
	l, err := OpenLog(t.TempDir(), LogConfig{SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer l.Close()
	appendN(t, l, batch.CodecNone, 200, 10, 0)
	s, err := l.Read(50, 1<<20)
	require.NoError(t, err)
	defer s.Release()

	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	require.NoError(t, err)
	require.Equal(t, int64(len(s.Bytes)), n)
	require.Equal(t, s.Bytes, buf.Bytes())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	n, err = s.WriteTo(c)
	require.NoError(t, err)
	require.Equal(t, int64(len(s.Bytes)), n)
	require.NoError(t, c.Close())
	require.Equal(t, s.Bytes, <-got)
}

// TestReadStopsAtEndSeen checks that Read never returns a batch at or past
// the end offset it loaded, even when the writer has already published
// that batch in the segment (the moment between the two stores).
func TestReadStopsAtEndSeen(t *testing.T) {
	l, err := OpenLog(t.TempDir(), LogConfig{SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer l.Close()
	appendN(t, l, batch.CodecNone, 10, 5, 0)
	l.end.Store(5) // as if the second batch were published but end not yet moved
	s, err := l.Read(0, 1<<20)
	require.NoError(t, err)
	require.Equal(t, int64(5), s.NextOffset)
	h, err := batch.Check(s.Bytes, len(s.Bytes))
	require.NoError(t, err)
	require.Equal(t, h.Size(), len(s.Bytes), "only the first batch")
	s.Release()
	l.end.Store(10)
}

// TestReadCorruptHeader checks that a damaged batch header inside
// published data is reported, not skipped.
func TestReadCorruptHeader(t *testing.T) {
	l, err := OpenLog(t.TempDir(), LogConfig{SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer l.Close()
	appendN(t, l, batch.CodecNone, 10, 5, 0)
	s, err := l.Read(5, 1)
	require.NoError(t, err)
	pos := s.Position
	s.Release()
	_, err = l.active.log.WriteAt([]byte{0xff, 0xff, 0xff, 0xff}, pos+batch.OffsetLength)
	require.NoError(t, err)
	_, err = l.Read(5, 1<<20)
	require.ErrorIs(t, err, ErrCorruptLog)
}

// TestAppendAllocs checks that appending pre-built batches allocates
// nothing, index entries included (an entry buffer once escaped per
// append), and that truncating a large range does not allocate it.
func TestAppendAllocs(t *testing.T) {
	if builtWithRace() {
		t.Skip("the race detector allocates")
	}
	l, err := OpenLog(t.TempDir(), LogConfig{SyncPolicy: SyncNone, IndexIntervalBytes: 1})
	require.NoError(t, err)
	defer l.Close()
	b := makeBatch(t, batch.CodecNone, 0, 10, 0)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
	require.Greater(t, l.active.index.len(), 100)

	appendN(t, l, batch.CodecNone, 20000, 100, 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = l.Truncate(100)
	require.NoError(t, err)
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(l.active.extent/2), "zeros are written from a bounded buffer")
}
