// Package zerocopy sends byte ranges of files to sockets without copying
// them through user space: sendfile(2) on Linux, with an explicit offset so
// that concurrent sends from one file never race on its shared file offset
// (which Go's own TCPConn.ReadFrom moves). Where that is impossible (other
// platforms, a TLS connection, a buffered writer) SendFile reports it and
// the caller copies instead; the log's mapped bytes make that copy cheap.
package zerocopy

import (
	"io"
	"syscall"
)

// SendFile writes n bytes of the file behind src, from offset off, to dst.
// handled is false when dst or the platform cannot take a zero-copy send;
// then nothing was written and the caller must copy. When handled, written
// is what reached the socket, and err is set if that is less than n (a
// file shorter than the range gives io.ErrUnexpectedEOF).
func SendFile(dst io.Writer, src syscall.RawConn, off, n int64) (written int64, handled bool, err error) {
	sc, ok := dst.(syscall.Conn)
	if !ok || n <= 0 {
		return 0, false, nil
	}
	out, err := sc.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	return sendfile(out, src, off, n)
}
