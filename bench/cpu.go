package main

import (
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
)

// cpuTime is the CPU time (user plus system) this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// warmMemory touches n bytes, one store per 4 KiB page, and gives them back
// to the kernel at once. This VM returns free memory to its host (free page
// reporting), and a page the host took back costs several times more the
// first time it is touched again; pages freed a moment ago sit at the head of
// the kernel's free lists, so the page cache and heap growth of the timed
// phase that follows get warm pages instead.
func warmMemory(n int64) {
	if n <= 0 {
		return
	}
	const chunk = 64 << 20
	bufs := make([][]byte, 0, n/chunk+1)
	for left := n; left > 0; left -= chunk {
		b := make([]byte, min(left, chunk))
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		bufs = append(bufs, b)
	}
	runtime.KeepAlive(bufs)
	bufs = nil
	runtime.GC()
	debug.FreeOSMemory()
}
