//go:build unix

package vfs

import (
	"os"
	"sync"
	"sync/atomic"
)

// mapping implements Mapping over memory returned by the platform's mmap.
type mapping struct {
	name string
	cur  atomic.Pointer[[]byte] // nil once closed; read by Bytes without locking

	mu     sync.Mutex // serialises Close and Advise
	data   []byte     // the slice mmap returned, as munmap needs it
	closed bool
}

func mmapFile(f *os.File, size int) (Mapping, error) {
	data, err := mmap(f, size)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: f.Name(), Err: err}
	}
	m := &mapping{name: f.Name(), data: data}
	m.cur.Store(&data)
	return m, nil
}

func (m *mapping) Bytes() []byte {
	if p := m.cur.Load(); p != nil {
		return *p
	}
	return nil
}

func (m *mapping) Advise(advice Advice) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return &os.PathError{Op: "madvise", Path: m.name, Err: os.ErrClosed}
	}
	if err := madvise(m.data, advice); err != nil {
		return &os.PathError{Op: "madvise " + advice.String(), Path: m.name, Err: err}
	}
	return nil
}

func (m *mapping) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.cur.Store(nil)
	data := m.data
	m.data = nil
	if err := munmap(data); err != nil {
		return &os.PathError{Op: "munmap", Path: m.name, Err: err}
	}
	return nil
}
