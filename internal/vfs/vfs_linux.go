package vfs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// retryEINTR repeats a system call interrupted by a signal.
func retryEINTR(call func() error) error {
	for {
		err := call()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func datasync(f *os.File) error {
	err := withFD(f, func(fd int) error {
		return retryEINTR(func() error { return unix.Fdatasync(fd) })
	})
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}

func allocate(f *os.File, off, size int64) error {
	err := withFD(f, func(fd int) error {
		return retryEINTR(func() error {
			return unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, off, size)
		})
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
		err = fmt.Errorf("%w: %w", ErrAllocateUnsupported, err)
	}
	return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = withFD(d, func(fd int) error {
		return retryEINTR(func() error { return unix.Fsync(fd) })
	})
	if err != nil {
		err = &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return errors.Join(err, d.Close())
}

func lockFile(f *os.File) error {
	err := withFD(f, func(fd int) error {
		return retryEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
	})
	if errors.Is(err, unix.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}

func unlockFile(f *os.File) error {
	return withFD(f, func(fd int) error {
		return retryEINTR(func() error { return unix.Flock(fd, unix.LOCK_UN) })
	})
}

func mmap(f *os.File, size int) ([]byte, error) {
	var data []byte
	err := withFD(f, func(fd int) error {
		var err error
		data, err = unix.Mmap(fd, 0, size, unix.PROT_READ, unix.MAP_SHARED)
		return err
	})
	return data, err
}

func munmap(b []byte) error { return unix.Munmap(b) }

func madvise(b []byte, advice Advice) error {
	var a int
	switch advice {
	case AdviceNormal:
		a = unix.MADV_NORMAL
	case AdviceSequential:
		a = unix.MADV_SEQUENTIAL
	case AdviceRandom:
		a = unix.MADV_RANDOM
	case AdviceWillNeed:
		a = unix.MADV_WILLNEED
	case AdviceDontNeed:
		a = unix.MADV_DONTNEED
	default:
		return fmt.Errorf("unknown advice %d", int(advice))
	}
	return unix.Madvise(b, a)
}
