//go:build unix

package vfs

import "os"

// withFD runs fn with f's descriptor, holding a reference so a concurrent
// Close cannot recycle it underneath.
func withFD(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = fn(int(fd)) }); err != nil {
		return err
	}
	return opErr
}
