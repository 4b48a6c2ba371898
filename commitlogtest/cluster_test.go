package commitlogtest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/cluster"
)

// TestClusterReplicates appends through the leader of a partition with
// three replicas, checks that acks=all returns once every replica has the
// records, then stops the leader and keeps appending through the new one.
func TestClusterReplicates(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testClusterReplicates(t, NewCluster(t, 3)) })
	t.Run("kafka", func(t *testing.T) { testClusterReplicates(t, NewCluster(t, 3, WithKafkaListeners())) })
}

func testClusterReplicates(t *testing.T, c *Cluster) {
	c.CreateTopic("t", 1, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	appendVia := func(value string) int64 {
		t.Helper()
		for {
			id, err := c.WaitLeader(ctx, "t", 0)
			if err != nil {
				t.Fatal(err)
			}
			p := partitionOf(t, c.Broker(id), "t", 0)
			off, err := p.Append(commitlog.Record{Value: []byte(value)})
			if err == nil {
				return off
			}
			t.Logf("append %s via broker %d: %v", value, id, err)
			if ctx.Err() != nil {
				t.Fatal(ctx.Err())
			}
		}
	}
	for i := range 10 {
		if off := appendVia("a"); off != int64(i) {
			t.Fatalf("offset %d, want %d", off, i)
		}
	}
	leader := c.Leader("t", 0)
	for id := int32(1); id <= 3; id++ {
		p := partitionOf(t, c.Broker(id), "t", 0)
		if id == leader && p.HighWatermark() != 10 {
			t.Errorf("leader %d: high watermark %d, want 10", id, p.HighWatermark())
		}
		if p.LogEndOffset() < 10 && id != leader {
			t.Logf("follower %d: log end %d (catching up)", id, p.LogEndOffset())
		}
	}
	c.Stop(leader)
	if off := appendVia("b"); off != 10 {
		t.Fatalf("offset after failover %d, want 10", off)
	}
	if now := c.Leader("t", 0); now == leader {
		t.Fatalf("stopped broker %d still leads", leader)
	}
	c.Start(leader)
}

func partitionOf(t *testing.T, b *commitlog.Broker, topic string, id int32) *commitlog.Partition {
	t.Helper()
	if b == nil {
		t.Fatal("broker not running")
	}
	tp, err := b.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tp.Partition(id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClusterDeleteTopic deletes a replicated topic through one broker:
// every broker drops it, and a topic of the same name created afterwards
// starts empty and replicates.
func TestClusterDeleteTopic(t *testing.T) {
	c := NewCluster(t, 3)
	c.CreateTopic("t", 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := c.WaitLeader(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := partitionOf(t, c.Broker(id), "t", 0).Append(commitlog.Record{Value: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Broker(1).DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	for id := int32(1); id <= 3; id++ {
		for {
			if _, err := c.Broker(id).Topic("t"); errors.Is(err, commitlog.ErrUnknownTopic) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("broker %d still has the deleted topic", id)
			}
			time.Sleep(time.Millisecond)
		}
	}
	c.CreateTopic("t", 1, 3)
	if id, err = c.WaitLeader(ctx, "t", 0); err != nil {
		t.Fatal(err)
	}
	off, err := partitionOf(t, c.Broker(id), "t", 0).Append(commitlog.Record{Value: []byte("new")})
	if err != nil || off != 0 {
		t.Fatalf("append to the topic created again: offset %d, %v; want 0", off, err)
	}
}

// TestClusterFollowerBehindLogStart stops a follower, lets the leader's
// retention delete what the follower lacks, and starts it again: its log
// ends below the leader's start, so it empties its log and restarts it at
// the leader's start offset (Kafka's truncateFullyAndStartAt), then
// catches up.
func TestClusterFollowerBehindLogStart(t *testing.T) {
	c := NewCluster(t, 3)
	c.CreateTopicConfig("t", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 3, SegmentBytes: 1024, RetentionBytes: 2048})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader, err := c.WaitLeader(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	follower := leader%3 + 1
	c.Stop(follower)
	lp := partitionOf(t, c.Broker(leader), "t", 0)
	value := make([]byte, 200)
	for range 50 {
		if _, err := lp.Append(commitlog.Record{Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Broker(leader).EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if lp.StartOffset() == 0 {
		t.Fatal("retention deleted nothing")
	}
	c.Start(follower)
	for { // the controller's events reopen the topic
		if _, err := c.Broker(follower).Topic("t"); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the restarted follower did not reopen the topic")
		}
		time.Sleep(time.Millisecond)
	}
	fp := partitionOf(t, c.Broker(follower), "t", 0)
	for fp.LogEndOffset() != lp.LogEndOffset() || fp.StartOffset() < lp.StartOffset() {
		if ctx.Err() != nil {
			t.Fatalf("follower [%d, %d), leader [%d, %d)", fp.StartOffset(), fp.LogEndOffset(), lp.StartOffset(), lp.LogEndOffset())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestClusterTopicConfig: a topic's configuration, given when created
// through one broker and changed live through another, is the same on
// every broker, including one restarted afterwards.
func TestClusterTopicConfig(t *testing.T) {
	c := NewCluster(t, 3)
	c.CreateTopicConfig("t", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 3, CleanupPolicy: commitlog.CleanupCompact})
	c.CreateTopic("barrier", 1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, stopWatch := c.Controller().Watch(-1)
	defer stopWatch()
	if _, err := c.Broker(2).AlterTopicConfig(ctx, "t", func(cfg *commitlog.TopicConfig) error {
		cfg.RetentionTime = time.Hour
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitConfig := func(id int32) {
		for {
			if tp, err := c.Broker(id).Topic("t"); err == nil && tp.Config().RetentionTime == time.Hour {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("broker %d did not take the change", id)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for id := int32(1); id <= 3; id++ {
		waitConfig(id)
	}
	// The change went to the controller once: the brokers that got it
	// from the controller applied it without sending it back. A change to
	// another topic marks where to stop counting.
	if err := c.Controller().SetTopicConfig(ctx, "barrier", nil); err != nil {
		t.Fatal(err)
	}
	changes := 0
	for ev := range events {
		if ev.Kind == cluster.TopicConfigChanged && ev.Topic == "barrier" {
			break
		}
		if ev.Kind == cluster.TopicConfigChanged {
			changes++
		}
	}
	if changes != 1 {
		t.Fatalf("%d configuration changes reached the controller for one AlterTopicConfig", changes)
	}
	c.Stop(3)
	c.Start(3)
	for id := int32(1); id <= 3; id++ {
		for {
			if tp, err := c.Broker(id).Topic("t"); err == nil {
				cfg := tp.Config()
				if cfg.CleanupPolicy == commitlog.CleanupCompact && cfg.RetentionTime == time.Hour {
					break
				}
			}
			if ctx.Err() != nil {
				tp, _ := c.Broker(id).Topic("t")
				t.Fatalf("broker %d: topic %+v", id, tp)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestClusterTopicDeletedWhileDown: a topic deleted while a broker was
// stopped is gone from that broker, files included, when it starts again.
func TestClusterTopicDeletedWhileDown(t *testing.T) {
	c := NewCluster(t, 3)
	c.CreateTopic("t", 1, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := c.nodes[3].dir
	c.Stop(3)
	if err := c.Broker(1).DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	c.Start(3)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "t-") {
			t.Fatalf("the deleted topic's %s is still in the broker's directory", e.Name())
		}
	}
	if _, err := c.Broker(3).Topic("t"); !errors.Is(err, commitlog.ErrUnknownTopic) {
		t.Fatalf("Topic: %v, want ErrUnknownTopic", err)
	}
}

// TestClusterHighWatermarkCheckpoint: a broker restarted while cut off
// from its leader starts its replicas from the high watermark it
// checkpointed when it closed, not from the start of the log, so its
// consumers see the committed records at once.
func TestClusterHighWatermarkCheckpoint(t *testing.T) {
	c := NewCluster(t, 3)
	c.CreateTopic("t", 1, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader, err := c.WaitLeader(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	lp := partitionOf(t, c.Broker(leader), "t", 0)
	for range 5 {
		if _, err := lp.Append(commitlog.Record{Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	follower := leader%3 + 1
	fp := partitionOf(t, c.Broker(follower), "t", 0)
	for fp.HighWatermark() < 5 { // the follower learns the HW with its fetches
		if ctx.Err() != nil {
			t.Fatalf("follower high watermark %d", fp.HighWatermark())
		}
		time.Sleep(time.Millisecond)
	}
	c.Stop(follower)
	var others []int32
	for id := int32(1); id <= 3; id++ {
		if id != follower {
			others = append(others, id)
		}
	}
	c.Network().Partition([]int32{follower}, others)
	c.Start(follower)
	for {
		if tp, err := c.Broker(follower).Topic("t"); err == nil {
			if p, err := tp.Partition(0); err == nil && p.HighWatermark() == 5 {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatal("the restarted follower did not start from its checkpointed high watermark")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestClusterAlterMinISR raises a topic's min.insync.replicas live: with
// one follower stopped, acks=all writes then fail with
// ErrNotEnoughReplicas on the leader, whichever broker took the change.
func TestClusterAlterMinISR(t *testing.T) {
	c := NewCluster(t, 3)
	c.CreateTopicConfig("t", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader, err := c.WaitLeader(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(leader%3 + 1)
	lp := partitionOf(t, c.Broker(leader), "t", 0)
	if _, err := lp.Append(commitlog.Record{Value: []byte("min 1")}); err != nil {
		t.Fatal(err)
	}
	other := (leader+1)%3 + 1 // the running follower
	if _, err := c.Broker(other).AlterTopicConfig(ctx, "t", func(cfg *commitlog.TopicConfig) error {
		cfg.MinInsyncReplicas = 3
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := lp.Append(commitlog.Record{Value: []byte("min 3")})
		if errors.Is(err, commitlog.ErrNotEnoughReplicas) {
			return
		}
		if err != nil && !errors.Is(err, commitlog.ErrNotLeader) {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("acks=all append with 2 of 3 replicas in sync after raising min.insync.replicas to 3: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}
