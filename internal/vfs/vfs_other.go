//go:build !unix && !windows

package vfs

import "os"

// Fallback for platforms with neither unix nor Windows facilities
// (Plan 9, js/wasm, wasip1).

func datasync(f *os.File) error { return f.Sync() }

func allocate(f *os.File, off, size int64) error {
	return &os.PathError{Op: "allocate", Path: f.Name(), Err: ErrAllocateUnsupported}
}

func syncDir(dir string) error { return nil }

func mmapFile(f *os.File, size int) (Mapping, error) {
	return nil, &os.PathError{Op: "mmap", Path: f.Name(), Err: ErrMmapUnsupported}
}

// lockFile has no OS lock to take: exclusion is within this process only,
// through the registry in lock.go.
func lockFile(f *os.File) error { return nil }

func unlockFile(f *os.File) error { return nil }
