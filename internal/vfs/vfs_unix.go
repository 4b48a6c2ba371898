//go:build unix && !linux

package vfs

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Portable fallback for unix systems other than Linux, using only the
// standard library's syscall package.

// datasync uses File.Sync (fsync; F_FULLFSYNC on Darwin).
func datasync(f *os.File) error { return f.Sync() }

// allocate is not implemented here: there is no portable KEEP_SIZE
// preallocation in package syscall.
func allocate(f *os.File, off, size int64) error {
	return &os.PathError{Op: "allocate", Path: f.Name(), Err: ErrAllocateUnsupported}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// lockFile takes a whole-file fcntl write lock (F_SETLK), available on
// every unix in package syscall, unlike flock. fcntl locks are per process;
// the in-process registry in lock.go provides exclusion within a process.
func lockFile(f *os.File) error {
	err := withFD(f, func(fd int) error {
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
		return syscall.FcntlFlock(uintptr(fd), syscall.F_SETLK, &lk)
	})
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
		return ErrLocked
	}
	return err
}

func unlockFile(f *os.File) error {
	return withFD(f, func(fd int) error {
		lk := syscall.Flock_t{Type: syscall.F_UNLCK, Whence: 0, Start: 0, Len: 0}
		return syscall.FcntlFlock(uintptr(fd), syscall.F_SETLK, &lk)
	})
}

func mmap(f *os.File, size int) ([]byte, error) {
	var data []byte
	err := withFD(f, func(fd int) error {
		var err error
		data, err = syscall.Mmap(fd, 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
		return err
	})
	return data, err
}

func munmap(b []byte) error { return syscall.Munmap(b) }

// madvise is a no-op: package syscall has no portable Madvise.
func madvise(b []byte, advice Advice) error {
	if advice < AdviceNormal || advice > AdviceDontNeed {
		return fmt.Errorf("unknown advice %d", int(advice))
	}
	return nil
}
