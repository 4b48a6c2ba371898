package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// testTimeout bounds every wait of these tests.
const testTimeout = 30 * time.Second

// testEnv is a broker served on a loopback port.
type testEnv struct {
	t      testing.TB
	broker *commitlog.Broker
	srv    *Server
	addr   string
	ln     *countingListener
	served chan error
	once   sync.Once
}

type envOptions struct {
	broker commitlog.Options
	server Config
	// dir is the broker's directory; default a new temporary one.
	dir string
	// groupCommit keeps the broker's default SyncGroupCommit, which tests
	// otherwise replace with SyncNone.
	groupCommit bool
}

// newEnv opens a broker in a temporary directory and serves it on
// 127.0.0.1 on a free port until the test ends.
func newEnv(t testing.TB, o envOptions) *testEnv {
	t.Helper()
	if o.broker.SyncPolicy == commitlog.SyncGroupCommit && !o.groupCommit {
		// Tests do not need durability; fsyncs only slow them down.
		o.broker.SyncPolicy = commitlog.SyncNone
	}
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	b, err := commitlog.Open(o.dir, o.broker)
	if err != nil {
		t.Fatal(err)
	}
	if o.server.Logger == nil {
		o.server.Logger = testLogger(t)
	}
	srv, err := NewServer(b, o.server)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	e := &testEnv{t: t, broker: b, srv: srv, addr: ln.Addr().String(), ln: &countingListener{Listener: ln}, served: make(chan error, 1)}
	go func() { e.served <- srv.Serve(e.ln) }()
	t.Cleanup(e.stop)
	return e
}

// stop shuts the server down and closes the broker; it is idempotent.
func (e *testEnv) stop() { e.once.Do(e.doStop) }

func (e *testEnv) doStop() {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-e.served:
		if !errors.Is(err, ErrServerClosed) {
			e.t.Errorf("Serve: %v", err)
		}
	case <-ctx.Done():
		e.t.Error("Serve did not return after Shutdown")
	}
	if err := e.broker.Close(); err != nil {
		e.t.Errorf("broker Close: %v", err)
	}
}

// client returns a franz-go client with default settings (an idempotent
// producer among them) but for the seed broker.
func (e *testEnv) client(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(e.addr)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic directly on the broker.
func (e *testEnv) createTopic(name string, cfg commitlog.TopicConfig) {
	e.t.Helper()
	if _, err := e.broker.CreateTopic(context.Background(), name, cfg); err != nil {
		e.t.Fatal(err)
	}
}

// send sends one request with a client and returns the response.
func send[R kmsg.Response](t testing.TB, cl *kgo.Client, req kmsg.Request) R {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("%s request: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp.(R)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// countingListener counts the connections it accepted.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// testLogger logs to the test and fails it on a recovered panic.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testLogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testLogWriter struct {
	t  testing.TB
	mu sync.Mutex
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	line := strings.TrimSpace(string(p))
	w.t.Log(line)
	if strings.Contains(line, "panic") {
		w.t.Errorf("server panicked: %s", line)
	}
	return len(p), nil
}

// serve serves the env's broker on ln with another server, configured by
// cfg, until the test ends (before the broker closes).
func (e *testEnv) serve(ln net.Listener, cfg Config) *Server {
	e.t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(e.t)
	}
	srv, err := NewServer(e.broker, cfg)
	if err != nil {
		ln.Close()
		e.t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			e.t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			e.t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// rawConn is a hand-driven client connection, for framing tests.
type rawConn struct {
	t  testing.TB
	nc net.Conn
}

func (e *testEnv) dial() *rawConn {
	e.t.Helper()
	return dialTo(e.t, e.addr)
}

func dialTo(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

// frame encodes a request at its version with kmsg's request formatter.
func frame(req kmsg.Request, corrID int32) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, req, corrID)
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// readFrame reads one response frame; it returns io.EOF when the server
// closed the connection.
func (c *rawConn) readFrame() ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 64<<20 {
		c.t.Fatalf("response size %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c.nc, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// roundTrip sends req and decodes the response of the same version.
func roundTrip[R kmsg.Response](c *rawConn, req kmsg.Request, corrID int32) R {
	c.t.Helper()
	c.write(frame(req, corrID))
	return readResponse[R](c, req, corrID)
}

func readResponse[R kmsg.Response](c *rawConn, req kmsg.Request, corrID int32) R {
	c.t.Helper()
	buf, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("reading %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	if got := int32(binary.BigEndian.Uint32(buf)); got != corrID {
		c.t.Fatalf("correlation id %d, want %d", got, corrID)
	}
	buf = buf[4:]
	resp := req.ResponseKind()
	if req.IsFlexible() && req.Key() != apiVersionsKey {
		if buf[0] != 0 {
			c.t.Fatalf("response header tags %d", buf[0])
		}
		buf = buf[1:]
	}
	if err := resp.ReadFrom(buf); err != nil {
		c.t.Fatalf("decoding %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp.(R)
}

// expectClosed checks that the server closes the connection without
// answering.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	buf, err := c.readFrame()
	if err == nil {
		c.t.Fatalf("got a %d-byte response, want the connection closed", len(buf))
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isConnReset(err) {
		c.t.Fatalf("want the connection closed, got %v", err)
	}
}

func isConnReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// appendBatch encodes records as one batch, for raw Produce requests.
func appendBatch(t testing.TB, values ...string) []byte {
	t.Helper()
	recs := make([]commitlog.Record, len(values))
	for i, v := range values {
		recs[i] = commitlog.Record{Value: []byte(v), Timestamp: time.UnixMilli(int64(1000 + i))}
	}
	b, err := commitlog.AppendBatch(nil, commitlog.CompressionNone, recs...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
