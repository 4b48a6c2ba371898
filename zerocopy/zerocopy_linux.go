package zerocopy

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxChunk bounds one sendfile call (Linux caps a call near 2 GiB).
const maxChunk = 1 << 30

func sendfile(out, in syscall.RawConn, off, n int64) (written int64, handled bool, err error) {
	var sendErr error
	ctlErr := in.Control(func(infd uintptr) {
		wErr := out.Write(func(outfd uintptr) bool {
			for written < n {
				k, err := unix.Sendfile(int(outfd), int(infd), &off, int(min(n-written, maxChunk)))
				if k > 0 {
					written += int64(k)
				}
				switch {
				case err == unix.EAGAIN:
					return false // the socket is full: wait until writable
				case err == unix.EINTR:
					continue
				case err != nil:
					sendErr = err
					return true
				case k == 0:
					sendErr = io.ErrUnexpectedEOF
					return true
				}
			}
			return true
		})
		if sendErr == nil {
			sendErr = wErr
		}
	})
	if ctlErr != nil {
		return written, written > 0, ctlErr
	}
	if written == 0 && (sendErr == unix.EINVAL || sendErr == unix.ENOSYS || sendErr == unix.EOPNOTSUPP) {
		// This pair of descriptors cannot sendfile: let the caller copy.
		return 0, false, nil
	}
	return written, true, sendErr
}
