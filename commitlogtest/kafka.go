package commitlogtest

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/kafka"
)

// NewKafka starts a broker, as NewBroker does, and serves it over the
// Kafka protocol on a free port of 127.0.0.1 until the test ends. It
// returns the broker and the address to give Kafka clients as their seed
// broker.
//
//	b, addr := commitlogtest.NewKafka(t)
//	client, err := kgo.NewClient(kgo.SeedBrokers(addr))
func NewKafka(tb TB, opts ...Option) (*commitlog.Broker, string) {
	tb.Helper()
	b := NewBroker(tb, opts...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("commitlogtest: listen: %v", err)
	}
	srv, err := kafka.NewServer(b, kafka.Config{})
	if err != nil {
		ln.Close()
		tb.Fatalf("commitlogtest: kafka server: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// Cleanups run last-in first-out: the server stops before the broker
	// closes.
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Fatalf("commitlogtest: kafka server shutdown: %v", err)
		}
		if err := <-served; err != nil && !errors.Is(err, kafka.ErrServerClosed) {
			tb.Fatalf("commitlogtest: kafka server: %v", err)
		}
	})
	return b, ln.Addr().String()
}
