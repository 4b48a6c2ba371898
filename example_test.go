package commitlog_test

import (
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

// This example is the README's quickstart: TestREADMEQuickstart keeps the
// two identical.
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

// TestREADMEQuickstart checks that the README's quickstart program is
// ExampleLog_AppendRecords, which runs (and whose output is checked) with
// the tests, and that it imports exactly the packages its body uses.
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
	exampleBody := funcBody(t, fset, string(exampleSrc), example, "ExampleLog_AppendRecords")
	if i := strings.Index(exampleBody, "\t// Output:"); i >= 0 {
		exampleBody = exampleBody[:i]
	}
	if strings.TrimSpace(mainBody) != strings.TrimSpace(exampleBody) {
		t.Errorf("README.md quickstart differs from ExampleLog_AppendRecords; make them identical.\nREADME:\n%s\nExample:\n%s", mainBody, exampleBody)
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
