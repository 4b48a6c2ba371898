package commitlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
)

// Producer benchmarks: 16-byte keys and 100-byte values of moderately
// compressible text, one partition, on a broker that leaves syncing to the
// operating system (SyncNone) unless a name says otherwise. The broker's
// directory is in memory (/dev/shm, where there is one) unless the name
// says disk=temp: at millions of records a second the producer outruns
// most disks' writeback, and these benchmarks measure the producer; the
// Log benchmarks measure the disk.

const (
	prodBenchKeyBytes   = 16
	prodBenchValueBytes = 100
	prodBenchDistinct   = 1024 // distinct keys and values cycled through
)

// prodBenchRecords returns the records the benchmarks send, in turn.
func prodBenchRecords() []Record {
	rng := rand.New(rand.NewPCG(11, 11))
	words := []string{"order", "user", "id", "amount", "currency", "EUR", "status", "shipped", "pending", "sku", "qty", "ts"}
	recs := make([]Record, prodBenchDistinct)
	for i := range recs {
		v := make([]byte, 0, prodBenchValueBytes+16)
		for len(v) < prodBenchValueBytes {
			v = append(v, words[rng.IntN(len(words))]...)
			v = fmt.Appendf(v, " %d ", rng.IntN(100000))
		}
		recs[i] = Record{Topic: "bench", Key: fmt.Appendf(nil, "key-%012d", i), Value: v[:prodBenchValueBytes]}
	}
	return recs
}

// prodBenchDir returns a directory for a benchmark's broker, in memory
// when the system has /dev/shm and onDisk is false.
func prodBenchDir(b *testing.B, onDisk bool) string {
	b.Helper()
	if !onDisk {
		if dir, err := os.MkdirTemp("/dev/shm", "commitlog-bench-"); err == nil {
			b.Cleanup(func() {
				if err := os.RemoveAll(dir); err != nil {
					b.Error(err)
				}
			})
			return dir
		}
	}
	return b.TempDir()
}

// prodBenchSetup opens a broker with a one-partition topic "bench" and a
// producer on it, all closed when the benchmark ends.
func prodBenchSetup(b *testing.B, onDisk bool, opts Options, cfg ProducerConfig) *Producer {
	b.Helper()
	br, err := Open(prodBenchDir(b, onDisk), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := br.Close(); err != nil {
			b.Error(err)
		}
	})
	// Default topic settings: 1 GiB segments, so a run of a second or two
	// rolls once at most and retention never runs (segment deletion holds
	// the log's lock and would stall the producer; the retention
	// benchmarks measure it).
	if _, err := br.CreateTopic(context.Background(), "bench", TopicConfig{}); err != nil {
		b.Fatal(err)
	}
	p, err := br.NewProducer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := p.Close(); err != nil {
			b.Error(err)
		}
	})
	return p
}

// prodBenchCase is one configuration of the SendAsync benchmarks.
type prodBenchCase struct {
	onDisk   bool // the broker's directory on disk, not in memory
	opts     Options
	cfg      ProducerConfig
	callback bool // SendAsync with a callback, not nil
	stamped  bool // records carry their Timestamp: no clock read per record
}

// BenchmarkProducerSendAsync measures throughput: SendAsync from one
// goroutine, then a Flush inside the timed region, so records/s counts
// records appended, not merely buffered.
func BenchmarkProducerSendAsync(b *testing.B) {
	none := Options{SyncPolicy: SyncNone}
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		b.Run("codec="+c.String(), func(b *testing.B) {
			prodBenchSendAsync(b, prodBenchCase{opts: none, cfg: ProducerConfig{Compression: c}})
		})
	}
	b.Run("codec=none/timestamp=set", func(b *testing.B) {
		prodBenchSendAsync(b, prodBenchCase{opts: none, stamped: true})
	})
	b.Run("codec=none/callback", func(b *testing.B) {
		prodBenchSendAsync(b, prodBenchCase{opts: none, callback: true})
	})
	b.Run("codec=none/sync=group-commit", func(b *testing.B) {
		prodBenchSendAsync(b, prodBenchCase{})
	})
	b.Run("codec=none/disk=temp", func(b *testing.B) {
		prodBenchSendAsync(b, prodBenchCase{onDisk: true, opts: none})
	})
}

// BenchmarkProducerBatchBytes is the measurement behind
// DefaultProducerBatchBytes.
func BenchmarkProducerBatchBytes(b *testing.B) {
	for _, size := range []int{16 << 10, 64 << 10, 256 << 10, 1 << 20} {
		for _, opts := range []Options{{SyncPolicy: SyncNone}, {}} {
			b.Run(fmt.Sprintf("batch=%dKiB/sync=%v", size>>10, opts.SyncPolicy), func(b *testing.B) {
				prodBenchSendAsync(b, prodBenchCase{opts: opts, cfg: ProducerConfig{BatchBytes: size}})
			})
		}
	}
}

func prodBenchSendAsync(b *testing.B, c prodBenchCase) {
	p := prodBenchSetup(b, c.onDisk, c.opts, c.cfg)
	recs := prodBenchRecords()
	if c.stamped {
		for i := range recs {
			recs[i].Timestamp = time.UnixMilli(1_700_000_000_000 + int64(i))
		}
	}
	var cb func(Record, error)
	if c.callback {
		cb = func(Record, error) {}
	}
	ctx := context.Background()
	b.SetBytes(prodBenchKeyBytes + prodBenchValueBytes)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.SendAsync(recs[i%prodBenchDistinct], cb)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	prodBenchReportBatches(b, p)
}

// prodBenchReportBatches reports the mean number of records per batch the
// producer wrote.
func prodBenchReportBatches(b *testing.B, p *Producer) {
	topic, err := p.b.Topic("bench")
	if err != nil {
		b.Fatal(err)
	}
	part, _ := topic.Partition(0)
	batches, records := 0, int64(0)
	for off := part.StartOffset(); off < part.EndOffset(); {
		s, err := part.Read(off, 64<<20)
		if err != nil {
			b.Fatal(err)
		}
		for data := s.Bytes; len(data) > 0; {
			h, err := batch.ReadHeader(data)
			if err != nil {
				b.Fatal(err)
			}
			batches++
			records += int64(h.NumRecords)
			data = data[h.Size():]
		}
		off = s.NextOffset
		s.Release()
	}
	if batches > 0 {
		b.ReportMetric(float64(records)/float64(batches), "records/batch")
	}
}

// BenchmarkProducerSendAsyncParallel sends from GOMAXPROCS goroutines.
func BenchmarkProducerSendAsyncParallel(b *testing.B) {
	p := prodBenchSetup(b, false, Options{SyncPolicy: SyncNone}, ProducerConfig{})
	recs := prodBenchRecords()
	b.SetBytes(prodBenchKeyBytes + prodBenchValueBytes)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(prodBenchDistinct)
		for pb.Next() {
			p.SendAsync(recs[i%prodBenchDistinct], nil)
			i++
		}
	})
	if err := p.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkProducerSend measures latency: synchronous Sends one at a time,
// each timed, reporting the median and the 99th percentile.
func BenchmarkProducerSend(b *testing.B) {
	b.Run("sync=none", func(b *testing.B) { prodBenchSend(b, false, Options{SyncPolicy: SyncNone}) })
	b.Run("sync=group-commit/disk=temp", func(b *testing.B) { prodBenchSend(b, true, Options{}) })
}

func prodBenchSend(b *testing.B, onDisk bool, opts Options) {
	p := prodBenchSetup(b, onDisk, opts, ProducerConfig{})
	recs := prodBenchRecords()
	ctx := context.Background()
	lat := make([]time.Duration, 0, 1<<20)
	b.SetBytes(prodBenchKeyBytes + prodBenchValueBytes)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := p.Send(ctx, recs[i%prodBenchDistinct]); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(start))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
