package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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
	// to. Idempotent writes need InitProducerId, not served yet.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr.String()), kgo.DisableIdempotentWrite(),
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

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{
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
