package commitlog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog/internal/batch"
)

// offsets builds a commit's offsets of one topic.
func offsets(topic string, byPartition map[int32]int64) map[string]map[int32]OffsetAndMetadata {
	out := map[int32]OffsetAndMetadata{}
	for p, o := range byPartition {
		out[p] = OffsetAndMetadata{Offset: o, LeaderEpoch: -1}
	}
	return map[string]map[int32]OffsetAndMetadata{topic: out}
}

// TestCommitFetchOffsets checks commits from outside group management,
// fetching all or some partitions, and that bad partitions fail alone.
func TestCommitFetchOffsets(t *testing.T) {
	ctx := context.Background()
	b := groupTestBroker(t, t.TempDir(), Options{}, 4)
	defer b.Close()
	gc := b.Groups()
	require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "g", Generation: -1, Offsets: map[string]map[int32]OffsetAndMetadata{
		"events": {0: {Offset: 10, LeaderEpoch: 3, Metadata: "note"}, 1: {Offset: 20, LeaderEpoch: -1}},
	}}))
	got, err := gc.FetchOffsets(ctx, "g", nil)
	require.NoError(t, err)
	require.Len(t, got["events"], 2)
	require.Equal(t, int64(10), got["events"][0].Offset)
	require.Equal(t, int32(3), got["events"][0].LeaderEpoch)
	require.Equal(t, "note", got["events"][0].Metadata)
	require.WithinDuration(t, time.Now(), got["events"][0].CommitTime, time.Minute)
	require.Equal(t, int32(-1), got["events"][1].LeaderEpoch)
	got, err = gc.FetchOffsets(ctx, "g", map[string][]int32{"events": {1, 2}, "other": {0}})
	require.NoError(t, err)
	require.Equal(t, map[int32]int64{1: 20}, offsetsOf(got["events"]), "uncommitted partitions are left out")
	require.NotContains(t, got, "other")
	require.Equal(t, []GroupListing{{Group: "g", State: GroupEmpty}}, gc.ListGroups(), "a group of commits only")

	// A commit overwrites; bad partitions fail alone.
	err = gc.CommitOffsets(ctx, CommitRequest{Group: "g", Generation: -1, Offsets: map[string]map[int32]OffsetAndMetadata{
		"events":  {0: {Offset: 11}, 1: {Offset: -1}, 7: {Offset: 1}, 2: {Offset: 5, Metadata: strings.Repeat("x", DefaultOffsetMetadataMaxBytes+1)}},
		"missing": {0: {Offset: 1}},
	}})
	var pe *PartitionErrors
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, pe.Errs["events"][1], ErrOffsetOutOfRange)
	require.ErrorIs(t, pe.Errs["events"][7], ErrUnknownPartition)
	require.ErrorIs(t, pe.Errs["events"][2], ErrOffsetMetadataTooLarge)
	require.ErrorIs(t, pe.Errs["missing"][0], ErrUnknownTopic)
	require.ErrorIs(t, err, ErrUnknownTopic, "errors.Is sees every partition's error")
	require.NotContains(t, pe.Errs["events"], int32(0))
	require.Contains(t, err.Error(), "4 partitions failed")
	got, err = gc.FetchOffsets(ctx, "g", nil)
	require.NoError(t, err)
	require.Equal(t, map[int32]int64{0: 11, 1: 20}, offsetsOf(got["events"]), "the good partition committed, nothing else changed")
	require.NotContains(t, got, "missing")
}

func offsetsOf(m map[int32]OffsetAndMetadata) map[int32]int64 {
	out := map[int32]int64{}
	for p, om := range m {
		out[p] = om.Offset
	}
	return out
}

// TestCommitOneBatch checks that a commit of many partitions is one record
// batch in the group's partition of __consumer_offsets, in Kafka's format.
func TestCommitOneBatch(t *testing.T) {
	ctx := context.Background()
	b := groupTestBroker(t, t.TempDir(), Options{OffsetsTopicPartitions: 50}, 20)
	defer b.Close()
	byPartition := map[int32]int64{}
	for p := range int32(20) {
		byPartition[p] = int64(p) * 10
	}
	require.NoError(t, b.Groups().CommitOffsets(ctx, CommitRequest{Group: "billing", Generation: -1, Offsets: offsets("events", byPartition)}))
	topic, err := b.Topic(offsetsTopic)
	require.NoError(t, err)
	cfg := topic.Config()
	require.Equal(t, int32(50), cfg.Partitions)
	require.Equal(t, CleanupCompact, cfg.CleanupPolicy)
	p, err := topic.Partition(9) // Kafka's partition of "billing" among 50
	require.NoError(t, err)
	require.Equal(t, int64(20), p.EndOffset())
	s, err := p.Read(0, 1<<20)
	require.NoError(t, err)
	defer s.Release()
	h, err := batch.ReadHeader(s.Bytes)
	require.NoError(t, err)
	require.Equal(t, len(s.Bytes), h.Size(), "one batch")
	seen := map[int32]int64{}
	for r, err := range Records(s) {
		require.NoError(t, err)
		var k kmsg.OffsetCommitKey
		require.NoError(t, k.ReadFrom(r.Key))
		var v kmsg.OffsetCommitValue
		require.NoError(t, v.ReadFrom(r.Value))
		require.Equal(t, "billing", k.Group)
		require.Equal(t, int16(1), k.Version)
		require.Equal(t, int16(3), v.Version)
		seen[k.Partition] = v.Offset
	}
	require.Equal(t, byPartition, seen)
}

// TestOffsetsSurviveRestart checks that committed offsets and group
// metadata are read back when the broker reopens: a stable group's members
// carry on with their generation.
func TestOffsetsSurviveRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		opts := Options{OffsetsTopicPartitions: 3, GroupInitialRebalanceDelay: 10 * time.Millisecond} // SyncGroupCommit
		b, err := Open(dir, opts)
		require.NoError(t, err)
		_, err = b.CreateTopic(ctx, "events", TopicConfig{Partitions: 4})
		require.NoError(t, err)
		gc := b.Groups()
		res := joinAll(t, gc, consumerJoin("c", "", "", "events"), consumerJoin("c", "", "static-1", "events"))
		asg := syncAll(t, b, "c", res)
		member := res[0]
		require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "c", Generation: member.Generation, MemberID: member.MemberID, Offsets: offsets("events", map[int32]int64{0: 5, 1: 6})}))
		require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "simple", Generation: -1, Offsets: offsets("events", map[int32]int64{3: 42})}))
		require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "simple", Generation: -1, Offsets: offsets("events", map[int32]int64{3: 43})}))
		require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "doomed", Generation: -1, Offsets: offsets("events", map[int32]int64{0: 1})}))
		require.Equal(t, []error{nil}, gc.DeleteGroups(ctx, "doomed"))
		beforeC, err := gc.FetchOffsets(ctx, "c", nil)
		require.NoError(t, err)
		beforeSimple, err := gc.FetchOffsets(ctx, "simple", nil)
		require.NoError(t, err)
		descBefore, err := gc.DescribeGroup("c")
		require.NoError(t, err)
		require.NoError(t, b.Close())

		b, err = Open(dir, opts)
		require.NoError(t, err)
		defer b.Close()
		gc = b.Groups()
		afterC, err := gc.FetchOffsets(ctx, "c", nil)
		require.NoError(t, err)
		require.Equal(t, beforeC, afterC)
		afterSimple, err := gc.FetchOffsets(ctx, "simple", nil)
		require.NoError(t, err)
		require.Equal(t, beforeSimple, afterSimple)
		require.Equal(t, int64(43), afterSimple["events"][3].Offset)
		_, err = gc.DescribeGroup("doomed")
		require.ErrorIs(t, err, ErrGroupIDNotFound, "deleted before the restart")
		descAfter, err := gc.DescribeGroup("c")
		require.NoError(t, err)
		require.Equal(t, descBefore, descAfter, "the group and its members as they were")
		for _, r := range res {
			require.NoError(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "c", Generation: r.Generation, MemberID: r.MemberID}),
				"the members carry on without a rebalance")
			raw, err := gc.Sync(ctx, SyncRequest{Group: "c", Generation: r.Generation, MemberID: r.MemberID})
			require.NoError(t, err)
			a, err := DecodeAssignment(raw)
			require.NoError(t, err)
			require.Equal(t, asg[r.MemberID], a)
		}
		require.Equal(t, []GroupListing{{Group: "c", ProtocolType: "consumer", State: GroupStable}, {Group: "simple", State: GroupEmpty}}, gc.ListGroups())
	})
}

// TestOffsetsLoadSkipsUnknownRecords checks that records of key versions
// the coordinator does not know are skipped on load, and that a known
// record that does not decode fails the open.
func TestOffsetsLoadSkipsUnknownRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := groupTestBroker(t, dir, Options{}, 1)
	require.NoError(t, b.Groups().CommitOffsets(ctx, CommitRequest{Group: "g", Generation: -1, Offsets: offsets("events", map[int32]int64{0: 7})}))
	topic, err := b.Topic(offsetsTopic)
	require.NoError(t, err)
	p, err := topic.Partition(partitionFor("g", 3))
	require.NoError(t, err)
	_, err = p.Append(Record{Key: []byte{0, 3, 'x'}, Value: []byte("a newer kind of record")})
	require.NoError(t, err)
	require.NoError(t, b.Close())

	b = groupTestBroker(t, dir, Options{}, 0)
	got, err := b.Groups().FetchOffsets(ctx, "g", nil)
	require.NoError(t, err)
	require.Equal(t, int64(7), got["events"][0].Offset)
	topic, err = b.Topic(offsetsTopic)
	require.NoError(t, err)
	p, err = topic.Partition(0)
	require.NoError(t, err)
	_, err = p.Append(Record{Key: []byte{0, 1, 0, 9, 'x'}, Value: []byte{0}})
	require.NoError(t, err)
	require.NoError(t, b.Close())

	_, err = Open(dir, Options{SyncPolicy: SyncNone})
	require.ErrorIs(t, err, ErrCorruptLog)
}

// TestDeleteGroup checks that deleting a group removes it and its offsets
// for good, and that a group with members cannot be deleted.
func TestDeleteGroup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := groupTestBroker(t, dir, Options{}, 2)
	gc := b.Groups()
	require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "old", Generation: -1, Offsets: offsets("events", map[int32]int64{0: 1, 1: 2})}))
	r, err := gc.Join(ctx, consumerJoin("busy", "", "", "events"))
	require.NoError(t, err)
	errs := gc.DeleteGroups(ctx, "old", "busy", "never")
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], ErrNonEmptyGroup)
	require.ErrorIs(t, errs[2], ErrGroupIDNotFound)
	got, err := gc.FetchOffsets(ctx, "old", nil)
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = gc.DescribeGroup("old")
	require.ErrorIs(t, err, ErrGroupIDNotFound)
	_, err = gc.Leave(ctx, "busy", MemberIdentity{MemberID: r.MemberID})
	require.NoError(t, err)
	require.Equal(t, []error{nil}, gc.DeleteGroups(ctx, "busy"), "empty once its member left")
	require.Empty(t, gc.ListGroups())

	// A new group of the same name starts from nothing.
	require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "old", Generation: -1, Offsets: offsets("events", map[int32]int64{1: 9})}))
	require.NoError(t, b.Close())
	b = groupTestBroker(t, dir, Options{}, 0)
	defer b.Close()
	got, err = b.Groups().FetchOffsets(ctx, "old", nil)
	require.NoError(t, err)
	require.Equal(t, map[int32]int64{1: 9}, offsetsOf(got["events"]), "the tombstones hold across a restart")
	_, err = b.Groups().DescribeGroup("busy")
	require.ErrorIs(t, err, ErrGroupIDNotFound)
}

// TestDeleteOffsets checks OffsetDelete: allowed for an empty group, and
// for a consumer group's topics it does not subscribe to.
func TestDeleteOffsets(t *testing.T) {
	ctx := context.Background()
	b := groupTestBroker(t, t.TempDir(), Options{}, 2)
	defer b.Close()
	_, err := b.CreateTopic(ctx, "old", TopicConfig{Partitions: 1})
	require.NoError(t, err)
	gc := b.Groups()
	require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "g", Generation: -1, Offsets: map[string]map[int32]OffsetAndMetadata{
		"events": {0: {Offset: 1}, 1: {Offset: 2}}, "old": {0: {Offset: 3}},
	}}))
	require.NoError(t, gc.DeleteOffsets(ctx, "g", map[string][]int32{"events": {0, 5}}))
	got, err := gc.FetchOffsets(ctx, "g", nil)
	require.NoError(t, err)
	require.Equal(t, map[int32]int64{1: 2}, offsetsOf(got["events"]))

	r, err := gc.Join(ctx, consumerJoin("g", "", "", "events"))
	require.NoError(t, err)
	syncAll(t, b, "g", []JoinResult{r})
	err = gc.DeleteOffsets(ctx, "g", map[string][]int32{"events": {1}, "old": {0}})
	var pe *PartitionErrors
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, pe.Errs["events"][1], ErrGroupSubscribedToTopic)
	require.NotContains(t, pe.Errs, "old")
	got, err = gc.FetchOffsets(ctx, "g", nil)
	require.NoError(t, err)
	require.Equal(t, map[int32]int64{1: 2}, offsetsOf(got["events"]))
	require.NotContains(t, got, "old", "the topic it does not consume went")
}

// TestOffsetsExpiry checks offsets.retention on a fake clock: offsets of a
// group without members expire the retention time after their commit;
// those of a consumer group, the retention time after it emptied; a stable
// group keeps the offsets of topics it consumes; groups left with nothing
// are deleted.
func TestOffsetsExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{OffsetsRetention: time.Hour, OffsetsRetentionCheckInterval: time.Minute}, 2)
		defer b.Close()
		_, err := b.CreateTopic(ctx, "old", TopicConfig{Partitions: 1})
		require.NoError(t, err)
		gc := b.Groups()
		fetch := func(group string) map[int32]int64 {
			got, err := gc.FetchOffsets(ctx, group, nil)
			require.NoError(t, err)
			out := offsetsOf(got["events"])
			for p, om := range got["old"] {
				out[100+p] = om.Offset
			}
			return out
		}
		start := time.Now()
		require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "simple", Generation: -1, Offsets: offsets("events", map[int32]int64{0: 1, 1: 1})}))
		require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "consumer", Generation: -1, Offsets: map[string]map[int32]OffsetAndMetadata{
			"events": {0: {Offset: 5}}, "old": {0: {Offset: 6}},
		}}))
		r, err := gc.Join(ctx, consumerJoin("consumer", "", "", "events"))
		require.NoError(t, err)
		syncAll(t, b, "consumer", []JoinResult{r})
		heartbeat := func(until time.Duration) {
			for time.Since(start) < until {
				time.Sleep(3 * time.Second)
				require.NoError(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "consumer", Generation: r.Generation, MemberID: r.MemberID}))
			}
		}

		heartbeat(30 * time.Minute)
		require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "simple", Generation: -1, Offsets: offsets("events", map[int32]int64{1: 2})}))
		heartbeat(62 * time.Minute)
		require.Equal(t, map[int32]int64{1: 2}, fetch("simple"), "partition 0 expired an hour after its commit")
		require.Equal(t, map[int32]int64{0: 5}, fetch("consumer"), "the stable group kept the topic it consumes")

		heartbeat(92 * time.Minute)
		require.Empty(t, fetch("simple"))
		_, err = gc.DescribeGroup("simple")
		require.ErrorIs(t, err, ErrGroupIDNotFound, "nothing left: deleted")

		heartbeat(2 * time.Hour)
		_, err = gc.Leave(ctx, "consumer", MemberIdentity{MemberID: r.MemberID})
		require.NoError(t, err)
		time.Sleep(59 * time.Minute)
		require.Equal(t, map[int32]int64{0: 5}, fetch("consumer"), "an hour after the group emptied, not after the commit")
		time.Sleep(2 * time.Minute)
		require.Empty(t, fetch("consumer"))
		require.Empty(t, gc.ListGroups())
	})
}

// TestPartitionForJavaHash checks the offsets partition of a group against
// values of Java's String.hashCode, Integer.MIN_VALUE and surrogate pairs
// included.
func TestPartitionForJavaHash(t *testing.T) {
	for _, c := range []struct {
		group string
		hash  int32
		part  int32
	}{
		{"", 0, 0},
		{"a", 97, 47},
		{"hello", 99162322, 22},
		{"consumer-group", -1738392088, 38},
		{"billing", -109829509, 9},
		{"polygenelubricants", -2147483648, 0},
		{"grüße", 98768023, 23},
		{"😀x", 54959989, 39},
	} {
		require.Equal(t, c.hash, javaStringHash(c.group), c.group)
		require.Equal(t, c.part, partitionFor(c.group, 50), c.group)
	}
}

// TestOffsetsTopicDefaults checks that the zero Options give Kafka's 50
// partitions, and that the topic is made on first use only.
func TestOffsetsTopicDefaults(t *testing.T) {
	ctx := context.Background()
	b, err := Open(t.TempDir(), Options{SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer b.Close()
	_, err = b.CreateTopic(ctx, "events", TopicConfig{})
	require.NoError(t, err)
	require.Equal(t, []string{"events"}, b.Topics(), "not made before it is needed")
	require.NoError(t, b.Groups().CommitOffsets(ctx, CommitRequest{Group: "g", Generation: -1, Offsets: offsets("events", map[int32]int64{0: 1})}))
	d, err := b.DescribeTopic(offsetsTopic)
	require.NoError(t, err)
	require.Len(t, d.Partitions, DefaultOffsetsTopicPartitions)
}

// BenchmarkCommitOffsets measures a commit of 100 partitions, with
// SyncNone: one record batch appended to __consumer_offsets.
func BenchmarkCommitOffsets(b *testing.B) {
	for _, n := range []int32{1, 100} {
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) {
			ctx := context.Background()
			br := groupTestBroker(b, b.TempDir(), Options{}, n)
			defer br.Close()
			gc := br.Groups()
			req := CommitRequest{Group: "bench", Generation: -1, Offsets: map[string]map[int32]OffsetAndMetadata{"events": {}}}
			for p := range n {
				req.Offsets["events"][p] = OffsetAndMetadata{Offset: 1, LeaderEpoch: -1}
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := gc.CommitOffsets(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestOffsetsCompacted checks that __consumer_offsets reads back the same
// after the cleaner compacted it: latest offsets kept, deleted groups
// still gone.
func TestOffsetsCompacted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := groupTestBroker(t, dir, Options{OffsetsTopicPartitions: 1}, 2)
	gc := b.Groups()
	for i := range int64(50) {
		require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "kept", Generation: -1, Offsets: offsets("events", map[int32]int64{0: i, 1: 100 + i})}))
	}
	require.NoError(t, gc.CommitOffsets(ctx, CommitRequest{Group: "gone", Generation: -1, Offsets: offsets("events", map[int32]int64{0: 1})}))
	require.Equal(t, []error{nil}, gc.DeleteGroups(ctx, "gone"))
	topic, err := b.Topic(offsetsTopic)
	require.NoError(t, err)
	p, err := topic.Partition(0)
	require.NoError(t, err)
	before := p.EndOffset()
	require.NoError(t, p.log.Roll())
	stats, err := b.CompactTopics(true)
	require.NoError(t, err)
	require.Positive(t, stats.RecordsRemoved)
	require.NoError(t, b.Close())

	b = groupTestBroker(t, dir, Options{OffsetsTopicPartitions: 1}, 0)
	defer b.Close()
	got, err := b.Groups().FetchOffsets(ctx, "kept", nil)
	require.NoError(t, err)
	require.Equal(t, map[int32]int64{0: 49, 1: 149}, offsetsOf(got["events"]))
	_, err = b.Groups().DescribeGroup("gone")
	require.ErrorIs(t, err, ErrGroupIDNotFound)
	topic, err = b.Topic(offsetsTopic)
	require.NoError(t, err)
	p, err = topic.Partition(0)
	require.NoError(t, err)
	require.Equal(t, before, p.EndOffset())
}
