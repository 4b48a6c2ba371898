package commitlog

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNoGoroutineLeak runs a broker with producers, a consumer blocked in
// Poll and background work, closes it, and checks that every goroutine it
// started is gone.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := context.Background()
	b, err := Open(t.TempDir(), Options{RetentionCheckInterval: time.Millisecond, CleanerBackoff: time.Millisecond})
	require.NoError(t, err)
	_, err = b.CreateTopic(ctx, "t", TopicConfig{Partitions: 3})
	require.NoError(t, err)
	_, err = b.CreateTopic(ctx, "c", TopicConfig{CleanupPolicy: CleanupCompact})
	require.NoError(t, err)
	p, err := b.NewProducer(ProducerConfig{Linger: time.Hour})
	require.NoError(t, err)
	for i := 0; i < 100; i++ {
		p.SendAsync(Record{Topic: "t", Value: []byte("x")}, nil)
	}
	_, err = p.Send(ctx, Record{Topic: "c", Key: []byte("k"), Value: []byte("v")})
	require.NoError(t, err)
	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"c"}, Reset: ResetLatest})
	require.NoError(t, err)
	polled := make(chan error)
	go func() {
		_, err := c.Poll(ctx)
		polled <- err
	}()
	require.NoError(t, b.Shutdown(ctx))
	require.ErrorIs(t, <-polled, ErrClosed)

	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
		time.Sleep(time.Millisecond) // polling for goroutines to exit, not synchronisation
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
