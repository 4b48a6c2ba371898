package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// limits are the machine's raw limits, measured in the same run as the
// systems: what no log on this machine can beat.
type limits struct {
	MemcpyGBs       float64 // copy of a warm 64 MiB buffer
	PageCacheMBs    float64 // pwrite of 1 MiB blocks over a page-cached 256 MiB file
	AppendMBs       float64 // 1 MiB writes appended to a new file (page cache, no fsync)
	FdatasyncP50    time.Duration
	FdatasyncP99    time.Duration
	LoopbackTCPMBs  float64 // one connection over 127.0.0.1, 1 MiB writes and reads
	SyscallGetppid  time.Duration
	measuredWithErr error
}

func measureLimits(dir string) limits {
	var l limits
	l.MemcpyGBs = median3(func() float64 { return memcpyGBs(64<<20, 300*time.Millisecond) })
	var err error
	l.PageCacheMBs = median3(func() float64 {
		v, e := pageCacheMBs(dir, 256<<20, false)
		err = firstErr(err, e)
		return v
	})
	l.AppendMBs = median3(func() float64 {
		v, e := pageCacheMBs(dir, 256<<20, true)
		err = firstErr(err, e)
		return v
	})
	var e error
	l.FdatasyncP50, l.FdatasyncP99, e = fdatasyncLatency(dir, 200)
	err = firstErr(err, e)
	l.LoopbackTCPMBs = median3(func() float64 {
		v, e := loopbackMBs(512 << 20)
		err = firstErr(err, e)
		return v
	})
	t0 := time.Now()
	for range 100000 {
		unix.Getppid()
	}
	l.SyscallGetppid = time.Since(t0) / 100000
	l.measuredWithErr = err
	return l
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func median3(f func() float64) float64 {
	v := []float64{f(), f(), f()}
	slices.Sort(v)
	return v[1]
}

func memcpyGBs(size int, d time.Duration) float64 {
	src, dst := make([]byte, size), make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	copy(dst, src)
	var n int64
	t0 := time.Now()
	for time.Since(t0) < d {
		copy(dst, src)
		n += int64(size)
	}
	return float64(n) / time.Since(t0).Seconds() / 1e9
}

// pageCacheMBs writes size bytes in 1 MiB pwrites: over a file written once
// before (its pages in the page cache), or, with fresh, to a new file.
func pageCacheMBs(dir string, size int64, fresh bool) (float64, error) {
	f, err := os.CreateTemp(dir, "limit-*")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.Remove(f.Name()); _ = f.Close() }()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	write := func() error {
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := f.WriteAt(buf, off); err != nil {
				return err
			}
		}
		return nil
	}
	if !fresh {
		if err := write(); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	if err := write(); err != nil {
		return 0, err
	}
	return float64(size) / time.Since(t0).Seconds() / 1e6, nil
}

// fdatasyncLatency appends 4 KiB and fdatasyncs, n times.
func fdatasyncLatency(dir string, n int) (p50, p99 time.Duration, err error) {
	f, err := os.Create(filepath.Join(dir, "limit-fsync"))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = os.Remove(f.Name()); _ = f.Close() }()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	for i := range n {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*4096); err != nil {
			return 0, 0, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return 0, 0, err
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat[n/2], lat[n*99/100], nil
}

// loopbackMBs sends size bytes over one loopback TCP connection.
func loopbackMBs(size int64) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer func() { _ = c.Close() }()
		buf := make([]byte, 1<<20)
		var got int64
		for got < size {
			n, err := c.Read(buf)
			got += int64(n)
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	buf := make([]byte, 1<<20)
	t0 := time.Now()
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := <-done; err != nil && err != io.EOF {
		return 0, err
	}
	return float64(size) / time.Since(t0).Seconds() / 1e6, nil
}

func (l limits) markdown() string {
	s := "| Raw limit (same run) | Value |\n|---|---|\n"
	s += fmt.Sprintf("| memcpy, warm 64 MiB buffer | %.1f GB/s |\n", l.MemcpyGBs)
	s += fmt.Sprintf("| page-cache write: 1 MiB pwrites over a cached 256 MiB file | %.0f MB/s |\n", l.PageCacheMBs)
	s += fmt.Sprintf("| page-cache append: 1 MiB writes to a new file, no fsync | %.0f MB/s |\n", l.AppendMBs)
	s += fmt.Sprintf("| fdatasync after appending 4 KiB, p50 / p99 | %s / %s |\n", fmtDur(l.FdatasyncP50), fmtDur(l.FdatasyncP99))
	s += fmt.Sprintf("| loopback TCP, one connection, 1 MiB writes | %.0f MB/s |\n", l.LoopbackTCPMBs)
	s += fmt.Sprintf("| system call (getppid) | %s |\n", fmtDur(l.SyscallGetppid))
	if l.measuredWithErr != nil {
		s += fmt.Sprintf("\nerror while measuring limits: %v\n", l.measuredWithErr)
	}
	return s
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	case d >= time.Microsecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
	return fmt.Sprintf("%d ns", d.Nanoseconds())
}
