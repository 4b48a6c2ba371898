package commitlog

import (
	"fmt"
	"testing"

	"github.com/streamkit/commitlog/internal/batch"
)

// BenchmarkCompact measures compaction throughput in bytes of closed log
// read per second: 8 rounds of updates to 20 000 keys (100-byte values, in
// 16 KiB batches), so 7 of every 8 records go. The key map is bounded by
// CompactOptions.MemoryBytes (64 MiB by default; 20 000 keys take under
// 1 MiB of it). Each iteration compacts a fresh copy of the same log.
func BenchmarkCompact(b *testing.B) {
	const keys, rounds = 20_000, 8
	var batches [][]byte
	var bld batch.Builder
	value := make([]byte, 100)
	for r := 0; r < rounds; r++ {
		bld.Reset(batch.CodecNone)
		for k := 0; k < keys; k++ {
			bld.Add(1000, fmt.Appendf(nil, "key-%08d", k), value, nil)
			if bld.Size() >= 16<<10 {
				out, err := bld.Build(nil)
				if err != nil {
					b.Fatal(err)
				}
				batches = append(batches, out)
				bld.Reset(batch.CodecNone)
			}
		}
		if bld.Len() > 0 {
			out, err := bld.Build(nil)
			if err != nil {
				b.Fatal(err)
			}
			batches = append(batches, out)
		}
	}
	var total int64
	for _, bt := range batches {
		total += int64(len(bt))
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l, err := OpenLog(b.TempDir(), LogConfig{SegmentBytes: 64 << 20, SyncPolicy: SyncNone})
		if err != nil {
			b.Fatal(err)
		}
		for _, bt := range batches {
			if _, err := l.Append(append([]byte(nil), bt...)); err != nil {
				b.Fatal(err)
			}
		}
		if err := l.Roll(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := l.Compact(CompactOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st.RecordsRemoved != keys*(rounds-1) {
			b.Fatalf("removed %d records, want %d", st.RecordsRemoved, keys*(rounds-1))
		}
		l.Close()
		b.StartTimer()
	}
}
