// Command appendread appends a few records to a log on disk and reads them
// back: the smallest complete use of the commitlog storage engine.
//
//	go run ./examples/appendread              # the log is ./data/greetings-0
//	go run ./examples/appendread -dir /tmp/cl # the log is /tmp/cl/greetings-0
//
// Every run appends to the same log, so offsets continue where the last run
// stopped; delete the directory to start again.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/streamkit/commitlog"
)

// timeFormat is RFC 3339 with milliseconds, the precision of record
// timestamps.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func main() {
	dir := flag.String("dir", "data", "directory that holds the log's partition directory")
	flag.Parse()
	out, err := run(*dir)
	fmt.Print(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "appendread:", err)
		os.Exit(1)
	}
}

// run opens the log greetings-0 under dir, appends three records in one
// zstd-compressed batch, reads them back and closes the log. It returns what
// it has to say.
func run(dir string) (_ string, err error) {
	var out strings.Builder
	path := filepath.Join(dir, "greetings-0") // <topic>-<partition>, as Kafka names it
	// The zero LogConfig means Kafka's defaults and group commit: an append
	// returns once its records are on stable storage.
	l, err := commitlog.OpenLog(path, commitlog.LogConfig{})
	if err != nil {
		return out.String(), err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	fmt.Fprintf(&out, "opened %s: offsets [%d, %d)\n", path, l.StartOffset(), l.EndOffset())

	source := []commitlog.Header{{Key: "source", Value: []byte("appendread")}}
	base, err := l.AppendRecords(commitlog.CompressionZstd,
		commitlog.Record{Key: []byte("en"), Value: []byte("hello, world"), Headers: source},
		commitlog.Record{Key: []byte("fr"), Value: []byte("bonjour, le monde"), Headers: source},
		commitlog.Record{Key: []byte("de"), Value: []byte("hallo, Welt"), Headers: source},
	)
	if err != nil {
		return out.String(), err
	}
	fmt.Fprintf(&out, "appended offsets [%d, %d), durable below %d\n", base, l.EndOffset(), l.DurableOffset())

	// Read returns whole batches from the one holding base: here, exactly
	// the batch just appended.
	s, err := l.Read(base, 1<<20)
	if err != nil {
		return out.String(), err
	}
	defer s.Release()
	for rec, err := range commitlog.Records(s) {
		if err != nil {
			return out.String(), err
		}
		if rec.Offset < base {
			continue
		}
		// Key, Value and Headers alias the log's memory (or a decompression
		// buffer) only until the next iteration: printing them is fine.
		fmt.Fprintf(&out, "%6d  %s  %s=%q", rec.Offset, rec.Timestamp.UTC().Format(timeFormat), rec.Key, rec.Value)
		for _, h := range rec.Headers {
			fmt.Fprintf(&out, "  %s:%s", h.Key, h.Value)
		}
		out.WriteByte('\n')
	}
	return out.String(), nil
}
