package vfs

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

func datasync(f *os.File) error { return f.Sync() }

func allocate(f *os.File, off, size int64) error {
	return &os.PathError{Op: "allocate", Path: f.Name(), Err: ErrAllocateUnsupported}
}

// syncDir is a no-op: Windows cannot flush a directory handle, and NTFS
// journals metadata operations itself.
func syncDir(dir string) error { return nil }

func mmapFile(f *os.File, size int) (Mapping, error) {
	return nil, &os.PathError{Op: "mmap", Path: f.Name(), Err: ErrMmapUnsupported}
}

func lockFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(h uintptr) {
		ol := new(windows.Overlapped)
		opErr = windows.LockFileEx(windows.Handle(h),
			windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY,
			0, 1, 0, ol)
	}); err != nil {
		return err
	}
	if errors.Is(opErr, windows.ERROR_LOCK_VIOLATION) {
		return ErrLocked
	}
	return opErr
}

func unlockFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(h uintptr) {
		opErr = windows.UnlockFileEx(windows.Handle(h), 0, 1, 0, new(windows.Overlapped))
	}); err != nil {
		return err
	}
	return opErr
}
