package commitlogtest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/commitlogtest"
)

func TestThreeLines(t *testing.T) {
	b := commitlogtest.NewBroker(t, commitlogtest.WithTopic("events", commitlog.TopicConfig{Partitions: 2}))
	sent := commitlogtest.Produce(t, b,
		commitlog.Record{Topic: "events", Key: []byte("a"), Value: []byte("1")},
		commitlog.Record{Topic: "events", Key: []byte("b"), Value: []byte("2")},
		commitlog.Record{Topic: "events", Key: []byte("a"), Value: []byte("3")},
	)
	require.Equal(t, sent[0].Partition, sent[2].Partition, "same key, same partition")
	got := commitlogtest.Collect(t, b, "events", 3)
	byKey := map[string][]string{}
	for _, r := range got {
		byKey[string(r.Key)] = append(byKey[string(r.Key)], string(r.Value))
	}
	require.Equal(t, map[string][]string{"a": {"1", "3"}, "b": {"2"}}, byKey)

	commitlogtest.CreateTopic(t, b, "more", 1)
	require.Equal(t, []string{"events", "more"}, b.Topics())
}

// fakeTB records a failure instead of failing, to test the failure paths.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	panic(f)
}

func TestFailures(t *testing.T) {
	run := func(fn func(tb commitlogtest.TB)) string {
		f := &fakeTB{TB: t}
		func() {
			defer func() {
				if r := recover(); r != nil && r != f {
					panic(r)
				}
			}()
			fn(f)
		}()
		return f.failed
	}
	b := commitlogtest.NewBroker(t)
	require.Contains(t, run(func(tb commitlogtest.TB) { commitlogtest.CreateTopic(tb, b, "bad name", 1) }), "invalid topic")
	require.Contains(t, run(func(tb commitlogtest.TB) {
		commitlogtest.Produce(tb, b, commitlog.Record{Topic: "missing", Value: []byte("x")})
	}), "unknown topic")
	commitlogtest.CreateTopic(t, b, "empty", 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Contains(t, run(func(tb commitlogtest.TB) { commitlogtest.CollectContext(ctx, tb, b, "empty", 1) }), "got 0")
}
