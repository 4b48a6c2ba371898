package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Framing (all integers big-endian):
//
//	request:  int32 size | int16 api key | int16 api version | int32 correlation id
//	          | int16 client id length (-1 = null) | client id
//	          | [header v2 only: tagged fields] | body
//	response: int32 size | int32 correlation id
//	          | [header v1 only: tagged fields] | body
//
// size counts the bytes after it. A request uses header v2 and its response
// header v1 when the request's version is flexible (KIP-482); ApiVersions
// responses always use header v0 so that a client can read them before it
// knows which versions are flexible.

const (
	// requestHeaderMin is the size of the fixed part of a request header.
	requestHeaderMin = 2 + 2 + 4 + 2
	// keepBufferBytes is the largest read or write buffer a connection
	// keeps between requests; larger ones are dropped after use.
	keepBufferBytes = 1 << 20
	// readChunkBytes is the first allocation for a request larger than
	// the connection's buffer; it doubles as the bytes arrive.
	readChunkBytes = 64 << 10
	// apiVersionsKey is the key of ApiVersions, whose framing is special.
	apiVersionsKey = 18
	// produceKey is the key of Produce, whose answers may be pipelined.
	produceKey = 0
)

// conn is one client connection. Its goroutine reads a request, answers it
// and only then reads the next one.
type conn struct {
	s   *Server
	nc  net.Conn
	adv advertisedAddr
	br  *bufio.Reader

	rbuf  []byte        // request bytes, reused
	wbuf  []byte        // response bytes, reused
	fetch fetchFrame    // Fetch response frames, reused
	bw    *bufio.Writer // for Fetch responses to a conn that is not a socket

	// loopback is set when the peer is on this machine. Fetch then sends
	// record bytes with writev from the log's mapping instead of sendfile:
	// over loopback the receiver copies them anyway, and sendfile measured
	// about 3 times slower than a copy for 1 MiB there (BENCHMARKS.md).
	loopback bool

	// idle is set while the connection waits for a request, from its
	// creation on: Shutdown closes idle connections at once, and those
	// processing a request once they have answered it. Guarded by s.mu.
	idle bool
}

func newConn(s *Server, nc net.Conn, adv advertisedAddr) *conn {
	c := &conn{s: s, nc: nc, adv: adv, br: bufio.NewReaderSize(nc, 16<<10), idle: true}
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok && a.IP.IsLoopback() && !s.cfg.ZeroCopyLoopback {
		c.loopback = true
	}
	return c
}

// request is one request being handled.
type request struct {
	c        *conn
	key      int16
	version  int16
	corrID   int32
	clientID *string
	body     kmsg.Request
	// release holds what to let go once the response is written (slices of
	// the log that the response's bytes alias).
	release []func()
	// pendingResp is the answer a pipelined request waits to write.
	pendingResp kmsg.Response
	// wait, when set, completes the response before it is written: a
	// Produce's wait for durability or replication. Its records are
	// already appended, so the connection may read and append the next
	// Produce meanwhile (see serve).
	wait func()
}

// maxPipelined bounds the Produce requests of one connection whose records
// are appended and whose answers wait (for an fsync or the followers).
// Clients keep up to 5 in flight (max.in.flight.requests.per.connection).
const maxPipelined = 8

// errCloseConn makes the connection close without an answer, with the
// reason logged.
type errCloseConn struct{ reason string }

func (e *errCloseConn) Error() string { return e.reason }

func closeConn(format string, args ...any) error {
	return &errCloseConn{reason: fmt.Sprintf(format, args...)}
}

func (c *conn) serve() {
	defer c.s.untrack(c)
	defer c.nc.Close()
	defer func() {
		// A bug in a handler must not take the host application down with
		// it: the connection closes and the panic is logged.
		if v := recover(); v != nil {
			c.s.log.Error("kafka: panic serving connection", "remote", c.nc.RemoteAddr().String(), "panic", v, "stack", string(debug.Stack()))
		}
	}()
	// Requests are handled one at a time and answered in order. A Produce
	// whose answer waits (acks=1 under group commit, acks=all) is
	// pipelined: while its wait runs, the next request already in the
	// read buffer is read, and if it is a Produce too, its records are
	// appended, so that one fsync or one replication round serves several
	// requests, as Kafka's clients expect when they keep up to five in
	// flight. Any other request first waits for the answers before it.
	var pending []*request // handled, answers not written yet
	defer func() {
		for _, r := range pending {
			c.releaseRequest(r)
		}
	}()
	for {
		if len(pending) > 0 && (c.br.Buffered() == 0 || len(pending) >= maxPipelined) {
			if err := c.flushPending(&pending); err != nil {
				c.logClose(err)
				return
			}
		}
		if len(pending) == 0 && !c.waitForRequest() {
			return
		}
		r, err := c.readRequest()
		if err != nil {
			if !c.s.isClosing() { // else Shutdown interrupted the read
				c.logClose(err)
			}
			return
		}
		if r.key != produceKey && len(pending) > 0 {
			if err := c.flushPending(&pending); err != nil {
				c.releaseRequest(r)
				c.logClose(err)
				return
			}
		}
		resp, err := c.process(r)
		if err == nil && resp != nil && r.wait != nil {
			pending = append(pending, r)
			r.pendingResp = resp
			continue
		}
		if err == nil && resp != nil {
			err = c.write(r, resp)
		}
		c.releaseRequest(r)
		if err != nil {
			c.logClose(err)
			return
		}
	}
}

// flushPending completes and writes the pending answers, in order.
func (c *conn) flushPending(pending *[]*request) error {
	for len(*pending) > 0 {
		r := (*pending)[0]
		*pending = (*pending)[1:]
		r.wait()
		err := c.write(r, r.pendingResp)
		c.releaseRequest(r)
		if err != nil {
			return err
		}
	}
	*pending = nil
	return nil
}

// releaseRequest lets go of what the request's answer held.
func (c *conn) releaseRequest(r *request) {
	for _, f := range r.release {
		f()
	}
	r.release = nil
}

func (c *conn) logClose(err error) {
	var ce *errCloseConn
	switch {
	case errors.As(err, &ce):
		c.s.log.Warn("kafka: closing connection", "remote", c.nc.RemoteAddr().String(), "reason", ce.reason)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		c.s.log.Debug("kafka: connection ended", "remote", c.nc.RemoteAddr().String(), "err", err)
	}
}

// waitForRequest marks the connection idle and arms the idle timeout. It
// returns false when the server is closing.
func (c *conn) waitForRequest() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.closing {
		return false
	}
	c.idle = true
	var deadline time.Time
	if c.s.cfg.IdleTimeout > 0 {
		deadline = time.Now().Add(c.s.cfg.IdleTimeout)
	}
	c.nc.SetReadDeadline(deadline)
	return true
}

func (c *conn) setActive() {
	c.s.mu.Lock()
	c.idle = false
	c.s.mu.Unlock()
}

// readRequest reads one request frame and decodes its header and body.
func (c *conn) readRequest() (*request, error) {
	var sizeBuf [4]byte
	if _, err := io.ReadFull(c.br, sizeBuf[:]); err != nil {
		return nil, err
	}
	c.setActive()
	size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
	if size < requestHeaderMin || int64(size) > int64(c.s.cfg.MaxRequestBytes) {
		return nil, closeConn("request size %d outside [%d, %d] (socket.request.max.bytes)", size, requestHeaderMin, c.s.cfg.MaxRequestBytes)
	}
	buf, err := c.readFull(int(size))
	if err != nil {
		return nil, err
	}
	return c.decode(buf)
}

// readFull reads n bytes into the connection's buffer. n was checked
// against MaxRequestBytes; a buffer larger than the one kept still grows
// only as bytes arrive, so that a client claiming a large size and sending
// little costs little.
func (c *conn) readFull(n int) ([]byte, error) {
	var buf []byte
	if n <= cap(c.rbuf) {
		buf = c.rbuf[:n]
		if _, err := io.ReadFull(c.br, buf); err != nil {
			return nil, noUnexpectedEOF(err)
		}
		return buf, nil
	}
	buf = make([]byte, 0, min(n, max(readChunkBytes, cap(c.rbuf))))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), cap(buf)))
		}
		m, err := io.ReadFull(c.br, buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, noUnexpectedEOF(err)
		}
	}
	if cap(buf) <= keepBufferBytes {
		c.rbuf = buf
	}
	return buf, nil
}

// noUnexpectedEOF reports a connection closed in the middle of a request
// as a closed connection.
func noUnexpectedEOF(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

// decode parses a request header and, for keys and versions served, the
// body. The body aliases buf.
func (c *conn) decode(buf []byte) (*request, error) {
	r := &request{
		c:       c,
		key:     int16(binary.BigEndian.Uint16(buf[0:])),
		version: int16(binary.BigEndian.Uint16(buf[2:])),
		corrID:  int32(binary.BigEndian.Uint32(buf[4:])),
	}
	rest := buf[8:]
	idLen := int16(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	switch {
	case idLen == -1:
	case idLen < 0 || int(idLen) > len(rest):
		return nil, closeConn("request header: client id length %d with %d bytes left", idLen, len(rest))
	default:
		id := string(rest[:idLen])
		r.clientID = &id
		rest = rest[idLen:]
	}

	h, ok := c.s.handlers[r.key]
	if r.key == apiVersionsKey && (r.version < h.min || r.version > h.max) {
		// KIP-511: do not parse what follows; answer in version 0.
		r.version = 0
		return r, nil
	}
	if !ok || r.version < h.min || r.version > h.max {
		return nil, closeConn("unsupported request: %s (key %d) version %d", kmsg.NameForKey(r.key), r.key, r.version)
	}
	r.body = kmsg.RequestForKey(r.key)
	r.body.SetVersion(r.version)
	if r.body.IsFlexible() {
		var err error
		if rest, err = skipTags(rest); err != nil {
			return nil, closeConn("request header of %s v%d: %v", kmsg.NameForKey(r.key), r.version, err)
		}
		// kmsg bounds every length by the bytes left, except the count of
		// tagged fields: a count far above the bytes left loops that many
		// times (up to 2^32) before the decode fails. checkFlexible
		// refuses such bodies first (flexguard.go).
		if err := checkFlexible(r.key, r.version, rest); err != nil {
			return nil, closeConn("malformed %s v%d request: %v", kmsg.NameForKey(r.key), r.version, err)
		}
	}
	if err := r.body.ReadFrom(rest); err != nil {
		return nil, closeConn("malformed %s v%d request: %v", kmsg.NameForKey(r.key), r.version, err)
	}
	return r, nil
}

// skipTags skips the tagged fields of a flexible header: an unsigned
// varint count, then per field an unsigned varint tag, an unsigned varint
// size and the data.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad tagged field count")
	}
	b = b[k:]
	for range n {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, errors.New("bad tag")
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, errors.New("bad tagged field size")
		}
		b = b[k+int(size):]
	}
	return b, nil
}

// process handles one request and returns its answer: nil for none
// (Produce with acks=0), or an error to close the connection. A request
// with a wait set must be waited for before its answer is written.
func (c *conn) process(r *request) (kmsg.Response, error) {
	if r.body == nil { // ApiVersions at a version we do not know
		return c.s.apiVersionsUnsupported(), nil
	}
	return c.s.handlers[r.key].handle(c.s.ctx, r)
}

// write frames and sends one response. Fetch responses frame themselves
// (writeFetch) unless Config.DisableZeroCopy is set. Responses go out in the
// order of the requests (see serve).
func (c *conn) write(r *request, resp kmsg.Response) error {
	fr, isFetch := resp.(*fetchResponse)
	if isFetch && !c.s.cfg.DisableZeroCopy {
		err := c.writeFetch(r, fr)
		if err == nil {
			c.s.stats.fetchResponses.Add(1)
		}
		return err
	}
	buf := c.wbuf[:0]
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint32(buf, uint32(r.corrID))
	if r.key != apiVersionsKey && resp.IsFlexible() {
		buf = append(buf, 0) // no tagged fields in the response header
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	if cap(buf) <= keepBufferBytes {
		c.wbuf = buf
	} else {
		c.wbuf = nil
	}
	if c.s.cfg.IdleTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	}
	_, err := c.nc.Write(buf)
	if isFetch && err == nil {
		var n int64
		for _, fp := range fr.parts {
			n += int64(len(fp.out.RecordBatches))
		}
		c.s.stats.copiedBytes.Add(n)
		c.s.stats.fetchResponses.Add(1)
	}
	return err
}

// handler serves one API key.
type handler struct {
	// min and max bound the versions served; others close the connection.
	min, max int16
	// advertisedMin is the minimum advertised in ApiVersions: min, or
	// below it for Produce (see the package documentation).
	advertisedMin int16
	// handle returns the response to send, nil for none, or an error to
	// close the connection. ctx is cancelled when the server shuts down.
	handle func(ctx context.Context, r *request) (kmsg.Response, error)
}
