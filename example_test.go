package commitlog_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamkit/commitlog"
)

// readmeExample is the example that README.md shows as its quickstart;
// TestREADMEQuickstart keeps the two identical.
const readmeExample = "ExampleOpen"

// A broker in the process: a topic of three partitions, a producer and a
// consumer. This example is the README's quickstart.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "commitlog-quickstart-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx := context.Background()

	// The broker keeps its topics in dir. The zero Options are Kafka's
	// defaults, with group commit: a record is acknowledged once on disk.
	b, err := commitlog.Open(dir, commitlog.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := b.CreateTopic(ctx, "orders", commitlog.TopicConfig{Partitions: 3}); err != nil {
		log.Fatal(err)
	}

	// Records with the same key go to the same partition (Kafka's murmur2
	// hash), so each order's events stay in order.
	p, err := b.NewProducer(commitlog.ProducerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range [][2]string{{"order-1", "created"}, {"order-2", "created"}, {"order-1", "paid"}} {
		rec, err := p.Send(ctx, commitlog.Record{Topic: "orders", Key: []byte(e[0]), Value: []byte(e[1])})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("sent %s %s to partition %d at offset %d\n", rec.Key, rec.Value, rec.Partition, rec.Offset)
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	// A consumer of every partition, from the start. Poll waits for
	// records; what it returns is valid until the next Poll.
	c, err := b.NewConsumer(commitlog.ConsumerConfig{Topics: []string{"orders"}})
	if err != nil {
		log.Fatal(err)
	}
	recs, err := c.Poll(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Printf("got %s-%d@%d %s %s\n", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}

	if err := b.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// sent order-1 created to partition 1 at offset 0
	// sent order-2 created to partition 0 at offset 0
	// sent order-1 paid to partition 1 at offset 1
	// got orders-0@0 order-2 created
	// got orders-1@0 order-1 created
	// got orders-1@1 order-1 paid
}

// SendAsync buffers a record and returns at once. Its callback runs once
// the record is written, or has failed, on the producer's goroutine, in
// send order per partition; Flush and Close wait for the callbacks.
func ExampleProducer_SendAsync() {
	dir, err := os.MkdirTemp("", "commitlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx := context.Background()
	b, err := commitlog.Open(dir, commitlog.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := b.CreateTopic(ctx, "events", commitlog.TopicConfig{}); err != nil {
		log.Fatal(err)
	}

	// Linger (linger.ms) lets records gather into one batch, which is
	// compressed as a whole and costs one write and one fsync.
	p, err := b.NewProducer(commitlog.ProducerConfig{Linger: 5 * time.Millisecond, Compression: commitlog.CompressionZstd})
	if err != nil {
		log.Fatal(err)
	}
	done := func(r commitlog.Record, err error) {
		if err != nil {
			fmt.Println("failed:", err)
			return
		}
		fmt.Printf("written: %s-%d@%d %s\n", r.Topic, r.Partition, r.Offset, r.Value)
	}
	for _, v := range []string{"a", "b", "c"} {
		p.SendAsync(commitlog.Record{Topic: "events", Value: []byte(v)}, done)
	}
	if err := p.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("flushed")

	// Errors go to the callback too: there is no topic "typo", and the
	// broker does not create topics on first use unless
	// Options.AutoCreateTopics says so.
	p.SendAsync(commitlog.Record{Topic: "typo", Value: []byte("d")}, func(_ commitlog.Record, err error) {
		fmt.Println(errors.Is(err, commitlog.ErrUnknownTopic), err)
	})
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}
	if err := b.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// written: events-0@0 a
	// written: events-0@1 b
	// written: events-0@2 c
	// flushed
	// true commitlog: unknown topic: typo
}

// Records ranges over successive Polls. A record is valid only until the
// loop moves on: Clone what you keep. Here the consumer is assigned one
// partition (Kafka's assign) and starts where Seek puts it.
func ExampleConsumer_Records() {
	dir, err := os.MkdirTemp("", "commitlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx := context.Background()
	// SyncNone: this example does not need its records to survive a
	// machine crash, so it skips the fsyncs.
	b, err := commitlog.Open(dir, commitlog.Options{SyncPolicy: commitlog.SyncNone})
	if err != nil {
		log.Fatal(err)
	}
	t, err := b.CreateTopic(ctx, "clicks", commitlog.TopicConfig{})
	if err != nil {
		log.Fatal(err)
	}
	p, err := b.NewProducer(commitlog.ProducerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 5 {
		if _, err := p.Send(ctx, commitlog.Record{Topic: "clicks", Value: fmt.Appendf(nil, "click %d", i)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	c, err := b.NewConsumer(commitlog.ConsumerConfig{Partitions: map[string][]int32{"clicks": {0}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Seek("clicks", 0, 2); err != nil {
		log.Fatal(err)
	}
	part, err := t.Partition(0)
	if err != nil {
		log.Fatal(err)
	}
	last := part.EndOffset() - 1
	var kept []commitlog.Record
	for r, err := range c.Records(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		kept = append(kept, r.Clone()) // r's bytes are reused once the loop moves on
		if r.Offset == last {
			break // caught up; without the break, Records waits for more
		}
	}
	for _, r := range kept {
		fmt.Printf("%d %s\n", r.Offset, r.Value)
	}
	pos, err := c.Position("clicks", 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("position:", pos)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	if err := b.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 2 click 2
	// 3 click 3
	// 4 click 4
	// position: 5
}

// A compacted topic (cleanup.policy=compact) keeps the latest record of
// each key: a table of balances kept as a stream of updates. The cleaner
// compacts in the background; CompactTopics(true) runs it now. It works on
// closed segments only, so this topic has tiny ones (segment.bytes), and
// the records of the active segment are all still there.
func ExampleBroker_CreateTopic() {
	dir, err := os.MkdirTemp("", "commitlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx := context.Background()
	b, err := commitlog.Open(dir, commitlog.Options{SyncPolicy: commitlog.SyncNone})
	if err != nil {
		log.Fatal(err)
	}
	t, err := b.CreateTopic(ctx, "balances", commitlog.TopicConfig{
		CleanupPolicy: commitlog.CleanupCompact,
		SegmentBytes:  1024,
	})
	if err != nil {
		log.Fatal(err)
	}
	p, err := b.NewProducer(commitlog.ProducerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	accounts := []string{"alice", "bob", "carol"}
	for i := 1; i <= 30; i++ {
		r := commitlog.Record{Topic: "balances", Key: []byte(accounts[i%3]), Value: fmt.Appendf(nil, "%d", 10*i)}
		if _, err := p.Send(ctx, r); err != nil {
			log.Fatal(err)
		}
	}
	// A null value is a tombstone: it deletes bob, and is itself removed
	// once older than DeleteRetention (delete.retention.ms, 24 hours).
	if _, err := p.Send(ctx, commitlog.Record{Topic: "balances", Key: []byte("bob")}); err != nil {
		log.Fatal(err)
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	stats, err := b.CompactTopics(true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("records removed:", stats.RecordsRemoved)
	d := t.Describe().Partitions[0]
	fmt.Printf("offsets [%d, %d) in %d segments\n", d.StartOffset, d.EndOffset, d.Segments)

	c, err := b.NewConsumer(commitlog.ConsumerConfig{Topics: []string{"balances"}})
	if err != nil {
		log.Fatal(err)
	}
	recs, err := c.Poll(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		if r.Value == nil {
			fmt.Printf("%d %s deleted\n", r.Offset, r.Key)
		} else {
			fmt.Printf("%d %s %s\n", r.Offset, r.Key, r.Value)
		}
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	if err := b.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// records removed: 23
	// offsets [0, 31) in 3 segments
	// 23 alice 240
	// 24 bob 250
	// 25 carol 260
	// 26 alice 270
	// 27 bob 280
	// 28 carol 290
	// 29 alice 300
	// 30 bob deleted
}

// The storage engine alone: one partition's log, without a broker.
// AppendRecords encodes records into one batch, compressed as a whole, and
// appends it; Read returns whole batches and Records decodes them.
func ExampleLog_AppendRecords() {
	dir, err := os.MkdirTemp("", "commitlog-quickstart-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	// One partition's log. The zero LogConfig means Kafka's defaults and
	// group commit: an append returns once it is on disk.
	l, err := commitlog.OpenLog(filepath.Join(dir, "orders-0"), commitlog.LogConfig{})
	if err != nil {
		log.Fatal(err)
	}

	base, err := l.AppendRecords(commitlog.CompressionZstd,
		commitlog.Record{Key: []byte("order-1"), Value: []byte("created")},
		commitlog.Record{Key: []byte("order-1"), Value: []byte("paid")},
		commitlog.Record{Key: []byte("order-2"), Value: []byte("created")},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appended at offset", base, "- end offset", l.EndOffset())

	s, err := l.Read(base, 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	for rec, err := range commitlog.Records(s) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d %s %s\n", rec.Offset, rec.Key, rec.Value)
	}
	s.Release()

	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// appended at offset 0 - end offset 3
	// 0 order-1 created
	// 1 order-1 paid
	// 2 order-2 created
}

// A log lives in one directory, in Kafka's layout, and survives a restart.
func ExampleOpenLog() {
	dir, err := os.MkdirTemp("", "commitlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	path := filepath.Join(dir, "events-0") // <topic>-<partition>

	l, err := commitlog.OpenLog(path, commitlog.LogConfig{SyncPolicy: commitlog.SyncGroupCommit})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("new:", l.StartOffset(), l.DurableOffset(), l.EndOffset())
	if _, err := l.AppendRecords(commitlog.CompressionNone,
		commitlog.Record{Value: []byte("a")}, commitlog.Record{Value: []byte("b")}); err != nil {
		log.Fatal(err)
	}
	// Under group commit the append returned once durable.
	fmt.Println("appended:", l.StartOffset(), l.DurableOffset(), l.EndOffset())
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	entries, err := os.ReadDir(path)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); ext == ".log" || ext == ".index" || ext == ".timeindex" {
			fmt.Println(e.Name())
		}
	}

	l, err = commitlog.OpenLog(path, commitlog.LogConfig{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("reopened:", l.StartOffset(), l.DurableOffset(), l.EndOffset())
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// new: 0 0 0
	// appended: 0 2 2
	// 00000000000000000000.index
	// 00000000000000000000.log
	// 00000000000000000000.timeindex
	// reopened: 0 2 2
}

// Reading from an offset in Fetch-sized pieces, as a consumer does: each
// Read returns whole batches, the first of which may begin before the
// offset asked for, and NextOffset says where to continue.
func ExampleLog_Read() {
	dir, err := os.MkdirTemp("", "commitlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	l, err := commitlog.OpenLog(filepath.Join(dir, "events-0"), commitlog.LogConfig{SyncPolicy: commitlog.SyncNone})
	if err != nil {
		log.Fatal(err)
	}
	for b := range 3 { // three batches of three records: offsets 0-8
		var recs []commitlog.Record
		for i := range 3 {
			recs = append(recs, commitlog.Record{Value: fmt.Appendf(nil, "batch %d record %d", b, i)})
		}
		if _, err := l.AppendRecords(commitlog.CompressionLZ4, recs...); err != nil {
			log.Fatal(err)
		}
	}

	for offset := int64(4); offset < l.EndOffset(); {
		s, err := l.Read(offset, 1) // at most 1 byte: one batch per read
		if err != nil {
			log.Fatal(err)
		}
		for rec, err := range commitlog.Records(s) {
			if err != nil {
				log.Fatal(err)
			}
			if rec.Offset < offset {
				continue // in the batch, but before the offset asked for
			}
			fmt.Println(rec.Offset, string(rec.Value))
		}
		offset = s.NextOffset
		s.Release()
	}

	_, err = l.Read(42, 1<<20)
	var oor *commitlog.OffsetOutOfRangeError
	if errors.As(err, &oor) {
		fmt.Printf("offset %d is out of range [%d, %d]\n", oor.Offset, oor.Start, oor.End)
	}
	fmt.Println(errors.Is(err, commitlog.ErrOffsetOutOfRange))
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 4 batch 1 record 1
	// 5 batch 1 record 2
	// 6 batch 2 record 0
	// 7 batch 2 record 1
	// 8 batch 2 record 2
	// offset 42 is out of range [0, 9]
	// true
}

// AppendBatch encodes a batch without a log: the bytes are what Log.Append
// takes and what Kafka clients send. Records decodes them again.
func ExampleAppendBatch() {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	b, err := commitlog.AppendBatch(nil, commitlog.CompressionSnappy,
		commitlog.Record{Timestamp: ts, Key: []byte("user-7"), Value: []byte(`{"clicks":3}`),
			Headers: []commitlog.Header{{Key: "content-type", Value: []byte("application/json")}}},
		commitlog.Record{Timestamp: ts.Add(time.Second), Key: []byte("user-7"), Value: nil}, // a tombstone
	)
	if err != nil {
		log.Fatal(err)
	}
	for rec, err := range commitlog.Records(commitlog.Slice{Bytes: b}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Offset, rec.Timestamp.UTC().Format(time.RFC3339Nano), string(rec.Key), rec.Value == nil)
		for _, h := range rec.Headers {
			fmt.Printf("  %s: %s\n", h.Key, h.Value)
		}
	}
	// Output:
	// 0 2026-01-02T03:04:05.678Z user-7 false
	//   content-type: application/json
	// 1 2026-01-02T03:04:06.678Z user-7 true
}

// TestREADMEQuickstart checks that the README's quickstart program (its
// first ```go block) is ExampleOpen, which runs (and whose output is
// checked) with the tests, and that it imports exactly the packages its
// body uses.
func TestREADMEQuickstart(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	const open, closing = "```go\n", "```\n"
	start := strings.Index(string(readme), open)
	if start < 0 {
		t.Fatal("README.md has no ```go block")
	}
	src, _, ok := strings.Cut(string(readme[start+len(open):]), closing)
	if !ok {
		t.Fatal("README.md: the ```go block does not end")
	}

	fset := token.NewFileSet()
	prog, err := parser.ParseFile(fset, "README.md", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("the README's quickstart does not parse: %v", err)
	}
	mainBody := funcBody(t, fset, src, prog, "main")

	exampleSrc, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	example, err := parser.ParseFile(fset, "example_test.go", exampleSrc, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	exampleBody := funcBody(t, fset, string(exampleSrc), example, readmeExample)
	if i := strings.Index(exampleBody, "\t// Output:"); i >= 0 {
		exampleBody = exampleBody[:i]
	}
	if strings.TrimSpace(mainBody) != strings.TrimSpace(exampleBody) {
		t.Errorf("README.md quickstart differs from %s; make them identical.\nREADME:\n%s\nExample:\n%s", readmeExample, mainBody, exampleBody)
	}

	var imported []string
	for _, spec := range prog.Imports {
		path, _ := strconv.Unquote(spec.Path.Value)
		imported = append(imported, filepath.Base(path))
	}
	// Package names are the selector prefixes that the program does not
	// declare itself.
	declared := map[string]bool{}
	ast.Inspect(prog, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE {
				for _, e := range n.Lhs {
					if id, ok := e.(*ast.Ident); ok {
						declared[id.Name] = true
					}
				}
			}
		case *ast.RangeStmt:
			for _, e := range []ast.Expr{n.Key, n.Value} {
				if id, ok := e.(*ast.Ident); ok && n.Tok == token.DEFINE {
					declared[id.Name] = true
				}
			}
		case *ast.ValueSpec:
			for _, id := range n.Names {
				declared[id.Name] = true
			}
		}
		return true
	})
	var used []string
	ast.Inspect(prog, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && !declared[id.Name] && !slices.Contains(used, id.Name) {
				used = append(used, id.Name)
			}
		}
		return true
	})
	slices.Sort(imported)
	slices.Sort(used)
	if !slices.Equal(imported, used) {
		t.Errorf("README.md quickstart imports %v but uses %v", imported, used)
	}
}

// funcBody returns the source between the braces of the named function.
func funcBody(t *testing.T, fset *token.FileSet, src string, f *ast.File, name string) string {
	t.Helper()
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == name {
			from := fset.Position(fn.Body.Lbrace).Offset + 1
			to := fset.Position(fn.Body.Rbrace).Offset
			return src[from:to]
		}
	}
	t.Fatalf("no func %s", name)
	return ""
}
