package commitlog

// Benchmarks of the storage engine, each beside the raw limit of the machine
// it runs on (plain pwrite, fdatasync, memcpy, CRC32C, ...), measured in the
// same run. BENCHMARKS.md holds the figures and how to reproduce them.
//
// Every benchmark is a family (BenchmarkLogXxx) whose parent function builds
// the fixture once, in a b.TempDir that is removed when the family ends, and
// then runs its sub-benchmarks; the testing package runs a parent with
// sub-benchmarks only once whatever -count says, so -count repeats the
// measurements, not the (sometimes slow) fixture building. Nothing here runs
// without -bench, and no timing is ever asserted: the b.Fatal calls check
// correctness only.
//
// Records are 16-byte keys and 100-byte values, uncompressed, in batches of
// about 16 KiB (16316 bytes, 129 records). The VM this was written on
// returns free memory to its host, so pages touched for the first time are
// several times slower than warm ones: fixtures are written and read once
// before timing, and the append benchmarks overwrite a page-cached region
// of the file instead of growing it into fresh pages (see logBenchRegion).

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/layout"
	"github.com/streamkit/commitlog/internal/vfs"
	"github.com/streamkit/commitlog/internal/vfs/errorfs"
)

const (
	logBenchKeyBytes   = 16
	logBenchValueBytes = 100
	logBenchBatchBytes = 16 << 10 // upper bound on the size of one batch
	// logBenchRegion is how many bytes of log an append benchmark writes
	// before rewinding to the start of its (page-cached) file.
	logBenchRegion = 512 << 20
	// logBenchReadMax is the maxBytes of the read benchmarks: a typical
	// consumer fetch (Kafka's max.partition.fetch.bytes).
	logBenchReadMax = 1 << 20
	// logBenchT0 is the timestamp (ms) of offset 0 in fixtures whose record
	// at offset o has timestamp logBenchT0+o.
	logBenchT0 = 1_700_000_000_000
)

var (
	logBenchCastagnoli = crc32.MakeTable(crc32.Castagnoli)
	logBenchPoolOnce   sync.Once
	logBenchKeys       [][]byte // 4096 distinct 16-byte keys
	logBenchValues     [][]byte // 4096 pseudo-random 100-byte values
	logBenchSink       atomic.Int64
)

func logBenchPool() {
	logBenchPoolOnce.Do(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 4096; i++ {
			k := fmt.Appendf(nil, "key-%012d", rng.Uint64()%1e12)
			v := make([]byte, logBenchValueBytes)
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			logBenchKeys = append(logBenchKeys, k[:logBenchKeyBytes])
			logBenchValues = append(logBenchValues, v)
		}
	})
}

// logBenchFill adds records seq, seq+1, ... to bld (which the caller Reset)
// with timestamps ts, ts+1, ... until the batch would pass
// logBenchBatchBytes, and returns how many it added.
func logBenchFill(bld *batch.Builder, seq int, ts int64) int {
	logBenchPool()
	n := 0
	// A record takes at most 2+1+3+3+1+16+1+100+1 = 128 bytes.
	for bld.Size()+128 <= logBenchBatchBytes {
		i := (seq + n) & 4095
		bld.Add(ts+int64(n), logBenchKeys[i], logBenchValues[i], nil)
		n++
	}
	return n
}

// logBenchTemplate returns a freshly built ~16 KiB batch and its record
// count. Its timestamps are ts, ts+1, ...
func logBenchTemplate(tb testing.TB, ts int64) ([]byte, int) {
	tb.Helper()
	var bld batch.Builder
	bld.Reset(batch.CodecNone)
	n := logBenchFill(&bld, 0, ts)
	out, err := bld.Build(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return out, n
}

// logBenchRetime gives batch b (of n records built by logBenchTemplate)
// the timestamps ts, ts+1, ..., ts+n-1 and recomputes its CRC.
func logBenchRetime(b []byte, n int, ts int64) {
	be := func(off int, v int64) {
		for i := 7; i >= 0; i-- {
			b[off+i] = byte(v)
			v >>= 8
		}
	}
	be(batch.OffsetBaseTimestamp, ts)
	be(batch.OffsetMaxTimestamp, ts+int64(n)-1)
	c := crc32.Checksum(b[batch.OffsetAttributes:], logBenchCastagnoli)
	b[batch.OffsetCRC], b[batch.OffsetCRC+1], b[batch.OffsetCRC+2], b[batch.OffsetCRC+3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
}

// logBenchNoSyncFS turns every fsync into a no-op: fixtures that would
// otherwise spend most of their build time in the fsyncs of segment rolls
// are built through it, then flushed once by logBenchSyncDir. Never used
// for a timed operation.
type logBenchNoSyncFS struct{ vfs.FS }

type logBenchNoSyncFile struct{ vfs.File }

func (fs logBenchNoSyncFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := fs.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return logBenchNoSyncFile{f}, nil
}

func (logBenchNoSyncFS) SyncDir(string) error { return nil }
func (logBenchNoSyncFile) Sync() error        { return nil }

// logBenchBuild appends copies of tmpl (n records each) to a new log in dir
// until it holds at least bytes bytes, closes it cleanly and flushes the
// page cache to disk so that no writeback is left to disturb what is timed
// next. With retime, the record at offset o gets timestamp logBenchT0+o.
func logBenchBuild(b *testing.B, dir string, cfg LogConfig, tmpl []byte, n int, bytes int64, retime bool) {
	b.Helper()
	cfg.SyncPolicy = SyncNone
	l, err := openLog(logBenchNoSyncFS{vfs.Default}, dir, cfg)
	if err != nil {
		b.Fatal(err)
	}
	buf := slices.Clone(tmpl)
	for written := int64(0); written < bytes; written += int64(len(buf)) {
		if retime {
			logBenchRetime(buf, n, logBenchT0+l.EndOffset())
		}
		if _, err := l.Append(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	logBenchSyncDir(b, dir)
}

// logBenchSyncDir fsyncs every file in dir and dir itself.
func logBenchSyncDir(b *testing.B, dir string) {
	b.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err == nil {
			err = errors.Join(f.Sync(), f.Close())
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := vfs.Default.SyncDir(dir); err != nil {
		b.Fatal(err)
	}
}

// logBenchClose closes c, failing b if that fails.
func logBenchClose(b *testing.B, c io.Closer) {
	if err := c.Close(); err != nil {
		b.Error(err)
	}
}

// logBenchTouch reads one byte of every cache line of p.
func logBenchTouch(p []byte) int {
	s := 0
	for i := 0; i < len(p); i += 64 {
		s += int(p[i])
	}
	return s
}

// logBenchWarmRead reads l from start to end once, touching every byte's
// cache line: it faults the mapping in and checks the log is whole.
func logBenchWarmRead(b *testing.B, l *Log) {
	b.Helper()
	s := 0
	for off := l.StartOffset(); off < l.EndOffset(); {
		sl, err := l.Read(off, 64<<20)
		if err != nil {
			b.Fatal(err)
		}
		s += logBenchTouch(sl.Bytes)
		off = sl.NextOffset
		sl.Release()
	}
	logBenchSink.Add(int64(s))
}

func logBenchRecordsPerSec(b *testing.B, records int) {
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkLogAppend appends pre-built ~16 KiB batches with SyncNone, one
// writer, next to raw pwrites of the same bytes at the same positions of a
// page-cached file (the engine's own vfs.File.WriteAt), and raw pwrite plus
// a CRC32C of the batch (the validation that Append cannot skip).
//
// Both the log and the raw file cycle over the first logBenchRegion bytes of
// their file, whose pages were written once before timing. Every run starts
// with a rewind, with the timer stopped: Log.Truncate(0) (which zeroes the
// used bytes and fsyncs) for the log, fdatasync for the raw file; so both
// start on clean, cached pages.
func BenchmarkLogAppend(b *testing.B) {
	dir := b.TempDir()
	tmpl, n := logBenchTemplate(b, logBenchT0)
	per := int64(len(tmpl))
	slots := logBenchRegion / per

	l, err := OpenLog(filepath.Join(dir, "log"), LogConfig{SyncPolicy: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logBenchClose(b, l) })
	raw, err := vfs.Default.OpenFile(filepath.Join(dir, "raw"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logBenchClose(b, raw) })

	rewindLog := func() {
		if _, err := l.Truncate(0); err != nil {
			b.Fatal(err)
		}
	}
	var rawSlot int64
	rewindRaw := func() {
		if err := raw.Sync(); err != nil {
			b.Fatal(err)
		}
		rawSlot = 0
	}
	// Warm both files: write the whole region once.
	buf := slices.Clone(tmpl)
	for i := int64(0); i < slots; i++ {
		if _, err := l.Append(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := raw.WriteAt(buf, i*per); err != nil {
			b.Fatal(err)
		}
	}
	rewindLog()
	rewindRaw()

	b.Run("engine", func(b *testing.B) {
		buf := slices.Clone(tmpl)
		b.SetBytes(per)
		b.ReportAllocs()
		rewindLog()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if l.EndOffset()/int64(n) >= slots {
				b.StopTimer()
				rewindLog()
				b.StartTimer()
			}
			if _, err := l.Append(buf); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		logBenchRecordsPerSec(b, b.N*n)
	})

	rawRun := func(withCRC bool) func(b *testing.B) {
		return func(b *testing.B) {
			buf := slices.Clone(tmpl)
			b.SetBytes(per)
			b.ReportAllocs()
			rewindRaw()
			var sum uint32
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if rawSlot >= slots {
					b.StopTimer()
					rewindRaw()
					b.StartTimer()
				}
				if withCRC {
					sum += crc32.Checksum(buf[batch.OffsetAttributes:], logBenchCastagnoli)
				}
				if _, err := raw.WriteAt(buf, rawSlot*per); err != nil {
					b.Fatal(err)
				}
				rawSlot++
			}
			b.StopTimer()
			logBenchSink.Add(int64(sum))
			logBenchRecordsPerSec(b, b.N*n)
		}
	}
	b.Run("raw-pwrite", rawRun(false))
	b.Run("raw-pwrite+crc32c", rawRun(true))

	// paired alternates runs of 8 Appends and 8 raw pwrites (which goes
	// first alternates too) and times each side: on a VM whose speed drifts
	// by 2x within seconds, the ratio of two interleaved measurements is far
	// steadier than the ratio of two separate benchmarks. Its ns/op covers
	// both sides; read the engine-MB/s, raw-MB/s and engine/raw metrics.
	b.Run("paired", func(b *testing.B) {
		const chunk = 8
		buf := slices.Clone(tmpl)
		b.SetBytes(2 * per)
		var tEng, tRaw time.Duration
		rewindLog()
		rewindRaw()
		engine := func(k int) {
			t := time.Now()
			for j := 0; j < k; j++ {
				if _, err := l.Append(buf); err != nil {
					b.Fatal(err)
				}
			}
			tEng += time.Since(t)
		}
		pwrite := func(k int) {
			t := time.Now()
			for j := 0; j < k; j++ {
				if _, err := raw.WriteAt(buf, rawSlot*per); err != nil {
					b.Fatal(err)
				}
				rawSlot++
			}
			tRaw += time.Since(t)
		}
		for i := 0; i < b.N; i += chunk {
			k := min(chunk, b.N-i)
			if l.EndOffset()/int64(n)+int64(k) > slots || rawSlot+int64(k) > slots {
				b.StopTimer()
				rewindLog()
				rewindRaw()
				b.StartTimer()
			}
			if i/chunk%2 == 0 {
				engine(k)
				pwrite(k)
			} else {
				pwrite(k)
				engine(k)
			}
		}
		eng := float64(b.N) * float64(per) / tEng.Seconds() / 1e6
		rw := float64(b.N) * float64(per) / tRaw.Seconds() / 1e6
		b.ReportMetric(eng, "engine-MB/s")
		b.ReportMetric(rw, "raw-MB/s")
		b.ReportMetric(eng/rw, "engine/raw")
	})
}

// BenchmarkLogAppendEncode encodes records with batch.Builder into ~16 KiB
// batches and appends each (SyncNone, one writer), next to the encoding
// alone. One op is one batch of 129 records.
func BenchmarkLogAppendEncode(b *testing.B) {
	dir := b.TempDir()
	tmpl, n := logBenchTemplate(b, logBenchT0)
	per := int64(len(tmpl))
	slots := logBenchRegion / per

	l, err := OpenLog(filepath.Join(dir, "log"), LogConfig{SyncPolicy: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logBenchClose(b, l) })
	rewind := func() {
		if _, err := l.Truncate(0); err != nil {
			b.Fatal(err)
		}
	}
	for i := int64(0); i < slots; i++ {
		if _, err := l.Append(tmpl); err != nil {
			b.Fatal(err)
		}
	}
	rewind()

	run := func(appendToo bool) func(b *testing.B) {
		return func(b *testing.B) {
			var bld batch.Builder
			out := make([]byte, 0, logBenchBatchBytes)
			b.SetBytes(per)
			b.ReportAllocs()
			if appendToo {
				rewind()
			}
			seq := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if appendToo && l.EndOffset()/int64(n) >= slots {
					b.StopTimer()
					rewind()
					b.StartTimer()
				}
				bld.Reset(batch.CodecNone)
				// Producer timestamps: the wall clock, as a client sets them.
				k := logBenchFill(&bld, seq, time.Now().UnixMilli())
				seq += k
				var err error
				if out, err = bld.Build(out[:0]); err != nil {
					b.Fatal(err)
				}
				if appendToo {
					if _, err := l.Append(out); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			logBenchRecordsPerSec(b, seq)
		}
	}
	b.Run("engine", run(true))
	b.Run("raw-encode", run(false))
}

// BenchmarkLogGroupCommit runs 8 concurrent appenders of ~16 KiB batches on a
// log with the default policy, SyncGroupCommit: every Append returns once
// its batch is fdatasynced. One op is one acknowledged batch. fsyncs are
// counted by wrapping the file system (errorfs with an Injector that counts
// OpSync on .log files and never fails). The raw limits are pwrite +
// fdatasync of one batch, and of 8 batches at once (what one group commit
// of 8 appenders ideally costs), appended to a file as the log does; and
// the same 8 batches overwriting already written and synced blocks, to
// show what extending the file costs each fdatasync.
func BenchmarkLogGroupCommit(b *testing.B) {
	const appenders = 8
	tmpl, n := logBenchTemplate(b, logBenchT0)
	per := int64(len(tmpl))

	b.Run(fmt.Sprintf("engine-%dappenders", appenders), func(b *testing.B) {
		var syncs atomic.Int64
		counter := errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
			if op == errorfs.OpSync && strings.HasSuffix(path, ".log") {
				syncs.Add(1)
			}
			return nil
		})
		l, err := openLog(errorfs.New(vfs.Default, counter), b.TempDir(), LogConfig{})
		if err != nil {
			b.Fatal(err)
		}
		defer logBenchClose(b, l)
		bufs := make([][]byte, appenders)
		lat := make([][]time.Duration, appenders)
		for i := range bufs {
			bufs[i] = slices.Clone(tmpl)
			lat[i] = make([]time.Duration, 0, b.N/appenders+1)
		}
		b.SetBytes(per)
		b.ReportAllocs()
		var claimed atomic.Int64
		var wg sync.WaitGroup
		syncs.Store(0)
		b.ResetTimer()
		for a := 0; a < appenders; a++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for claimed.Add(1) <= int64(b.N) {
					t := time.Now()
					if _, err := l.Append(bufs[a]); err != nil {
						b.Error(err)
						return
					}
					lat[a] = append(lat[a], time.Since(t))
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		if l.DurableOffset() != l.EndOffset() || l.EndOffset() != int64(b.N*n) {
			b.Fatalf("durable %d, end %d, want %d", l.DurableOffset(), l.EndOffset(), b.N*n)
		}
		s := b.Elapsed().Seconds()
		logBenchRecordsPerSec(b, b.N*n)
		b.ReportMetric(float64(syncs.Load())/s, "fsyncs/s")
		b.ReportMetric(float64(b.N)/float64(max(syncs.Load(), 1)), "batches/fsync")
		all := slices.Concat(lat...)
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-ack-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-ack-µs")
	})

	// rawRun appends (or, with overwrite, rewrites within a file whose blocks
	// were already written and synced, so that fdatasync has no file size
	// or block allocation to commit) batches copies of the batch, then
	// fdatasyncs.
	rawRun := func(batches int, overwrite bool) func(b *testing.B) {
		return func(b *testing.B) {
			const preBytes = 64 << 20
			f, err := vfs.Default.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			defer logBenchClose(b, f)
			buf := make([]byte, 0, int(per)*batches)
			for range batches {
				buf = append(buf, tmpl...)
			}
			slots := int64(preBytes / len(buf))
			if overwrite {
				if _, err := f.WriteAt(make([]byte, preBytes), 0); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				slot := int64(i)
				if overwrite {
					slot %= slots
				}
				if _, err := f.WriteAt(buf, slot*int64(len(buf))); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			logBenchRecordsPerSec(b, b.N*n*batches)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fsyncs/s")
		}
	}
	// paired alternates 50 ms phases of the engine (8 appenders, as above)
	// and of the raw limit (pwrite of 8 batches + fdatasync, back to back),
	// one op being one pair of phases: this disk's fdatasync latency drifts
	// by 2x or more within seconds, which separate benchmarks cannot
	// compare. Read the engine-records/s, raw-records/s and engine/raw
	// metrics.
	b.Run("paired", func(b *testing.B) {
		const phase = 50 * time.Millisecond
		dir := b.TempDir()
		l, err := OpenLog(filepath.Join(dir, "log"), LogConfig{})
		if err != nil {
			b.Fatal(err)
		}
		defer logBenchClose(b, l)
		f, err := vfs.Default.OpenFile(filepath.Join(dir, "raw"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer logBenchClose(b, f)
		raw8 := make([]byte, 0, int(per)*appenders)
		for range appenders {
			raw8 = append(raw8, tmpl...)
		}
		var gate sync.RWMutex // appenders hold it shared while appending
		var stop atomic.Bool
		var acked atomic.Int64
		var wg sync.WaitGroup
		gate.Lock()
		for a := 0; a < appenders; a++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := slices.Clone(tmpl)
				for {
					gate.RLock()
					if stop.Load() {
						gate.RUnlock()
						return
					}
					_, err := l.Append(buf)
					gate.RUnlock()
					if err != nil {
						b.Error(err)
						return
					}
					acked.Add(1)
				}
			}()
		}
		var tEng, tRaw time.Duration
		var rawSyncs, rawPos int64
		for i := 0; i < b.N; i++ {
			t := time.Now()
			gate.Unlock()
			time.Sleep(phase)
			gate.Lock() // waits for the appends in flight
			tEng += time.Since(t)

			t = time.Now()
			for time.Since(t) < phase {
				if _, err := f.WriteAt(raw8, rawPos); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				rawPos += int64(len(raw8))
				rawSyncs++
			}
			tRaw += time.Since(t)
		}
		stop.Store(true)
		gate.Unlock()
		wg.Wait()
		eng := float64(acked.Load()*int64(n)) / tEng.Seconds()
		rw := float64(rawSyncs*int64(appenders*n)) / tRaw.Seconds()
		b.ReportMetric(eng, "engine-records/s")
		b.ReportMetric(rw, "raw-records/s")
		b.ReportMetric(eng/rw, "engine/raw")
	})
	b.Run("raw-pwrite+fdatasync-1batch", rawRun(1, false))
	b.Run(fmt.Sprintf("raw-pwrite+fdatasync-%dbatches", appenders), rawRun(appenders, false))
	b.Run(fmt.Sprintf("raw-pwrite+fdatasync-%dbatches-overwrite", appenders), rawRun(appenders, true))
}

// BenchmarkLogRead reads a page-cached 256 MiB log sequentially, one op
// being one Read of logBenchReadMax bytes (64 whole batches, 8256 records):
//
//   - decode: Read + batch.Iter over every record (no CRC check, as
//     Iter.Reset documents);
//   - decode+crc: the same after batch.Check of every batch (what a
//     consumer with check.crcs=true does);
//   - bytes: Read + one load per 64-byte cache line of the slice;
//
// next to the raw limits on the same mapped bytes: memcpy of a read's worth
// into a 1 MiB buffer, CRC32C of it, and the cache-line touch alone.
func BenchmarkLogRead(b *testing.B) {
	const reads = 256
	tmpl, n := logBenchTemplate(b, logBenchT0)
	per := len(tmpl)
	perRead := logBenchReadMax / per // batches a Read returns
	readBytes := int64(perRead * per)
	readRecords := perRead * n

	dir := filepath.Join(b.TempDir(), "log")
	logBenchBuild(b, dir, LogConfig{}, tmpl, n, reads*readBytes, false)
	l, err := OpenLog(dir, LogConfig{SyncPolicy: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logBenchClose(b, l) })
	logBenchWarmRead(b, l)
	end := l.EndOffset()
	// all aliases the whole log, for the raw limits.
	all, err := l.Read(0, int(l.Size()))
	if err != nil || int64(len(all.Bytes)) != reads*readBytes {
		b.Fatalf("read all: %d bytes, %v", len(all.Bytes), err)
	}
	b.Cleanup(all.Release)
	for off := int64(0); off < end; {
		s, err := l.Read(off, logBenchReadMax)
		if err != nil || int64(len(s.Bytes)) != readBytes {
			b.Fatalf("Read(%d) = %d bytes, %v; want %d", off, len(s.Bytes), err, readBytes)
		}
		off = s.NextOffset
		s.Release()
	}

	read := func(b *testing.B, each func(data []byte) int) {
		b.SetBytes(readBytes)
		b.ReportAllocs()
		var off int64
		sum := 0
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			s, err := l.Read(off, logBenchReadMax)
			if err != nil {
				b.Fatal(err)
			}
			sum += each(s.Bytes)
			if off = s.NextOffset; off == end {
				off = 0
			}
			s.Release()
		}
		b.StopTimer()
		logBenchSink.Add(int64(sum))
	}
	decode := func(check bool) func(b *testing.B) {
		return func(b *testing.B) {
			var it batch.Iter
			records := 0
			read(b, func(data []byte) int {
				sum := 0
				for len(data) > 0 {
					if check {
						if _, err := batch.Check(data, len(data)); err != nil {
							b.Fatal(err)
						}
					}
					if err := it.Reset(data, maxUncompressedBytes); err != nil {
						b.Fatal(err)
					}
					for {
						r, ok := it.Next()
						if !ok {
							break
						}
						sum += len(r.Key) + len(r.Value)
						records++
					}
					if err := it.Err(); err != nil {
						b.Fatal(err)
					}
					data = data[it.Header().Size():]
				}
				return sum
			})
			if records != b.N*readRecords {
				b.Fatalf("decoded %d records, want %d", records, b.N*readRecords)
			}
			logBenchRecordsPerSec(b, records)
		}
	}
	b.Run("decode", decode(false))
	b.Run("decode+crc", decode(true))
	b.Run("bytes", func(b *testing.B) {
		read(b, logBenchTouch)
		logBenchRecordsPerSec(b, b.N*readRecords)
	})

	raw := func(op func(src []byte) int) func(b *testing.B) {
		return func(b *testing.B) {
			b.SetBytes(readBytes)
			b.ReportAllocs()
			sum := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off := int64(i%reads) * readBytes
				sum += op(all.Bytes[off : off+readBytes])
			}
			b.StopTimer()
			logBenchSink.Add(int64(sum))
			logBenchRecordsPerSec(b, b.N*readRecords)
		}
	}
	dst := make([]byte, readBytes)
	copy(dst, all.Bytes) // fault the destination in
	b.Run("raw-memcpy", raw(func(src []byte) int { return copy(dst, src) }))
	b.Run("raw-crc32c", raw(func(src []byte) int { return int(crc32.Checksum(src, logBenchCastagnoli)) }))
	b.Run("raw-touch", raw(logBenchTouch))
}

// BenchmarkLogLookup looks up random offsets and timestamps in logs of 1 M
// and 10 M records (126 MB and 1.26 GB, default 1 GiB segments, one index
// entry per batch), to show the cost is O(log n): Read(offset, 1)+Release,
// the segment-level find (segment list search + offset index search + header
// walk) and OffsetForTime. raw-binsearch is slices.BinarySearch over the
// base offsets of all batches held in a Go slice: the floor for any O(log n)
// search over that many entries.
func BenchmarkLogLookup(b *testing.B) {
	tmpl, n := logBenchTemplate(b, logBenchT0)
	for _, records := range []int64{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("records=%dM", records/1_000_000), func(b *testing.B) {
			batches := (records + int64(n) - 1) / int64(n)
			dir := filepath.Join(b.TempDir(), "log")
			logBenchBuild(b, dir, LogConfig{}, tmpl, n, batches*int64(len(tmpl)), true)
			l, err := OpenLog(dir, LogConfig{SyncPolicy: SyncNone})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { logBenchClose(b, l) })
			end := l.EndOffset()
			logBenchWarmRead(b, l)

			rng := rand.New(rand.NewPCG(3, 4))
			offs := make([]int64, 1<<16)
			for i := range offs {
				offs[i] = rng.Int64N(end)
			}
			mask := len(offs) - 1
			bases := make([]int64, batches)
			for i := range bases {
				bases[i] = int64(i * n)
			}
			// Check the answers (and warm the indexes) once, untimed.
			for _, o := range offs {
				s, err := l.Read(o, 1)
				if err != nil || s.NextOffset <= o || s.NextOffset-int64(n) > o {
					b.Fatalf("Read(%d): next %d, %v", o, s.NextOffset, err)
				}
				s.Release()
				got, ok, err := l.OffsetForTime(logBenchT0 + o)
				if err != nil || !ok || got != o {
					b.Fatalf("OffsetForTime(T0+%d) = %d, %v, %v", o, got, ok, err)
				}
			}
			b.Logf("%d records, %d segments, %d bytes", end, l.Segments(), l.Size())

			b.Run("Read", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					s, err := l.Read(offs[i&mask], 1)
					if err != nil {
						b.Fatal(err)
					}
					s.Release()
				}
			})
			b.Run("find", func(b *testing.B) {
				b.ReportAllocs()
				segs := l.segs.Load()
				var sum int64
				for i := 0; i < b.N; i++ {
					o := offs[i&mask]
					pos, ok, _ := segs.segs[segs.find(o)].find(o)
					if !ok {
						b.Fatal("not found")
					}
					sum += pos
				}
				logBenchSink.Add(sum)
			})
			b.Run("OffsetForTime", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, _, err := l.OffsetForTime(logBenchT0 + offs[i&mask]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("raw-binsearch", func(b *testing.B) {
				b.ReportAllocs()
				sum := 0
				for i := 0; i < b.N; i++ {
					j, _ := slices.BinarySearch(bases, offs[i&mask])
					sum += j
				}
				logBenchSink.Add(int64(sum))
			})
		})
	}
}

// BenchmarkLogReopen times OpenLog+Close of a cleanly closed log of ~0.5 GiB
// (one segment) and ~5 GiB (five 1 GiB segments and a small active one),
// default configuration, page cache warm. open-ms and close-ms split the
// op. raw-marker is the durable metadata work any clean open+close must do
// at least once: an atomic small-file write (create, write, fdatasync,
// rename, fsync dir) and a remove + fsync dir.
func BenchmarkLogReopen(b *testing.B) {
	tmpl, n := logBenchTemplate(b, logBenchT0)
	for _, size := range []struct {
		name  string
		bytes int64
	}{{"0.5GiB", 512 << 20}, {"5GiB", 5 << 30}} {
		b.Run("size="+size.name, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "log")
			logBenchBuild(b, dir, LogConfig{}, tmpl, n, size.bytes, false)
			b.Run("open+close", func(b *testing.B) {
				b.ReportAllocs()
				var open, closing time.Duration
				var segs int
				var bytes int64
				for i := 0; i < b.N; i++ {
					t := time.Now()
					l, err := OpenLog(dir, LogConfig{})
					if err != nil {
						b.Fatal(err)
					}
					t2 := time.Now()
					segs, bytes = l.Segments(), l.Size()
					if err := l.Close(); err != nil {
						b.Fatal(err)
					}
					open += t2.Sub(t)
					closing += time.Since(t2)
				}
				b.ReportMetric(float64(open.Microseconds())/1e3/float64(b.N), "open-ms")
				b.ReportMetric(float64(closing.Microseconds())/1e3/float64(b.N), "close-ms")
				b.ReportMetric(float64(segs), "segments")
				b.ReportMetric(float64(bytes)/(1<<30), "GiB")
			})
		})
	}
	b.Run("raw-marker", func(b *testing.B) {
		dir := b.TempDir()
		name := filepath.Join(dir, layout.CleanShutdownFile)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := vfs.WriteFileAtomic(vfs.Default, name, nil, 0o644); err != nil {
				b.Fatal(err)
			}
			if err := vfs.Default.Remove(name); err != nil {
				b.Fatal(err)
			}
			if err := vfs.Default.SyncDir(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLogOpenSegments opens a cleanly closed log of many small
// segments (one 10-record batch each) and reports the Go heap each open
// segment holds: the HeapAlloc growth across OpenLog, after a GC on both
// sides, divided by the number of segments. The op is OpenLog+Close.
func BenchmarkLogOpenSegments(b *testing.B) {
	logBenchPool()
	var bld batch.Builder
	bld.Reset(batch.CodecNone)
	for i := 0; i < 10; i++ {
		bld.Add(logBenchT0+int64(i), logBenchKeys[i], logBenchValues[i], nil)
	}
	small, err := bld.Build(nil)
	if err != nil {
		b.Fatal(err)
	}
	// Every append rolls: a segment holds one batch.
	cfg := LogConfig{SegmentBytes: int64(len(small)), IndexMaxBytes: 4096}
	for _, segments := range []int{200, 2000} {
		b.Run(fmt.Sprintf("segments=%d", segments), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "log")
			logBenchBuild(b, dir, cfg, small, 10, int64(segments*len(small)), false)
			b.Run("open+close", func(b *testing.B) {
				b.ReportAllocs()
				var heap uint64
				var ms runtime.MemStats
				got := 0
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					runtime.GC()
					runtime.GC()
					runtime.ReadMemStats(&ms)
					before := ms.HeapAlloc
					b.StartTimer()
					l, err := OpenLog(dir, cfg)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					runtime.GC()
					runtime.GC()
					runtime.ReadMemStats(&ms)
					heap += ms.HeapAlloc - before
					got = l.Segments()
					b.StartTimer()
					if err := l.Close(); err != nil {
						b.Fatal(err)
					}
				}
				if got != segments {
					b.Fatalf("%d segments, want %d", got, segments)
				}
				b.ReportMetric(float64(heap)/float64(b.N)/float64(segments), "heap-B/segment")
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(segments), "µs/segment")
			})
		})
	}
}
