package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamkit/commitlog"
)

// Config configures a Server. The zero value is usable: every zero field
// takes the default written beside it, which is Kafka's for the setting of
// the same name.
type Config struct {
	// Addr is the TCP address ListenAndServe listens on (listeners).
	// Default "localhost:9092".
	Addr string
	// NodeID is the broker's id in metadata responses (node.id). Default 1;
	// 0 is not expressible here, as with every zero field.
	NodeID int32
	// AdvertisedHost and AdvertisedPort are the address clients are told to
	// connect to (advertised.listeners). Default: the address of the
	// listener the client connected through; the machine's host name when
	// that listener is bound to every interface.
	AdvertisedHost string
	AdvertisedPort int
	// MaxRequestBytes is the largest request accepted
	// (socket.request.max.bytes). A larger size prefix closes the
	// connection before anything is allocated for it. Default 100 MiB.
	MaxRequestBytes int
	// IdleTimeout closes a connection that sends no request for this long
	// (connections.max.idle.ms); it also bounds the writing of one
	// response. Default 10 minutes; negative means never.
	IdleTimeout time.Duration
	// DisableZeroCopy makes Fetch responses go through kmsg's encoder like
	// every other response, the records copied into the response buffer,
	// instead of being framed by the server and sent from the segment
	// files with sendfile(2). For debugging and for measuring what
	// zero-copy saves; off by default.
	DisableZeroCopy bool
	// ZeroCopyLoopback uses sendfile for clients on this machine too. By
	// default loopback clients get record bytes written from the log's
	// mapping (one writev), which measured faster there: sendfile saves a
	// copy only when a network card, not a local receiver, takes the bytes.
	ZeroCopyLoopback bool
	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultAddr            = "localhost:9092"
	DefaultNodeID          = 1
	DefaultMaxRequestBytes = 100 << 20
	DefaultIdleTimeout     = 10 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.NodeID == 0 {
		c.NodeID = DefaultNodeID
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c *Config) validate() error {
	switch {
	case c.NodeID < 0:
		return fmt.Errorf("kafka: Config.NodeID %d is negative", c.NodeID)
	case c.AdvertisedPort < 0 || c.AdvertisedPort > 65535:
		return fmt.Errorf("kafka: Config.AdvertisedPort %d outside [0, 65535]", c.AdvertisedPort)
	case c.MaxRequestBytes < minRequestBytes:
		return fmt.Errorf("kafka: Config.MaxRequestBytes %d below %d", c.MaxRequestBytes, minRequestBytes)
	}
	return nil
}

// minRequestBytes is the smallest MaxRequestBytes accepted: room for the
// header of any request and a small body.
const minRequestBytes = 1024

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown
// or Close.
var ErrServerClosed = errors.New("kafka: server closed")

// Server serves a Broker over the Kafka protocol. Its methods are safe for
// concurrent use. Shut it down (Shutdown or Close) before closing the
// broker.
type Server struct {
	b        *commitlog.Broker
	opts     commitlog.Options // the broker's, defaults filled in
	cfg      Config
	log      *slog.Logger
	handlers map[int16]handler

	// ctx is cancelled by Shutdown and Close: waiting requests (a Fetch
	// long poll) answer at once with what they have.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex // guards the fields below
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	first     net.Listener // the first listener served, for Addr
	closing   bool         // Shutdown or Close began: no new listeners or connections

	wg sync.WaitGroup // one per connection goroutine

	stats serverStats
}

// Stats are counters of a Server's work since NewServer, for monitoring and
// for measuring what zero-copy Fetch saves. Record bytes are the
// RecordBatches of Fetch responses, counted once written: every record
// byte fetched is in exactly one of SendfileBytes, WritevBytes and
// CopiedBytes.
type Stats struct {
	// Connections is how many connections were accepted.
	Connections int64
	// ProduceRequests is how many Produce requests were handled (acks=0
	// ones included).
	ProduceRequests int64
	// FetchResponses is how many Fetch responses were written.
	FetchResponses int64
	// SendfileBytes are record bytes sent with sendfile(2) from the segment
	// files: never copied through user space. Record ranges of 32 KiB and
	// up to clients that are not on this machine (all clients with
	// Config.ZeroCopyLoopback), on Linux.
	SendfileBytes int64
	// WritevBytes are record bytes written from the log's memory mapping
	// in the writev of the response's frame: copied once, by the kernel,
	// into the socket. Smaller ranges, and all of them to loopback clients.
	WritevBytes int64
	// CopiedBytes are record bytes copied into a buffer before being
	// written: over TLS, with Config.DisableZeroCopy, and where sendfile is
	// not available.
	CopiedBytes int64
}

// serverStats are the counters behind Stats.
type serverStats struct {
	connections, produceRequests, fetchResponses atomic.Int64
	sendfileBytes, writevBytes, copiedBytes      atomic.Int64
}

// Stats returns the server's counters. It is safe to call at any time,
// concurrently with serving; each counter is read atomically, but not all
// of them at one instant.
func (s *Server) Stats() Stats {
	st := &s.stats
	return Stats{
		Connections:     st.connections.Load(),
		ProduceRequests: st.produceRequests.Load(),
		FetchResponses:  st.fetchResponses.Load(),
		SendfileBytes:   st.sendfileBytes.Load(),
		WritevBytes:     st.writevBytes.Load(),
		CopiedBytes:     st.copiedBytes.Load(),
	}
}

// NewServer returns a server for b. It does not listen yet: call Serve or
// ListenAndServe.
func NewServer(b *commitlog.Broker, cfg Config) (*Server, error) {
	if b == nil {
		return nil, errors.New("kafka: NewServer: nil broker")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		b:         b,
		opts:      b.Options(),
		cfg:       cfg,
		log:       cfg.Logger,
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
	}
	if c := s.opts.Cluster; c != nil {
		// A broker of a cluster is known by its id there.
		s.cfg.NodeID = c.BrokerID
	}
	s.handlers = s.defaultHandlers()
	return s, nil
}

// ListenAndServe listens on Config.Addr and serves it; see Serve.
func (s *Server) ListenAndServe() error {
	if s.isClosing() {
		return ErrServerClosed
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("kafka: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln and serves each in its own goroutine
// until Shutdown or Close, which close ln; it then returns ErrServerClosed.
// Any other error closes ln and is returned. Serve may be called with
// several listeners; clients learn the address of the one they used (see
// Config.AdvertisedHost).
func (s *Server) Serve(ln net.Listener) error {
	adv, err := s.advertised(ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	if s.first == nil {
		s.first = ln
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	s.log.Info("kafka: serving", "addr", ln.Addr().String(), "advertised", netJoin(adv), "node_id", s.cfg.NodeID)

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if isTemporary(err) {
				// Out of file descriptors and the like: wait and retry,
				// as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("kafka: accept", "err", err, "retry_in", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-s.ctx.Done():
					t.Stop()
				}
				continue
			}
			ln.Close()
			return fmt.Errorf("kafka: accept: %w", err)
		}
		backoff = 0
		c := newConn(s, nc, adv)
		if !s.track(c) {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

// isTemporary reports whether an Accept error is worth retrying (running
// out of file descriptors is).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track registers a new connection, unless the server is closing.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.stats.connections.Add(1)
	return true
}

// untrack forgets a connection whose goroutine is ending.
func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Addr returns the address of the first listener served, or nil before
// Serve is called.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == nil {
		return nil
	}
	return s.first.Addr()
}

// Shutdown stops the server gracefully: it closes the listeners, lets the
// requests being processed finish and answers them (a Fetch waiting for
// data answers at once with what it has), closes every connection, and
// returns once every goroutine of the server has ended. If ctx is done
// first, it closes the remaining connections as Close does, waits for their
// goroutines, and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginClose(false)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.beginClose(true)
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, abandoning the
// requests being processed (their effects on the broker may or may not have
// happened), and returns once every goroutine of the server has ended.
// Shutdown is the graceful way. Close is idempotent.
func (s *Server) Close() error {
	s.beginClose(true)
	s.wg.Wait()
	return nil
}

// beginClose marks the server closing, closes its listeners and wakes its
// idle connections (all connections when force is set) so that their
// goroutines end.
func (s *Server) beginClose(force bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.cancel()
	for c := range s.conns {
		if force {
			c.nc.Close()
		} else if c.idle {
			// Wake the blocked read; the goroutine sees closing and ends.
			c.nc.SetReadDeadline(aLongTimeAgo)
		}
	}
}

// aLongTimeAgo is a deadline in the past, to interrupt blocked reads.
var aLongTimeAgo = time.Unix(1, 0)

// advertisedAddr is the host and port written into metadata responses.
type advertisedAddr struct {
	host string
	port int32
}

// advertised computes what to advertise for a listener at addr.
func (s *Server) advertised(addr net.Addr) (advertisedAddr, error) {
	host, portStr, err := net.SplitHostPort(addr.String())
	if err != nil {
		return advertisedAddr{}, fmt.Errorf("kafka: listener address %s: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return advertisedAddr{}, fmt.Errorf("kafka: listener address %s: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		}
	}
	if s.cfg.AdvertisedHost != "" {
		host = s.cfg.AdvertisedHost
	}
	if s.cfg.AdvertisedPort != 0 {
		port = s.cfg.AdvertisedPort
	}
	return advertisedAddr{host: host, port: int32(port)}, nil
}
