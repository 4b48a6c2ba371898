package main

import (
	"bytes"
	"context"
	"github.com/streamkit/commitlog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestRun serves a broker as the binary does, produces and consumes
// through it with franz-go, then stops it as a signal would.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	var logs syncBuffer
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	dir := t.TempDir()
	go func() {
		done <- run(runCtx, []string{"-dir", dir, "-addr", "127.0.0.1:0", "-sync", "none", "-node-id", "3"}, &logs, ready)
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs.String())
	case <-ctx.Done():
		t.Fatal("the server did not start")
	}

	// Auto-creation is on for the binary; franz-go asks for it when told
	// to. Its producer is idempotent by default.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr.String()),
		kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "hello", Value: []byte("world")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fetches := cl.PollFetches(ctx)
	if err := fetches.Err0(); err != nil {
		t.Fatal(err)
	}
	if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "world" {
		t.Fatalf("consumed %v", recs)
	}
	cl.Close()

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("run did not return after its context ended")
	}
	if !strings.Contains(logs.String(), "commitlog: stopped") {
		t.Fatalf("logs:\n%s", logs.String())
	}
}

// start runs the binary with args on a loopback port and returns its
// address and a stop function that ends it as a signal would and returns
// its error.
func start(t *testing.T, args ...string) (addr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-sync", "none"}, args...), &logs, ready)
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case a := <-ready:
		addr = a.String()
	case err := <-done:
		cancel()
		t.Fatalf("run: %v\n%s", err, logs.String())
	case <-timer.C:
		cancel()
		t.Fatal("the server did not start")
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

// TestRunRestart checks what the flags give the broker and what its
// directory keeps: the cluster id survives a restart, and
// -auto-create-topics=false leaves unknown topics unknown.
func TestRunRestart(t *testing.T) {
	dir := t.TempDir()
	metadata := func(addr string) *kmsg.MetadataResponse {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = true
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("unknown")
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	addr, stop := start(t, "-dir", dir, "-auto-create-topics=false")
	first := metadata(addr)
	if first.ClusterID == nil || len(*first.ClusterID) != 22 {
		t.Fatalf("cluster id %v", first.ClusterID)
	}
	if code := first.Topics[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic without auto-creation: error %d", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	addr, stop = start(t, "-dir", dir, "-disable-zero-copy")
	again := metadata(addr)
	if again.ClusterID == nil || *again.ClusterID != *first.ClusterID {
		t.Fatalf("cluster id %v after a restart, was %s", again.ClusterID, *first.ClusterID)
	}
	if code := again.Topics[0].ErrorCode; code != kerr.LeaderNotAvailable.Code {
		t.Fatalf("unknown topic with auto-creation: error %d, want LEADER_NOT_AVAILABLE", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRunTopicDefaults checks that the retention and message size flags
// become the defaults of topics the binary creates.
func TestRunTopicDefaults(t *testing.T) {
	dir := t.TempDir()
	addr, stop := start(t, "-dir", dir, "-retention", "1h", "-retention-bytes", "1048576", "-message-max-bytes", "314572800", "-max-request-bytes", "419430400")
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "made", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b, err := commitlog.Open(dir, commitlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	topic, err := b.Topic("made")
	if err != nil {
		t.Fatal(err)
	}
	cfg := topic.Config()
	if cfg.RetentionTime != time.Hour || cfg.RetentionBytes != 1<<20 || cfg.MaxMessageBytes != 300<<20 {
		t.Fatalf("topic config %+v", cfg)
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-retention", "-5s"},
		{"-message-max-bytes", "10"},
		{"-sync", "sometimes"},
		{"-node-id", "-1"},
		{"-nope"},
		{"extra"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"-dir", t.TempDir()}, args...), &out, nil); err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
