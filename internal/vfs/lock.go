package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// heldLocks records the absolute paths locked through this package by this
// process. The OS lock alone is not enough for in-process exclusion on every
// platform (fcntl locks are per process), so Lock checks here first.
var heldLocks = struct {
	mu    sync.Mutex
	paths map[string]struct{}
}{paths: make(map[string]struct{})}

func lock(name string) (io.Closer, error) {
	key, err := filepath.Abs(name)
	if err != nil {
		return nil, &os.PathError{Op: "lock", Path: name, Err: err}
	}
	heldLocks.mu.Lock()
	if _, held := heldLocks.paths[key]; held {
		heldLocks.mu.Unlock()
		return nil, &os.PathError{Op: "lock", Path: name, Err: ErrLocked}
	}
	heldLocks.paths[key] = struct{}{}
	heldLocks.mu.Unlock()

	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		releaseKey(key)
		return nil, err
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		releaseKey(key)
		return nil, &os.PathError{Op: "lock", Path: name, Err: err}
	}
	return &fileLock{f: f, key: key}, nil
}

func releaseKey(key string) {
	heldLocks.mu.Lock()
	delete(heldLocks.paths, key)
	heldLocks.mu.Unlock()
}

// fileLock is the io.Closer returned by Lock.
type fileLock struct {
	mu  sync.Mutex
	f   *os.File // nil once closed
	key string
}

// Close releases the lock. It is idempotent.
func (l *fileLock) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	var uerr error
	if err := unlockFile(f); err != nil {
		uerr = &os.PathError{Op: "unlock", Path: f.Name(), Err: err}
	}
	// Closing the descriptor releases the OS lock even if unlock failed.
	cerr := f.Close()
	releaseKey(l.key)
	return errors.Join(uerr, cerr)
}
