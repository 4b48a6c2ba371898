package commitlog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/layout"
)

func TestBrokerTopicsPersist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := Open(dir, Options{SyncPolicy: SyncNone})
	require.NoError(t, err)
	cfg := TopicConfig{Partitions: 3, RetentionBytes: 1 << 20, RetentionTime: time.Hour, SegmentBytes: 1 << 20, MaxMessageBytes: 4096, TimestampType: LogAppendTime}
	topic, err := b.CreateTopic(ctx, "orders", cfg)
	require.NoError(t, err)
	_, err = b.CreateTopic(ctx, "audit.log_v2", TopicConfig{})
	require.NoError(t, err)
	p, err := topic.Partition(2)
	require.NoError(t, err)
	off, err := p.Append(Record{Key: []byte("k"), Value: []byte("v")})
	require.NoError(t, err)
	require.Equal(t, int64(0), off)
	require.NoError(t, b.AddPartitions(ctx, "orders", 5))
	require.Equal(t, []string{"audit.log_v2", "orders"}, b.Topics())
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close is idempotent")
	_, err = b.Topic("orders")
	require.ErrorIs(t, err, ErrClosed)
	_, err = b.CreateTopic(ctx, "x", TopicConfig{})
	require.ErrorIs(t, err, ErrClosed)

	b, err = Open(dir, Options{SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer b.Close()
	d, err := b.DescribeTopic("orders")
	require.NoError(t, err)
	want := cfg.withDefaults(&b.opts)
	want.Partitions = 5
	require.Equal(t, want, d.Config)
	require.Len(t, d.Partitions, 5)
	require.Equal(t, int64(1), d.Partitions[2].EndOffset)
	require.Equal(t, 1, d.Partitions[2].Segments)
	require.Positive(t, d.Partitions[2].SizeBytes)
	topic, err = b.Topic("orders")
	require.NoError(t, err)
	p, err = topic.Partition(2)
	require.NoError(t, err)
	s, err := p.Read(0, 1<<20)
	require.NoError(t, err)
	defer s.Release()
	for r, err := range Records(s) {
		require.NoError(t, err)
		require.Equal(t, "v", string(r.Value))
		require.WithinDuration(t, time.Now(), r.Timestamp, time.Hour, "LogAppendTime stamped by the broker")
	}
}

func TestBrokerLock(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir, Options{})
	require.NoError(t, err)
	_, err = Open(dir, Options{})
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, b.Close())
	b, err = Open(dir, Options{})
	require.NoError(t, err, "the lock goes with Close")
	require.NoError(t, b.Close())
}

func TestBrokerBadInput(t *testing.T) {
	ctx := context.Background()
	b, err := Open(t.TempDir(), Options{SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer b.Close()
	for _, name := range []string{"", ".", "..", "a/b", "a b", "ü", strings.Repeat("x", 250)} {
		_, err := b.CreateTopic(ctx, name, TopicConfig{})
		require.ErrorIs(t, err, ErrInvalidTopic, "%q", name)
	}
	_, err = b.CreateTopic(ctx, strings.Repeat("x", 249), TopicConfig{})
	require.NoError(t, err)
	for _, cfg := range []TopicConfig{
		{Partitions: -1}, {ReplicationFactor: 3}, {RetentionBytes: -2}, {SegmentBytes: 10},
		{CleanupPolicy: "compacted"}, {DeleteRetention: -5}, {MinCleanableDirtyRatio: 2}, {MaxMessageBytes: 1 << 31}, {MinInsyncReplicas: 2}, {TimestampType: 7},
	} {
		_, err := b.CreateTopic(ctx, "t", cfg)
		require.ErrorIs(t, err, ErrInvalidConfig, "%+v", cfg)
	}
	_, err = b.CreateTopic(ctx, "t", TopicConfig{})
	require.NoError(t, err)
	_, err = b.CreateTopic(ctx, "t", TopicConfig{})
	require.ErrorIs(t, err, ErrTopicExists)
	_, err = b.Topic("nope")
	require.ErrorIs(t, err, ErrUnknownTopic)
	require.ErrorIs(t, b.DeleteTopic(ctx, "nope"), ErrUnknownTopic)
	require.ErrorIs(t, b.AddPartitions(ctx, "nope", 3), ErrUnknownTopic)
	require.ErrorIs(t, b.AddPartitions(ctx, "t", 1), ErrInvalidConfig)
	topic, _ := b.Topic("t")
	_, err = topic.Partition(1)
	require.ErrorIs(t, err, ErrUnknownPartition)
	_, err = topic.Partition(-1)
	require.ErrorIs(t, err, ErrUnknownPartition)
	p, _ := topic.Partition(0)
	_, err = p.Append(Record{Value: make([]byte, 2<<20)})
	require.ErrorIs(t, err, ErrRecordTooLarge)
	_, err = p.Read(5, 100)
	require.ErrorIs(t, err, ErrOffsetOutOfRange)
	_, err = Open(t.TempDir(), Options{DefaultPartitions: -1})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestBrokerDeleteTopic(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := Open(dir, Options{SyncPolicy: SyncNone})
	require.NoError(t, err)
	topic, err := b.CreateTopic(ctx, "gone", TopicConfig{Partitions: 2})
	require.NoError(t, err)
	p, _ := topic.Partition(0)
	_, err = p.Append(Record{Value: []byte("old")})
	require.NoError(t, err)
	held, err := p.Read(0, 100)
	require.NoError(t, err)
	require.NoError(t, b.DeleteTopic(ctx, "gone"))
	require.NotEmpty(t, held.Bytes, "a held slice survives deletion")
	held.Release()
	_, err = os.Stat(filepath.Join(dir, layout.PartitionDir("gone", 0)))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = p.Append(Record{Value: []byte("x")})
	require.ErrorIs(t, err, ErrClosed)

	// A crash that left a partition directory of a deleted topic behind.
	require.NoError(t, os.Mkdir(filepath.Join(dir, layout.PartitionDir("gone", 1)), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, layout.PartitionDir("gone", 1), layout.SegmentFile(0, layout.KindLog)), []byte("junk"), 0o644))
	require.NoError(t, b.Close())
	b, err = Open(dir, Options{SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer b.Close()
	require.Empty(t, b.Topics())
	_, err = os.Stat(filepath.Join(dir, layout.PartitionDir("gone", 1)))
	require.ErrorIs(t, err, os.ErrNotExist)
	topic, err = b.CreateTopic(ctx, "gone", TopicConfig{})
	require.NoError(t, err, "the name can be used again")
	p, _ = topic.Partition(0)
	require.Equal(t, int64(0), p.EndOffset(), "starting empty")
}

func TestBrokerAutoCreate(t *testing.T) {
	ctx := context.Background()
	b, err := Open(t.TempDir(), Options{SyncPolicy: SyncNone})
	require.NoError(t, err)
	_, err = b.topicForWrite(ctx, "fresh")
	require.ErrorIs(t, err, ErrUnknownTopic, "off by default")
	require.NoError(t, b.Close())

	b, err = Open(t.TempDir(), Options{SyncPolicy: SyncNone, AutoCreateTopics: true, DefaultPartitions: 4})
	require.NoError(t, err)
	defer b.Close()
	topic, err := b.topicForWrite(ctx, "fresh")
	require.NoError(t, err)
	require.Equal(t, int32(4), topic.NumPartitions())
	_, err = b.topicForWrite(ctx, "bad name")
	require.ErrorIs(t, err, ErrInvalidTopic)
}

// TestBrokerRetentionLoop checks that the broker's own background pass
// deletes expired segments, on a fake clock.
func TestBrokerRetentionLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, err := Open(t.TempDir(), Options{SyncPolicy: SyncNone, RetentionCheckInterval: time.Minute})
		require.NoError(t, err)
		defer b.Close()
		topic, err := b.CreateTopic(ctx, "events", TopicConfig{RetentionTime: time.Hour, SegmentBytes: 1024})
		require.NoError(t, err)
		p, _ := topic.Partition(0)
		for i := 0; i < 50; i++ {
			_, err := p.Append(Record{Value: make([]byte, 100)})
			require.NoError(t, err)
		}
		require.Greater(t, p.log.Segments(), 3)
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		require.Equal(t, int64(0), p.StartOffset(), "nothing expired yet")
		time.Sleep(31*time.Minute + time.Minute)
		synctest.Wait()
		require.Equal(t, int64(50), p.StartOffset(), "every record expired")
		require.Equal(t, int64(50), p.EndOffset())
	})
}

// TestBrokerCleaner checks that the broker's cleaner compacts a compacted
// topic once it is dirty enough, on a fake clock, and leaves retention to
// topics whose policy deletes.
func TestBrokerCleaner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, err := Open(t.TempDir(), Options{SyncPolicy: SyncNone, CleanerBackoff: time.Second, RetentionCheckInterval: time.Second})
		require.NoError(t, err)
		defer b.Close()
		topic, err := b.CreateTopic(ctx, "state", TopicConfig{CleanupPolicy: CleanupCompact, SegmentBytes: 1024, RetentionTime: time.Millisecond})
		require.NoError(t, err)
		p, _ := topic.Partition(0)
		for i := 0; i < 60; i++ {
			_, err := p.Append(Record{Key: []byte{byte('a' + i%3)}, Value: []byte{byte(i)}})
			require.NoError(t, err)
		}
		require.Greater(t, p.log.Segments(), 2)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		s, err := p.Read(p.StartOffset(), 1<<20)
		require.NoError(t, err)
		n := 0
		for off := p.StartOffset(); off < p.EndOffset(); {
			s, err := p.Read(off, 1<<20)
			require.NoError(t, err)
			if len(s.Bytes) == 0 {
				break
			}
			for range Records(s) {
				n++
			}
			off = s.NextOffset
			s.Release()
		}
		s.Release()
		require.Less(t, n, 20, "compacted: only the active segment and one record per key remain")
		require.Equal(t, int64(0), p.StartOffset(), "a compact-only topic is not deleted by retention")
	})
}

func TestBrokerInitProducerID(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	seen := map[int64]bool{}
	for round := 0; round < 3; round++ {
		b, err := Open(dir, Options{SyncPolicy: SyncNone})
		require.NoError(t, err)
		for i := 0; i < 5; i++ {
			id, epoch, err := b.InitProducerID(ctx)
			require.NoError(t, err)
			require.Zero(t, epoch)
			require.False(t, seen[id], "id %d handed out twice", id)
			seen[id] = true
		}
		require.NoError(t, b.Close())
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, producerIDsFile), []byte("junk"), 0o644))
	_, err := Open(dir, Options{})
	require.ErrorIs(t, err, ErrCorruptLog)
}

func TestBrokerInternalTopic(t *testing.T) {
	ctx := context.Background()
	b, err := Open(t.TempDir(), Options{SyncPolicy: SyncNone, OffsetsTopicPartitions: 2})
	require.NoError(t, err)
	defer b.Close()
	_, err = b.CreateTopic(ctx, "t", TopicConfig{})
	require.NoError(t, err)
	require.NoError(t, b.Groups().CommitOffsets(ctx, CommitRequest{Group: "g", Generation: -1,
		Offsets: map[string]map[int32]OffsetAndMetadata{"t": {0: {Offset: 0}}}}))
	require.ErrorIs(t, b.DeleteTopic(ctx, offsetsTopic), ErrInvalidTopic)
	require.ErrorIs(t, b.AddPartitions(ctx, offsetsTopic, 10), ErrInvalidTopic)
	require.True(t, IsInternalTopic(offsetsTopic))
	require.False(t, IsInternalTopic("t"))
	_, err = b.Topic(offsetsTopic)
	require.NoError(t, err)
}

// TestDeleteTopicForgetsOffsets checks that deleting a topic removes the
// offsets groups committed for it, durably, so that a topic created again
// under the name does not inherit them.
func TestDeleteTopicForgetsOffsets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := Open(dir, Options{SyncPolicy: SyncNone, OffsetsTopicPartitions: 2})
	require.NoError(t, err)
	for _, name := range []string{"gone", "kept"} {
		_, err = b.CreateTopic(ctx, name, TopicConfig{Partitions: 2})
		require.NoError(t, err)
	}
	for _, g := range []string{"g1", "g2"} {
		require.NoError(t, b.Groups().CommitOffsets(ctx, CommitRequest{Group: g, Generation: -1,
			Offsets: map[string]map[int32]OffsetAndMetadata{"gone": {0: {Offset: 5}, 1: {Offset: 7}}, "kept": {0: {Offset: 3}}}}))
	}
	require.NoError(t, b.DeleteTopic(ctx, "gone"))
	check := func(b *Broker) {
		for _, g := range []string{"g1", "g2"} {
			got, err := b.Groups().FetchOffsets(ctx, g, nil)
			require.NoError(t, err)
			require.NotContains(t, got, "gone")
			require.Equal(t, int64(3), got["kept"][0].Offset)
		}
	}
	check(b)
	require.NoError(t, b.Close())
	b, err = Open(dir, Options{SyncPolicy: SyncNone, OffsetsTopicPartitions: 2})
	require.NoError(t, err)
	defer b.Close()
	check(b)
}
