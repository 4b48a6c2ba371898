package batch

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchRecords returns n 16-byte keys and 100-byte values of moderately
// compressible text, about what a ~16 KiB producer batch holds.
func benchRecords(n int) (keys, values [][]byte) {
	rng := rand.New(rand.NewPCG(7, 7))
	words := []string{"order", "user", "id", "amount", "currency", "EUR", "status", "shipped", "pending", "sku", "qty", "ts"}
	for i := range n {
		keys = append(keys, fmt.Appendf(nil, "key-%012d", i))
		v := make([]byte, 0, 100)
		for len(v) < 100 {
			v = append(v, words[rng.IntN(len(words))]...)
			v = append(v, ' ')
			v = fmt.Appendf(v, "%d ", rng.IntN(100000))
		}
		values = append(values, v[:100])
	}
	return keys, values
}

// benchBatchRecords is how many 16+100-byte records make a ~16 KiB batch.
const benchBatchRecords = 134

func BenchmarkBuild(b *testing.B) {
	keys, values := benchRecords(benchBatchRecords)
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			var bld Builder
			var dst []byte
			bld.Reset(c)
			for i := range keys {
				bld.Add(int64(i), keys[i], values[i], nil)
			}
			b.SetBytes(int64(bld.Size()))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				bld.Reset(c)
				for i := range keys {
					bld.Add(1_700_000_000_000+int64(i), keys[i], values[i], nil)
				}
				var err error
				if dst, err = bld.Build(dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*benchBatchRecords/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(len(dst)), "batch-bytes")
		})
	}
}

func BenchmarkIter(b *testing.B) {
	keys, values := benchRecords(benchBatchRecords)
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			var bld Builder
			bld.Reset(c)
			for i := range keys {
				bld.Add(1_700_000_000_000+int64(i), keys[i], values[i], nil)
			}
			batch, err := bld.Build(nil)
			if err != nil {
				b.Fatal(err)
			}
			var it Iter
			b.SetBytes(int64(bld.Size()))
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				if err := it.Reset(batch, 1<<20); err != nil {
					b.Fatal(err)
				}
				for r, ok := it.Next(); ok; r, ok = it.Next() {
					n += len(r.Value)
				}
				if it.Err() != nil {
					b.Fatal(it.Err())
				}
			}
			b.ReportMetric(float64(b.N)*benchBatchRecords/b.Elapsed().Seconds(), "records/s")
			_ = n
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	keys, values := benchRecords(benchBatchRecords)
	var bld Builder
	bld.Reset(CodecNone)
	for i := range keys {
		bld.Add(int64(i), keys[i], values[i], nil)
	}
	batch, err := bld.Build(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Check(batch, len(batch)); err != nil {
			b.Fatal(err)
		}
	}
}
