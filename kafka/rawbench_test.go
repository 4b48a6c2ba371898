//go:build unix

package kafka

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/zerocopy"
)

// BenchmarkFetchVsRaw compares a Fetch of 1 MiB of page-cached records
// with the raw limits of the same machine in the same run: a server that
// answers each 4-byte request with 1 MiB of a page-cached file, by
// sendfile(2) or by pread(2) into a buffer and write(2), over loopback.
// Client and server share the process; cpu-s/GB is the process's CPU
// (user and system) per GB delivered, for both.
//
//	go test -run '^$' -bench 'BenchmarkFetchVsRaw' -count 5 ./kafka/
func BenchmarkFetchVsRaw(b *testing.B) {
	const size = 1 << 20
	path := filepath.Join(b.TempDir(), "data")
	data := make([]byte, 8*size)
	for i := range data {
		data[i] = byte(i)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"sendfile", "readwrite"} {
		b.Run("raw/"+mode, func(b *testing.B) {
			addr := rawFileServer(b, path, size, mode == "sendfile")
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			buf := make([]byte, size)
			ask := []byte{0, 0, 0, 1}
			run := func() {
				if _, err := nc.Write(ask); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(nc, buf); err != nil {
					b.Fatal(err)
				}
			}
			for range 16 { // warm the page cache, the buffers and the socket
				run()
			}
			b.SetBytes(size)
			cpu := cpuTime()
			for b.Loop() {
				run()
			}
			reportCPUPerGB(b, cpu, size)
		})
	}
	b.Run("fetch/1x1MiB", func(b *testing.B) {
		e := newEnv(b, envOptions{server: Config{Logger: slog.New(slog.DiscardHandler)}})
		e.createTopic("bench", commitlog.TopicConfig{})
		fillBench(b, e, "bench", 1, 16, 4<<20)
		c := e.dial()
		req := kmsg.NewPtrFetchRequest()
		req.Version = 12
		req.MaxBytes = size
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "bench"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = size
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		frameBytes := frame(req, 1)
		var buf []byte
		for range 16 {
			c.write(frameBytes)
			var err error
			if buf, err = c.readFrameInto(buf); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(buf)))
		cpu := cpuTime()
		for b.Loop() {
			c.write(frameBytes)
			var err error
			if buf, err = c.readFrameInto(buf); err != nil {
				b.Fatal(err)
			}
		}
		reportCPUPerGB(b, cpu, int64(len(buf)))
	})
}

// rawFileServer answers every 4 bytes it reads with n bytes of the file at
// path, from offset 0, by sendfile or by pread and write.
func rawFileServer(b *testing.B, path string, n int, sendfile bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	b.Cleanup(func() {
		ln.Close()
		<-done
		f.Close()
	})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		src, _ := f.SyscallConn()
		buf := make([]byte, n)
		var ask [4]byte
		for {
			if _, err := io.ReadFull(c, ask[:]); err != nil {
				return
			}
			if sendfile {
				if _, handled, err := zerocopy.SendFile(c, src, 0, int64(n)); !handled || err != nil {
					return
				}
				continue
			}
			if _, err := f.ReadAt(buf, 0); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPUPerGB(b *testing.B, since time.Duration, bytesPerOp int64) {
	used := (cpuTime() - since).Seconds()
	gb := float64(bytesPerOp) * float64(b.N) / 1e9
	if gb > 0 {
		b.ReportMetric(used/gb, "cpu-s/GB")
	}
}
