// Command keyed shows keyed partitioning: records with the same key always
// go to the same partition (Kafka's murmur2 hash, so a Java or franz-go
// producer would pick the same one), which keeps each key's records in
// order even though the topic is spread over several partitions.
//
//	go run ./examples/keyed
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/streamkit/commitlog"
)

func main() {
	dir := flag.String("dir", "", "data directory (default: a temporary one)")
	flag.Parse()
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "keyed")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	if err := run(context.Background(), *dir, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir string, out io.Writer) error {
	b, err := commitlog.Open(dir, commitlog.Options{SyncPolicy: commitlog.SyncNone})
	if err != nil {
		return err
	}
	defer b.Close()
	t, err := b.CreateTopic(ctx, "clicks", commitlog.TopicConfig{Partitions: 4})
	if err != nil {
		return err
	}
	p, err := b.NewProducer(commitlog.ProducerConfig{})
	if err != nil {
		return err
	}
	users := []string{"ada", "grace", "linus", "barbara", "ken"}
	sent := 0
	for i := 0; i < 3; i++ {
		for _, u := range users {
			rec := commitlog.Record{Topic: "clicks", Key: []byte(u), Value: fmt.Appendf(nil, "%s click %d", u, i)}
			// SendAsync batches; the callback runs once the record is stored.
			p.SendAsync(rec, func(r commitlog.Record, err error) {
				if err != nil {
					log.Print(err)
				}
			})
			sent++
		}
	}
	if err := p.Close(); err != nil { // Close flushes what is buffered
		return err
	}

	// Read each partition in turn: a user's clicks are all in one of them,
	// in the order they were sent.
	for _, part := range t.Partitions() {
		fmt.Fprintf(out, "partition %d:", part.ID())
		for off := part.StartOffset(); off < part.EndOffset(); {
			s, err := part.Read(off, 1<<20)
			if err != nil {
				return err
			}
			for r, err := range commitlog.Records(s) {
				if err != nil {
					s.Release()
					return err
				}
				fmt.Fprintf(out, " [%s]", r.Value)
			}
			off = s.NextOffset
			s.Release()
		}
		fmt.Fprintln(out)
	}
	return nil
}
