// Package vfs is the file-system seam of the storage engine: every file
// operation the engine performs goes through an FS, so that tests can swap in
// a wrapper (see package errorfs) that fails chosen operations.
//
// Default is the operating system. Platform-specific pieces (fdatasync,
// fallocate, flock, mmap, madvise) live in build-tagged files; on platforms
// that lack a facility the operation degrades as documented on the method
// (for example Allocate returns ErrAllocateUnsupported and Map returns
// ErrMmapUnsupported on Windows).
//
// Errors: every error returned by this package names the operation and the
// file. Errors from package os already do so (*os.PathError, *os.LinkError)
// and are returned unchanged; errors from raw system calls and this
// package's sentinels are wrapped in an *os.PathError, so errors.Is works
// against both the sentinels below and the underlying syscall.Errno.
// The single exception is io.EOF from File.ReadAt, which is returned bare as
// the io.ReaderAt contract expects.
//
// Nothing in this package panics on I/O failure.
package vfs

import (
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
)

// FS is the set of file-system operations the storage engine uses.
// Implementations must be safe for concurrent use.
type FS interface {
	// OpenFile opens or creates a file (flags as os.OpenFile).
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	MkdirAll(dir string, perm os.FileMode) error
	// ReadDir returns the entries of dir sorted by file name.
	ReadDir(dir string) ([]os.DirEntry, error)
	Stat(name string) (os.FileInfo, error)
	// SyncDir fsyncs a directory so that creates, renames and removes in it
	// are durable. It is a no-op on platforms that cannot sync directories
	// (Windows, Plan 9, wasm).
	SyncDir(dir string) error
	// Lock takes an exclusive advisory lock (flock LOCK_EX|LOCK_NB on Linux)
	// on the named file, creating it; a second Lock on the same path, from
	// this or another process, fails with ErrLocked until the returned
	// closer is closed. The lock file is not removed on Close.
	Lock(name string) (io.Closer, error)
}

// File is an open file. Implementations must be safe for concurrent use of
// ReadAt, WriteAt and Map, as *os.File is.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	Name() string
	// Sync makes the file's data durable (fdatasync on Linux, File.Sync
	// elsewhere).
	Sync() error
	Truncate(size int64) error
	// Allocate reserves disk blocks for [off, off+size) without changing the
	// reported file size where the platform allows (fallocate with
	// FALLOC_FL_KEEP_SIZE on Linux) so that later writes cannot fail for
	// lack of space; when the file system or platform does not support it
	// the error wraps ErrAllocateUnsupported, so callers may fall back.
	Allocate(off, size int64) error
	Stat() (os.FileInfo, error)
	// Map maps [0, size) of the file read-only (MAP_SHARED) and returns the
	// mapping. size must be positive and may exceed the file's current size
	// (address space reserved for a growing file; bytes past EOF must not be
	// touched by the caller). Writes made with WriteAt are visible through
	// the mapping (same page cache). The file must have been opened for
	// reading. The mapping stays valid after the File is closed, until the
	// mapping itself is closed. On platforms without mmap the error wraps
	// ErrMmapUnsupported.
	Map(size int) (Mapping, error)
	// SyscallConn gives access to the file descriptor, for sendfile(2)
	// with an explicit offset; as *os.File's, it keeps the descriptor open
	// while in use.
	SyscallConn() (syscall.RawConn, error)
}

// Mapping is a read-only memory mapping of a file.
type Mapping interface {
	// Bytes returns the mapped memory, or nil once the mapping is closed.
	// The slice must not be written to, nor used after Close.
	Bytes() []byte
	// Advise hints the kernel (madvise) about the expected access pattern
	// of the whole mapping. It is best effort: a no-op where unsupported.
	Advise(advice Advice) error
	// Close unmaps the memory (munmap). It is idempotent.
	Close() error
}

// Advice is an access-pattern hint for Mapping.Advise.
type Advice int

const (
	// AdviceNormal resets the hint to the kernel default.
	AdviceNormal Advice = iota
	// AdviceSequential expects sequential reads: aggressive read-ahead,
	// pages may be freed soon after they are read.
	AdviceSequential
	// AdviceRandom expects random reads: read-ahead is disabled.
	AdviceRandom
	// AdviceWillNeed asks the kernel to start reading the pages in now.
	AdviceWillNeed
	// AdviceDontNeed tells the kernel the pages will not be needed soon.
	AdviceDontNeed
)

// String returns the madvise name of a.
func (a Advice) String() string {
	switch a {
	case AdviceNormal:
		return "normal"
	case AdviceSequential:
		return "sequential"
	case AdviceRandom:
		return "random"
	case AdviceWillNeed:
		return "willneed"
	case AdviceDontNeed:
		return "dontneed"
	default:
		return "advice(" + strconv.Itoa(int(a)) + ")"
	}
}

// Sentinel errors. Returned errors wrap them; test with errors.Is.
var (
	// ErrLocked is returned by Lock when the file is already locked.
	ErrLocked = errors.New("vfs: locked by another process")
	// ErrAllocateUnsupported is returned by File.Allocate when the file
	// system or platform cannot preallocate.
	ErrAllocateUnsupported = errors.New("vfs: allocate not supported")
	// ErrMmapUnsupported is returned by File.Map on platforms without mmap.
	ErrMmapUnsupported = errors.New("vfs: mmap not supported on this platform")
)

// Default is the operating system's file system.
var Default FS = osFS{}

// osFS implements FS on top of package os and the platform files.
type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) Rename(oldname, newname string) error        { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) ReadDir(dir string) ([]os.DirEntry, error)   { return os.ReadDir(dir) }
func (osFS) Stat(name string) (os.FileInfo, error)       { return os.Stat(name) }
func (osFS) SyncDir(dir string) error                    { return syncDir(dir) }
func (osFS) Lock(name string) (io.Closer, error)         { return lock(name) }

// osFile implements File on top of *os.File and the platform files.
type osFile struct {
	f *os.File
}

func (f *osFile) ReadAt(p []byte, off int64) (int, error)  { return f.f.ReadAt(p, off) }
func (f *osFile) WriteAt(p []byte, off int64) (int, error) { return f.f.WriteAt(p, off) }
func (f *osFile) Close() error                             { return f.f.Close() }
func (f *osFile) Name() string                             { return f.f.Name() }
func (f *osFile) SyscallConn() (syscall.RawConn, error)    { return f.f.SyscallConn() }
func (f *osFile) Sync() error                              { return datasync(f.f) }
func (f *osFile) Truncate(size int64) error                { return f.f.Truncate(size) }
func (f *osFile) Stat() (os.FileInfo, error)               { return f.f.Stat() }

func (f *osFile) Allocate(off, size int64) error {
	if off < 0 || size < 0 {
		return &os.PathError{Op: "allocate", Path: f.f.Name(), Err: errors.New("negative offset or size")}
	}
	if size == 0 {
		return nil
	}
	return allocate(f.f, off, size)
}

func (f *osFile) Map(size int) (Mapping, error) {
	if size <= 0 {
		return nil, &os.PathError{Op: "mmap", Path: f.f.Name(), Err: errors.New("size must be positive, got " + strconv.Itoa(size))}
	}
	return mmapFile(f.f, size)
}
