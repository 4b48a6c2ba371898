package commitlogtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/commitlogtest"
)

// TestNewKafka produces with franz-go over the Kafka protocol and reads
// the records back in-process, and the reverse.
func TestNewKafka(t *testing.T) {
	b, addr := commitlogtest.NewKafka(t, commitlogtest.WithTopic("orders", commitlog.TopicConfig{Partitions: 2}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Key: []byte("k1"), Value: []byte("from kafka")}).FirstErr())

	got := commitlogtest.Collect(t, b, "orders", 1)
	require.Equal(t, "from kafka", string(got[0].Value))
	require.Equal(t, "k1", string(got[0].Key))

	commitlogtest.Produce(t, b, commitlog.Record{Topic: "orders", Key: []byte("k2"), Value: []byte("in process")})
	seen := map[string]string{}
	for len(seen) < 2 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Key)] = string(r.Value) })
	}
	require.Equal(t, map[string]string{"k1": "from kafka", "k2": "in process"}, seen)
}
