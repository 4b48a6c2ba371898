package kafka_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/kafka"
)

// Serve a broker to Kafka clients, here franz-go, on a loopback port.
func Example() {
	dir, err := os.MkdirTemp("", "commitlog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := commitlog.Open(dir, commitlog.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close() // after the server's Shutdown: defers run last first
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, "greetings", commitlog.TopicConfig{Partitions: 3}); err != nil {
		log.Fatal(err)
	}

	srv, err := kafka.NewServer(b, kafka.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(ln.Addr().String()),
		kgo.ConsumeTopics("greetings"),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "greetings", Value: []byte("hello, kafka")}).FirstErr(); err != nil {
		log.Fatal(err)
	}
	fetches := cl.PollFetches(ctx)
	fetches.EachRecord(func(r *kgo.Record) { fmt.Printf("%s at offset %d\n", r.Value, r.Offset) })
	// Output: hello, kafka at offset 0
}
