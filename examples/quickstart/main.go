// Command quickstart runs a broker inside the process, produces three
// records to a topic and consumes them back.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/streamkit/commitlog"
)

func main() {
	dir := flag.String("dir", "data", "data directory of the broker")
	flag.Parse()
	if err := run(context.Background(), *dir, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir string, out io.Writer) error {
	b, err := commitlog.Open(dir, commitlog.Options{})
	if err != nil {
		return err
	}
	defer b.Close()

	_, err = b.CreateTopic(ctx, "greetings", commitlog.TopicConfig{Partitions: 1})
	if err != nil && !errors.Is(err, commitlog.ErrTopicExists) {
		return err
	}

	p, err := b.NewProducer(commitlog.ProducerConfig{})
	if err != nil {
		return err
	}
	var last int64
	for _, v := range []string{"hello", "hallo", "bonjour"} {
		rec, err := p.Send(ctx, commitlog.Record{Topic: "greetings", Value: []byte(v)})
		if err != nil {
			return err
		}
		last = rec.Offset
	}
	if err := p.Close(); err != nil {
		return err
	}

	c, err := b.NewConsumer(commitlog.ConsumerConfig{Topics: []string{"greetings"}})
	if err != nil {
		return err
	}
	defer c.Close()
	for rec, err := range c.Records(ctx) {
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s-%d@%d: %s\n", rec.Topic, rec.Partition, rec.Offset, rec.Value)
		if rec.Offset == last {
			break
		}
	}
	return nil
}
