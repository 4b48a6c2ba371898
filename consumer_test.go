package commitlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/layout"
)

// consumerTestTimeout bounds every wait in these tests: it turns a hang
// into a failure and synchronises nothing.
const consumerTestTimeout = 20 * time.Second

// consumerTestBroker opens a broker with SyncNone in a temporary directory
// and creates the topic with the given configuration.
func consumerTestBroker(t testing.TB, topic string, cfg TopicConfig) (*Broker, *Topic) {
	t.Helper()
	b, err := Open(t.TempDir(), Options{SyncPolicy: SyncNone})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	tp, err := b.CreateTopic(context.Background(), topic, cfg)
	require.NoError(t, err)
	return b, tp
}

func consumerTestPartition(t testing.TB, tp *Topic, i int32) *Partition {
	t.Helper()
	p, err := tp.Partition(i)
	require.NoError(t, err)
	return p
}

// consumerTestValue is the value of the record at seq in a partition: the
// tests check every record they read against it.
func consumerTestValue(partition int32, seq int) []byte {
	return fmt.Appendf(nil, "p%d-value-%d", partition, seq)
}

// consumerTestFill appends n records to p, one batch of per records at a
// time, with values from consumerTestValue continuing from p's end offset.
func consumerTestFill(t testing.TB, p *Partition, n, per int) {
	t.Helper()
	for done := 0; done < n; done += per {
		seq := int(p.EndOffset())
		recs := make([]Record, min(per, n-done))
		for i := range recs {
			recs[i] = Record{Key: fmt.Appendf(nil, "k%d", seq+i), Value: consumerTestValue(p.ID(), seq+i)}
		}
		_, err := p.Append(recs...)
		require.NoError(t, err)
	}
}

// consumerTestPoll polls until it has n records, cloned, failing if it
// takes longer than consumerTestTimeout.
func consumerTestPoll(t testing.TB, c *Consumer, n int) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), consumerTestTimeout)
	defer cancel()
	var out []Record
	for len(out) < n {
		recs, err := c.Poll(ctx)
		require.NoError(t, err, "after %d of %d records", len(out), n)
		require.NotEmpty(t, recs, "Poll returns at least one record")
		for _, r := range recs {
			out = append(out, r.Clone())
		}
	}
	require.Len(t, out, n, "more records than expected")
	return out
}

// consumerTestCheck checks that recs hold, per partition, consecutive
// offsets from want[partition] with the values consumerTestFill wrote, and
// advances want.
func consumerTestCheck(t testing.TB, topic string, recs []Record, want map[int32]int64) {
	t.Helper()
	for _, r := range recs {
		require.Equal(t, topic, r.Topic)
		next, ok := want[r.Partition]
		require.True(t, ok, "record from partition %d, not assigned", r.Partition)
		require.Equal(t, next, r.Offset, "partition %d: offsets in order, none skipped", r.Partition)
		require.Equal(t, string(consumerTestValue(r.Partition, int(r.Offset))), string(r.Value))
		want[r.Partition] = next + 1
	}
}

// consumerTestNothing asserts that a Poll with an already-done context
// finds nothing.
func consumerTestNothing(t testing.TB, c *Consumer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	recs, err := c.Poll(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, recs)
}

func TestConsumerConfig(t *testing.T) {
	b, _ := consumerTestBroker(t, "orders", TopicConfig{Partitions: 2})
	for _, tc := range []struct {
		name string
		cfg  ConsumerConfig
		is   []error
		msg  string
	}{
		{"group field without group", ConsumerConfig{Topics: []string{"orders"}, InstanceID: "a"}, []error{ErrInvalidConfig}, "InstanceID is set without a Group"},
		{"both", ConsumerConfig{Topics: []string{"orders"}, Partitions: map[string][]int32{"orders": {0}}}, []error{ErrInvalidConfig}, "exclusive"},
		{"neither", ConsumerConfig{}, []error{ErrInvalidConfig}, "needs Topics or Partitions"},
		{"empty partition list", ConsumerConfig{Partitions: map[string][]int32{"orders": {}}}, []error{ErrInvalidConfig}, "lists no partition"},
		{"reset", ConsumerConfig{Topics: []string{"orders"}, Reset: 9}, []error{ErrInvalidConfig}, "Reset"},
		{"records", ConsumerConfig{Topics: []string{"orders"}, MaxPollRecords: -1}, []error{ErrInvalidConfig}, "MaxPollRecords"},
		{"poll bytes", ConsumerConfig{Topics: []string{"orders"}, MaxPollBytes: -1}, []error{ErrInvalidConfig}, "MaxPollBytes"},
		{"partition bytes", ConsumerConfig{Topics: []string{"orders"}, MaxPartitionBytes: -1}, []error{ErrInvalidConfig}, "MaxPartitionBytes"},
		{"metadata age", ConsumerConfig{Topics: []string{"orders"}, MetadataMaxAge: -1}, []error{ErrInvalidConfig}, "MetadataMaxAge"},
		{"unknown subscribed topic", ConsumerConfig{Topics: []string{"orders", "ordres"}}, []error{ErrUnknownTopic}, "ordres"},
		{"unknown assigned topic", ConsumerConfig{Partitions: map[string][]int32{"ordres": {0}}}, []error{ErrUnknownTopic}, "ordres"},
		{"unknown partition", ConsumerConfig{Partitions: map[string][]int32{"orders": {0, 2}}}, []error{ErrUnknownPartition}, "no partition 2"},
		{"negative partition", ConsumerConfig{Partitions: map[string][]int32{"orders": {-1}}}, []error{ErrUnknownPartition}, "no partition -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := b.NewConsumer(tc.cfg)
			require.Nil(t, c)
			for _, is := range tc.is {
				require.ErrorIs(t, err, is)
			}
			require.ErrorContains(t, err, tc.msg)
		})
	}
	require.Equal(t, "earliest", ResetEarliest.String())
	require.Equal(t, "latest", ResetLatest.String())
	require.Equal(t, "none", ResetNone.String())
	require.Equal(t, "ResetPolicy(7)", ResetPolicy(7).String())

	// Duplicates are harmless; the caller's slices are not kept.
	ids := []int32{1, 0, 1}
	c, err := b.NewConsumer(ConsumerConfig{Partitions: map[string][]int32{"orders": ids}})
	require.NoError(t, err)
	ids[0] = 5
	require.Equal(t, map[string][]int32{"orders": {0, 1}}, c.Assignment())
	require.NoError(t, c.Close())
	c, err = b.NewConsumer(ConsumerConfig{Topics: []string{"orders", "orders"}})
	require.NoError(t, err)
	require.Equal(t, map[string][]int32{"orders": {0, 1}}, c.Assignment())
	require.NoError(t, c.Close())
}

func TestConsumerAssign(t *testing.T) {
	b, tp := consumerTestBroker(t, "orders", TopicConfig{Partitions: 3})
	for i := range int32(3) {
		consumerTestFill(t, consumerTestPartition(t, tp, i), 100, 7)
	}
	c, err := b.NewConsumer(ConsumerConfig{Partitions: map[string][]int32{"orders": {2, 0}}, MaxPollRecords: 30})
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, map[string][]int32{"orders": {0, 2}}, c.Assignment())

	want := map[int32]int64{0: 0, 2: 0}
	consumerTestCheck(t, "orders", consumerTestPoll(t, c, 200), want)
	require.Equal(t, map[int32]int64{0: 100, 2: 100}, want)
	consumerTestNothing(t, c)

	// Records appended later come next, and only from the assignment.
	for i := range int32(3) {
		consumerTestFill(t, consumerTestPartition(t, tp, i), 10, 10)
	}
	consumerTestCheck(t, "orders", consumerTestPoll(t, c, 20), want)
	consumerTestNothing(t, c)
	pos, err := c.Position("orders", 2)
	require.NoError(t, err)
	require.Equal(t, int64(110), pos)
	_, err = c.Position("orders", 1)
	require.ErrorIs(t, err, ErrUnknownPartition)
	_, err = c.Position("audit", 0)
	require.ErrorIs(t, err, ErrUnknownTopic)
}

func TestConsumerSubscribe(t *testing.T) {
	b, orders := consumerTestBroker(t, "orders", TopicConfig{Partitions: 2})
	audit, err := b.CreateTopic(context.Background(), "audit", TopicConfig{})
	require.NoError(t, err)
	consumerTestFill(t, consumerTestPartition(t, orders, 0), 5, 5)
	consumerTestFill(t, consumerTestPartition(t, orders, 1), 5, 1)
	consumerTestFill(t, consumerTestPartition(t, audit, 0), 5, 2)

	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders", "audit"}})
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, map[string][]int32{"orders": {0, 1}, "audit": {0}}, c.Assignment())
	got := consumerTestPoll(t, c, 15)
	wantOrders := map[int32]int64{0: 0, 1: 0, 2: 0}
	wantAudit := map[int32]int64{0: 0}
	for _, r := range got {
		if r.Topic == "orders" {
			consumerTestCheck(t, "orders", []Record{r}, wantOrders)
		} else {
			consumerTestCheck(t, "audit", []Record{r}, wantAudit)
		}
	}

	// A partition added later is picked up by the next Poll, from its
	// start (ResetEarliest): records written before the Poll count.
	require.NoError(t, b.AddPartitions(context.Background(), "orders", 3))
	consumerTestFill(t, consumerTestPartition(t, orders, 2), 4, 2)
	consumerTestCheck(t, "orders", consumerTestPoll(t, c, 4), wantOrders)
	require.Equal(t, map[string][]int32{"orders": {0, 1, 2}, "audit": {0}}, c.Assignment())

	// A deleted topic leaves the assignment; re-created, it comes back.
	require.NoError(t, b.DeleteTopic(context.Background(), "audit"))
	consumerTestNothing(t, c)
	require.Equal(t, map[string][]int32{"orders": {0, 1, 2}}, c.Assignment())
	audit, err = b.CreateTopic(context.Background(), "audit", TopicConfig{})
	require.NoError(t, err)
	consumerTestFill(t, consumerTestPartition(t, audit, 0), 3, 3)
	consumerTestCheck(t, "audit", consumerTestPoll(t, c, 3), map[int32]int64{0: 0})
	require.Equal(t, map[string][]int32{"orders": {0, 1, 2}, "audit": {0}}, c.Assignment())

	// Re-created between two Polls, smaller: the old partitions all go.
	require.NoError(t, b.DeleteTopic(context.Background(), "orders"))
	orders, err = b.CreateTopic(context.Background(), "orders", TopicConfig{Partitions: 1})
	require.NoError(t, err)
	consumerTestFill(t, consumerTestPartition(t, orders, 0), 2, 2)
	consumerTestCheck(t, "orders", consumerTestPoll(t, c, 2), map[int32]int64{0: 0})
	require.Equal(t, map[string][]int32{"orders": {0}, "audit": {0}}, c.Assignment())
}

// TestConsumerSubscribeWhileWaiting checks that a Poll already waiting
// finds partitions added meanwhile, on a fake clock.
func TestConsumerSubscribeWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, err := Open(t.TempDir(), Options{SyncPolicy: SyncNone})
		require.NoError(t, err)
		defer b.Close()
		tp, err := b.CreateTopic(ctx, "orders", TopicConfig{})
		require.NoError(t, err)
		c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, MetadataMaxAge: time.Minute})
		require.NoError(t, err)
		defer c.Close()

		type result struct {
			recs []Record
			err  error
		}
		done := make(chan result, 1)
		go func() {
			recs, err := c.Poll(ctx)
			done <- result{slices.Clone(recs), err}
		}()
		synctest.Wait()
		require.NoError(t, b.AddPartitions(ctx, "orders", 2))
		consumerTestFill(t, consumerTestPartition(t, tp, 1), 1, 1)
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("Poll returned before MetadataMaxAge: %v", r)
		default:
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		r := <-done
		require.NoError(t, r.err)
		require.Len(t, r.recs, 1)
		require.Equal(t, int32(1), r.recs[0].Partition)
	})
}

func TestConsumerSeek(t *testing.T) {
	b, tp := consumerTestBroker(t, "orders", TopicConfig{})
	p := consumerTestPartition(t, tp, 0)
	t0 := time.UnixMilli(1_700_000_000_000)
	for i := range 100 {
		// Batches of 10 records, one millisecond apart.
		if i%10 == 0 {
			recs := make([]Record, 10)
			for j := range recs {
				recs[j] = Record{Timestamp: t0.Add(time.Duration(i+j) * time.Millisecond), Value: consumerTestValue(0, i+j)}
			}
			_, err := p.Append(recs...)
			require.NoError(t, err)
		}
	}
	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, MaxPollRecords: 5})
	require.NoError(t, err)
	defer c.Close()

	first := func() int64 {
		t.Helper()
		recs, err := c.Poll(context.Background())
		require.NoError(t, err)
		return recs[0].Offset
	}
	pos := func() int64 {
		t.Helper()
		off, err := c.Position("orders", 0)
		require.NoError(t, err)
		return off
	}
	require.Equal(t, int64(0), pos())
	require.Equal(t, int64(0), first())
	require.Equal(t, int64(5), pos(), "after the MaxPollRecords records returned")

	// Into the middle of a batch: the records before it are skipped.
	require.NoError(t, c.Seek("orders", 0, 37))
	require.Equal(t, int64(37), pos())
	recs, err := c.Poll(context.Background())
	require.NoError(t, err)
	require.Len(t, recs, 5)
	for i, r := range recs {
		require.Equal(t, int64(37+i), r.Offset)
		require.Equal(t, string(consumerTestValue(0, 37+i)), string(r.Value))
		require.True(t, r.Timestamp.Equal(t0.Add(time.Duration(37+i)*time.Millisecond)))
	}
	require.Equal(t, int64(42), pos())

	// Back, after a Poll stopped by MaxPollRecords mid-batch.
	require.NoError(t, c.Seek("orders", 0, 3))
	require.Equal(t, int64(3), first())

	require.NoError(t, c.SeekToTime("orders", 0, t0.Add(64*time.Millisecond)))
	require.Equal(t, int64(64), pos())
	require.Equal(t, int64(64), first())
	require.NoError(t, c.SeekToTime("orders", 0, t0.Add(-time.Hour)))
	require.Equal(t, int64(0), first())
	require.NoError(t, c.SeekToTime("orders", 0, t0.Add(time.Hour)))
	require.Equal(t, int64(100), pos(), "no record that late: the end")

	require.NoError(t, c.SeekToStart("orders", 0))
	require.Equal(t, int64(0), first())
	require.NoError(t, c.SeekToEnd("orders", 0))
	require.Equal(t, int64(100), pos())
	consumerTestNothing(t, c)
	consumerTestFill(t, p, 1, 1)
	require.Equal(t, int64(100), first())

	// Negative offsets fail with the range; unknown partitions are named.
	err = c.Seek("orders", 0, -1)
	require.ErrorIs(t, err, ErrOffsetOutOfRange)
	var oor *OffsetOutOfRangeError
	require.ErrorAs(t, err, &oor)
	require.Equal(t, OffsetOutOfRangeError{Offset: -1, Start: 0, End: 101}, *oor)
	require.ErrorContains(t, err, "orders-0")
	require.Equal(t, int64(101), pos(), "a failed seek moves nothing")
	require.ErrorIs(t, c.Seek("orders", 1, 0), ErrUnknownPartition)
	require.ErrorIs(t, c.Seek("audit", 0, 0), ErrUnknownTopic)
	require.ErrorIs(t, c.SeekToStart("audit", 0), ErrUnknownTopic)
	require.ErrorIs(t, c.SeekToEnd("orders", 3), ErrUnknownPartition)
	require.ErrorIs(t, c.SeekToTime("orders", 3, t0), ErrUnknownPartition)

	// A partition added since the last Poll can be sought already.
	require.NoError(t, b.AddPartitions(context.Background(), "orders", 2))
	require.NoError(t, c.Seek("orders", 1, 0))

	require.NoError(t, c.Close())
	require.ErrorIs(t, c.Seek("orders", 0, 0), ErrClosed)
	_, err = c.Position("orders", 0)
	require.ErrorIs(t, err, ErrClosed)
	require.Empty(t, c.Assignment())
}

// TestConsumerOutOfRange covers each reset policy when retention deletes
// the records under a consumer's position, and when Seek goes past the end.
func TestConsumerOutOfRange(t *testing.T) {
	for _, policy := range []ResetPolicy{ResetEarliest, ResetLatest, ResetNone} {
		t.Run(policy.String(), func(t *testing.T) {
			b, tp := consumerTestBroker(t, "orders", TopicConfig{SegmentBytes: 1024})
			p := consumerTestPartition(t, tp, 0)
			consumerTestFill(t, p, 60, 1)
			require.Greater(t, p.log.Segments(), 3)
			c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, Reset: policy})
			require.NoError(t, err)
			defer c.Close()
			pos, err := c.Position("orders", 0)
			require.NoError(t, err)
			if policy == ResetLatest {
				require.Equal(t, int64(60), pos)
				require.NoError(t, c.SeekToStart("orders", 0))
			} else {
				require.Equal(t, int64(0), pos)
			}

			_, err = p.log.DeleteBefore(30)
			require.NoError(t, err)
			start := p.StartOffset()
			require.Positive(t, start)
			expectAfterReset := func() {
				t.Helper()
				switch policy {
				case ResetEarliest:
					consumerTestCheck(t, "orders", consumerTestPoll(t, c, int(60-start)), map[int32]int64{0: start})
				case ResetLatest:
					consumerTestNothing(t, c)
					off, err := c.Position("orders", 0)
					require.NoError(t, err)
					require.Equal(t, p.EndOffset(), off)
				case ResetNone:
					for range 2 { // until Seek, every Poll says so
						_, err := c.Poll(context.Background())
						require.ErrorIs(t, err, ErrOffsetOutOfRange)
						var oor *OffsetOutOfRangeError
						require.ErrorAs(t, err, &oor)
						require.Equal(t, start, oor.Start)
						require.Equal(t, int64(60), oor.End)
						require.ErrorContains(t, err, "orders-0")
					}
					require.NoError(t, c.SeekToStart("orders", 0))
					consumerTestCheck(t, "orders", consumerTestPoll(t, c, int(60-start)), map[int32]int64{0: start})
				}
			}
			expectAfterReset()

			// Past the end: the same policy applies.
			require.NoError(t, c.Seek("orders", 0, 1000))
			switch policy {
			case ResetEarliest:
				consumerTestCheck(t, "orders", consumerTestPoll(t, c, int(60-start)), map[int32]int64{0: start})
			case ResetLatest:
				consumerTestNothing(t, c)
				consumerTestFill(t, p, 1, 1)
				consumerTestCheck(t, "orders", consumerTestPoll(t, c, 1), map[int32]int64{0: 60})
			case ResetNone:
				_, err := c.Poll(context.Background())
				var oor *OffsetOutOfRangeError
				require.ErrorAs(t, err, &oor)
				require.Equal(t, int64(1000), oor.Offset)
			}
		})
	}
}

// TestConsumerRetentionUnderPoll deletes segments while the consumer holds
// batches read from them: what it holds stays readable, and then it resets.
func TestConsumerRetentionUnderPoll(t *testing.T) {
	b, tp := consumerTestBroker(t, "orders", TopicConfig{SegmentBytes: 1024, RetentionTime: time.Hour})
	p := consumerTestPartition(t, tp, 0)
	old := time.Now().Add(-2 * time.Hour)
	for i := range 40 {
		_, err := p.Append(Record{Timestamp: old, Value: consumerTestValue(0, i)})
		require.NoError(t, err)
	}
	require.Greater(t, p.log.Segments(), 3)
	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, MaxPollRecords: 2})
	require.NoError(t, err)
	defer c.Close()
	first, err := c.Poll(context.Background())
	require.NoError(t, err)
	require.Len(t, first, 2)

	// Every segment expires; the records of the last Poll stay valid.
	n, err := b.EnforceRetention()
	require.NoError(t, err)
	require.Positive(t, n)
	require.Equal(t, int64(40), p.StartOffset())
	for i, r := range first {
		require.Equal(t, string(consumerTestValue(0, i)), string(r.Value))
	}
	consumerTestFill(t, p, 5, 5)
	var got []Record
	for len(got) == 0 || got[len(got)-1].Offset < 44 {
		recs, err := c.Poll(context.Background())
		require.NoError(t, err)
		for _, r := range recs {
			got = append(got, r.Clone())
		}
	}
	// What was read ahead may come first; then the reset to the new start.
	prev := int64(1)
	for _, r := range got {
		require.Greater(t, r.Offset, prev)
		require.Equal(t, string(consumerTestValue(0, int(r.Offset))), string(r.Value))
		prev = r.Offset
	}
	require.Equal(t, int64(40), got[len(got)-5].Offset)
}

// TestConsumerLongPoll checks, on a fake clock, that Poll waits without
// returning until an append, a Seek, ctx or Close wakes it.
func TestConsumerLongPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := Open(t.TempDir(), Options{SyncPolicy: SyncNone})
		require.NoError(t, err)
		defer b.Close()
		tp, err := b.CreateTopic(context.Background(), "orders", TopicConfig{Partitions: 4})
		require.NoError(t, err)
		c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}})
		require.NoError(t, err)
		defer c.Close()

		type result struct {
			recs []Record
			err  error
		}
		poll := func(ctx context.Context) <-chan result {
			done := make(chan result, 1)
			go func() {
				recs, err := c.Poll(ctx)
				var cp []Record
				for _, r := range recs {
					cp = append(cp, r.Clone())
				}
				done <- result{cp, err}
			}()
			synctest.Wait()
			select {
			case r := <-done:
				t.Fatalf("Poll returned with nothing to return: %v", r)
			default:
			}
			return done
		}

		// An append to any partition wakes it.
		done := poll(context.Background())
		time.Sleep(time.Hour) // nothing happens meanwhile
		synctest.Wait()
		require.Empty(t, done)
		consumerTestFill(t, consumerTestPartition(t, tp, 3), 1, 1)
		r := <-done
		require.NoError(t, r.err)
		require.Len(t, r.recs, 1)
		require.Equal(t, int32(3), r.recs[0].Partition)

		// So does a Seek that makes records available.
		done = poll(context.Background())
		require.NoError(t, c.SeekToStart("orders", 3))
		r = <-done
		require.NoError(t, r.err)
		require.Equal(t, int64(0), r.recs[0].Offset)

		// A deadline ends it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done = poll(ctx)
		time.Sleep(time.Minute)
		r = <-done
		require.ErrorIs(t, r.err, context.DeadlineExceeded)

		// Cancellation ends it.
		ctx, cancel = context.WithCancel(context.Background())
		done = poll(ctx)
		cancel()
		r = <-done
		require.ErrorIs(t, r.err, context.Canceled)

		// A done context still returns what is there.
		consumerTestFill(t, consumerTestPartition(t, tp, 0), 1, 1)
		recs, err := c.Poll(ctx)
		require.NoError(t, err)
		require.Len(t, recs, 1)

		// Close ends it.
		done = poll(context.Background())
		require.NoError(t, c.Close())
		r = <-done
		require.ErrorIs(t, r.err, ErrClosed)
		_, err = c.Poll(context.Background())
		require.ErrorIs(t, err, ErrClosed)
		require.NoError(t, c.Close(), "Close is idempotent")
	})
}

// TestConsumerBrokerClose checks that closing the broker closes its
// consumers, waking a Poll.
func TestConsumerBrokerClose(t *testing.T) {
	b, _ := consumerTestBroker(t, "orders", TopicConfig{})
	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := c.Poll(context.Background())
		done <- err
	}()
	require.NoError(t, b.Close())
	require.ErrorIs(t, <-done, ErrClosed)
	require.NoError(t, c.Close())
	_, err = b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}})
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, (&Consumer{}).flush(context.Background()))
}

func TestConsumerAssignedTopicDeleted(t *testing.T) {
	b, orders := consumerTestBroker(t, "orders", TopicConfig{})
	_, err := b.CreateTopic(context.Background(), "audit", TopicConfig{})
	require.NoError(t, err)
	c, err := b.NewConsumer(ConsumerConfig{Partitions: map[string][]int32{"orders": {0}, "audit": {0}}})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, b.DeleteTopic(context.Background(), "audit"))
	_, err = c.Poll(context.Background())
	require.ErrorIs(t, err, ErrUnknownTopic)
	require.ErrorContains(t, err, "audit")
	require.Equal(t, map[string][]int32{"orders": {0}}, c.Assignment())
	consumerTestFill(t, consumerTestPartition(t, orders, 0), 2, 2)
	consumerTestCheck(t, "orders", consumerTestPoll(t, c, 2), map[int32]int64{0: 0})

	// An assigned topic re-created without some assigned partitions: those
	// go, with an error, and the others start again on the new logs.
	_, err = b.CreateTopic(context.Background(), "logs", TopicConfig{Partitions: 3})
	require.NoError(t, err)
	c2, err := b.NewConsumer(ConsumerConfig{Partitions: map[string][]int32{"logs": {0, 2}}})
	require.NoError(t, err)
	defer c2.Close()
	require.NoError(t, b.DeleteTopic(context.Background(), "logs"))
	logs, err := b.CreateTopic(context.Background(), "logs", TopicConfig{Partitions: 1})
	require.NoError(t, err)
	consumerTestFill(t, consumerTestPartition(t, logs, 0), 2, 2)
	_, err = c2.Poll(context.Background())
	require.ErrorIs(t, err, ErrUnknownPartition)
	require.ErrorContains(t, err, "logs has no partition 2")
	require.Equal(t, map[string][]int32{"logs": {0}}, c2.Assignment())
	consumerTestCheck(t, "logs", consumerTestPoll(t, c2, 2), map[int32]int64{0: 0})
}

// TestConsumerConcurrent runs producers appending to every partition and
// consumers reading them all at once; each consumer must see every record
// exactly once, in order within each partition.
func TestConsumerConcurrent(t *testing.T) {
	const (
		partitions = 4
		producers  = 8
		perProd    = 300
		consumers  = 3
	)
	b, tp := consumerTestBroker(t, "events", TopicConfig{Partitions: partitions})
	ctx, cancel := context.WithTimeout(context.Background(), consumerTestTimeout)
	defer cancel()

	total := 0 // records all producers write
	for s := range perProd {
		total += producers * (1 + s%3)
	}
	var wg sync.WaitGroup
	results := make([]map[int32][]Record, consumers)
	errs := make(chan error, consumers+producers)
	for i := range consumers {
		c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"events"}, MaxPollRecords: 1 + 37*i})
		require.NoError(t, err)
		defer c.Close()
		results[i] = map[int32][]Record{}
		wg.Go(func() {
			n := 0
			for r, err := range c.Records(ctx) {
				if err != nil {
					errs <- err
					return
				}
				results[i][r.Partition] = append(results[i][r.Partition], r.Clone())
				if n++; n == total {
					return
				}
			}
			errs <- fmt.Errorf("consumer %d: %d records before %v", i, n, ctx.Err())
		})
	}
	for w := range producers {
		wg.Go(func() {
			for s := range perProd {
				p, _ := tp.Partition(int32((w + s) % partitions))
				// Batches of one to three records.
				recs := make([]Record, 1+s%3)
				for j := range recs {
					recs[j] = Record{Key: fmt.Appendf(nil, "w%d", w), Value: fmt.Appendf(nil, "%d/%d", w, s*3+j)}
				}
				if _, err := p.Append(recs...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for i, byPart := range results {
		n := 0
		for part, recs := range byPart {
			last := map[int]int{}
			for j, r := range recs {
				require.Equal(t, int64(j), r.Offset, "consumer %d partition %d", i, part)
				var w, s int
				_, err := fmt.Sscanf(string(r.Value), "%d/%d", &w, &s)
				require.NoError(t, err)
				require.Equal(t, fmt.Sprintf("w%d", w), string(r.Key))
				require.Equal(t, int32((w+s/3)%partitions), part)
				if prev, ok := last[w]; ok {
					require.Greater(t, s, prev, "a producer's records stay in order")
				}
				last[w] = s
			}
			n += len(recs)
		}
		require.Equal(t, total, n)
	}
}

// consumerTestSetAttributes ORs bits into a built batch's attributes and
// fixes its CRC.
func consumerTestSetAttributes(b []byte, bits uint16) {
	a := binary.BigEndian.Uint16(b[batch.OffsetAttributes:])
	binary.BigEndian.PutUint16(b[batch.OffsetAttributes:], a|bits)
	sum := crc32.Checksum(b[batch.OffsetAttributes:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(b[batch.OffsetCRC:], sum)
}

// TestConsumerCompression writes batches with every codec, a control batch
// among them, and reads them back through one consumer: each Poll spans
// several compressed batches, whose records must all stay intact until the
// next Poll.
func TestConsumerCompression(t *testing.T) {
	b, tp := consumerTestBroker(t, "orders", TopicConfig{})
	p := consumerTestPartition(t, tp, 0)
	codecs := []Compression{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd}
	var want []Record
	for round := range 3 {
		for _, codec := range codecs {
			recs := make([]Record, 7)
			for i := range recs {
				seq := len(want)
				recs[i] = Record{
					Timestamp: time.UnixMilli(int64(1_700_000_000_000 + seq)),
					Key:       fmt.Appendf(nil, "%v-%d", codec, seq),
					Value:     append(consumerTestValue(0, seq), bytes.Repeat([]byte{byte(seq)}, 50*round)...),
				}
				if i%3 == 0 {
					recs[i].Headers = []Header{{Key: "codec", Value: []byte(codec.String())}, {Key: "null"}}
				}
				want = append(want, recs[i])
			}
			data, err := AppendBatch(nil, codec, recs...)
			require.NoError(t, err)
			_, err = p.AppendBatch(data)
			require.NoError(t, err)
		}
		control, err := AppendBatch(nil, CompressionNone, Record{Key: []byte{0, 0, 0, 1}, Value: []byte("marker")})
		require.NoError(t, err)
		consumerTestSetAttributes(control, 0x20|0x10) // control, transactional
		off, err := p.AppendBatch(control)
		require.NoError(t, err)
		want = append(want, Record{Offset: off}) // a gap: never returned
	}
	// check compares got with want from offset from on, skipping the
	// control batches' offsets.
	check := func(t *testing.T, got []Record, from int64) {
		t.Helper()
		i := int(from)
		for _, g := range got {
			for i < len(want) && want[i].Value == nil {
				i++
			}
			require.Less(t, i, len(want))
			w := want[i]
			require.Equal(t, int64(i), g.Offset)
			require.True(t, w.Timestamp.Equal(g.Timestamp))
			require.Equal(t, string(w.Key), string(g.Key))
			require.Equal(t, string(w.Value), string(g.Value))
			require.Equal(t, w.Headers, g.Headers)
			i++
		}
	}
	for _, maxRecords := range []int{500, 10, 3, 1} {
		t.Run(fmt.Sprint(maxRecords), func(t *testing.T) {
			c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, MaxPollRecords: maxRecords})
			require.NoError(t, err)
			defer c.Close()
			var got []Record
			for len(got) < len(want)-3 {
				from, err := c.Position("orders", 0)
				require.NoError(t, err)
				recs, err := c.Poll(context.Background())
				require.NoError(t, err)
				require.LessOrEqual(t, len(recs), maxRecords)
				// Check the whole Poll only after it returned: every
				// batch decompressed in it is still intact.
				check(t, recs, from)
				for _, r := range recs {
					got = append(got, r.Clone())
				}
			}
			check(t, got, 0)
			consumerTestNothing(t, c)
			pos, err := c.Position("orders", 0)
			require.NoError(t, err)
			require.Equal(t, p.EndOffset(), pos, "positioned past the trailing control batch")

			// Into the middle of a compressed batch.
			require.NoError(t, c.Seek("orders", 0, 7*4+3)) // zstd, first round
			recs, err := c.Poll(context.Background())
			require.NoError(t, err)
			check(t, recs, 7*4+3)
		})
	}
}

// TestConsumerFairness checks that Polls rotate over partitions that all
// have records, and respect MaxPollRecords.
func TestConsumerFairness(t *testing.T) {
	const parts = 5
	b, tp := consumerTestBroker(t, "orders", TopicConfig{Partitions: parts})
	for i := range int32(parts) {
		consumerTestFill(t, consumerTestPartition(t, tp, i), 200, 50)
	}
	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, MaxPollRecords: 30})
	require.NoError(t, err)
	defer c.Close()
	want := map[int32]int64{}
	for i := range int32(parts) {
		want[i] = 0
	}
	firsts := map[int32]int{}
	for range 4 * parts {
		recs, err := c.Poll(context.Background())
		require.NoError(t, err)
		require.Len(t, recs, 30)
		firsts[recs[0].Partition]++
		consumerTestCheck(t, "orders", recs, want)
	}
	for i := range int32(parts) {
		require.Equal(t, 4, firsts[i], "partition %d starts as many Polls as the others", i)
	}
}

// TestConsumerBytesLimits checks MaxPollBytes and MaxPartitionBytes, and
// that a batch larger than both is still returned (KIP-74).
func TestConsumerBytesLimits(t *testing.T) {
	b, tp := consumerTestBroker(t, "orders", TopicConfig{Partitions: 2, MaxMessageBytes: 1 << 20})
	p0, p1 := consumerTestPartition(t, tp, 0), consumerTestPartition(t, tp, 1)
	big := Record{Value: bytes.Repeat([]byte("x"), 64<<10)}
	for range 3 {
		_, err := p0.Append(big)
		require.NoError(t, err)
		_, err = p1.Append(big)
		require.NoError(t, err)
	}
	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, MaxPollBytes: 1024, MaxPartitionBytes: 1024})
	require.NoError(t, err)
	defer c.Close()
	for range 6 {
		recs, err := c.Poll(context.Background())
		require.NoError(t, err)
		require.Len(t, recs, 1, "one oversized batch per Poll")
		require.Len(t, recs[0].Value, 64<<10)
	}
	consumerTestNothing(t, c)

	// Per partition: two batches fit a partition's budget, not three.
	c2, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, MaxPartitionBytes: 150 << 10})
	require.NoError(t, err)
	defer c2.Close()
	recs, err := c2.Poll(context.Background())
	require.NoError(t, err)
	require.Len(t, recs, 4)
	require.Equal(t, recs[0].Partition, recs[1].Partition)
	require.Equal(t, recs[2].Partition, recs[3].Partition)
	require.NotEqual(t, recs[0].Partition, recs[2].Partition)
}

// TestConsumerLifetime checks the memory contract of Poll: records stay
// valid until the next Poll even if the log deletes their segment, the
// result slice is reused, and Clone copies survive everything.
func TestConsumerLifetime(t *testing.T) {
	for _, codec := range []Compression{CompressionNone, CompressionZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			b, tp := consumerTestBroker(t, "orders", TopicConfig{SegmentBytes: 1024})
			p := consumerTestPartition(t, tp, 0)
			for i := 0; i < 40; i += 4 {
				recs := make([]Record, 4)
				for j := range recs {
					recs[j] = Record{Value: consumerTestValue(0, i+j), Headers: []Header{{Key: "seq", Value: fmt.Append(nil, i+j)}}}
				}
				data, err := AppendBatch(nil, codec, recs...)
				require.NoError(t, err)
				_, err = p.AppendBatch(data)
				require.NoError(t, err)
			}
			c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, MaxPollRecords: 10})
			require.NoError(t, err)
			defer c.Close()
			first, err := c.Poll(context.Background())
			require.NoError(t, err)
			require.Len(t, first, 10)
			clones := make([]Record, len(first))
			for i, r := range first {
				clones[i] = r.Clone()
			}
			// Delete every segment under the records and append new
			// batches: the records hold.
			_, err = p.log.DeleteBefore(p.EndOffset())
			require.NoError(t, err)
			consumerTestFill(t, p, 50, 10)
			for i, r := range first {
				require.Equal(t, string(consumerTestValue(0, i)), string(r.Value))
				require.Equal(t, fmt.Sprint(i), string(r.Headers[0].Value))
			}
			second, err := c.Poll(context.Background())
			require.NoError(t, err)
			require.Same(t, &first[0], &second[0], "the result slice is reused")
			require.NoError(t, c.Close())
			for i, r := range clones {
				require.Equal(t, string(consumerTestValue(0, i)), string(r.Value))
				require.Equal(t, fmt.Sprint(i), string(r.Headers[0].Value))
			}
		})
	}
}

func TestConsumerRecords(t *testing.T) {
	b, tp := consumerTestBroker(t, "orders", TopicConfig{})
	p := consumerTestPartition(t, tp, 0)
	consumerTestFill(t, p, 50, 10)
	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), consumerTestTimeout)
	defer cancel()

	// Breaking out leaves the consumer after the last record yielded, even
	// though the Poll behind it returned more.
	want := map[int32]int64{0: 0}
	for r, err := range c.Records(ctx) {
		require.NoError(t, err)
		consumerTestCheck(t, "orders", []Record{r}, want)
		if r.Offset == 12 {
			break
		}
	}
	pos, err := c.Position("orders", 0)
	require.NoError(t, err)
	require.Equal(t, int64(13), pos)
	for r, err := range c.Records(ctx) {
		require.NoError(t, err)
		consumerTestCheck(t, "orders", []Record{r}, want)
		if r.Offset == 49 {
			break
		}
	}

	// A Seek in the loop body wins over the position after the last
	// record yielded.
	require.NoError(t, c.SeekToStart("orders", 0))
	for r, err := range c.Records(ctx) {
		require.NoError(t, err)
		require.Equal(t, int64(0), r.Offset)
		require.NoError(t, c.Seek("orders", 0, 40))
		break
	}
	pos, err = c.Position("orders", 0)
	require.NoError(t, err)
	require.Equal(t, int64(40), pos)
	for r, err := range c.Records(ctx) {
		require.NoError(t, err)
		require.Equal(t, int64(40), r.Offset)
		break
	}
	require.NoError(t, c.SeekToEnd("orders", 0))

	// A done context ends the iteration quietly.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	for _, err := range c.Records(done) {
		t.Fatalf("yielded %v after the context was done", err)
	}

	// An error is yielded once, then the iteration ends.
	require.NoError(t, c.Close())
	n := 0
	for _, err := range c.Records(ctx) {
		require.ErrorIs(t, err, ErrClosed)
		n++
	}
	require.Equal(t, 1, n)
}

func TestConsumerLogAppendTime(t *testing.T) {
	b, tp := consumerTestBroker(t, "orders", TopicConfig{TimestampType: LogAppendTime})
	before := time.Now().Truncate(time.Millisecond)
	_, err := consumerTestPartition(t, tp, 0).Append(Record{Timestamp: time.UnixMilli(5), Value: []byte("a")}, Record{Value: []byte("b")})
	require.NoError(t, err)
	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}})
	require.NoError(t, err)
	defer c.Close()
	for _, r := range consumerTestPoll(t, c, 2) {
		require.False(t, r.Timestamp.Before(before), "the broker's append time, not the producer's")
	}
}

func TestRecordClone(t *testing.T) {
	r := Record{Topic: "t", Partition: 3, Offset: 7, Timestamp: time.UnixMilli(9),
		Key: []byte("key"), Value: []byte{},
		Headers: []Header{{Key: "a", Value: []byte("1")}, {Key: "null"}, {Key: "empty", Value: []byte{}}}}
	c := r.Clone()
	require.Equal(t, r, c)
	require.NotNil(t, c.Value, "empty stays empty")
	require.Nil(t, c.Headers[1].Value, "null stays null")
	require.NotNil(t, c.Headers[2].Value)
	c.Key[0] = 'K'
	c.Headers[0].Value[0] = '2'
	c.Headers[0].Key = "b"
	require.Equal(t, "key", string(r.Key))
	require.Equal(t, "1", string(r.Headers[0].Value))
	require.Equal(t, "a", r.Headers[0].Key)
	c.Key = append(c.Key, "more"...) // capacity is clipped: no neighbour overwritten
	require.Equal(t, "2", string(c.Headers[0].Value))
	require.Empty(t, c.Value)

	n := Record{Offset: 1}.Clone()
	require.Nil(t, n.Key)
	require.Nil(t, n.Value)
	require.Nil(t, n.Headers)
	require.NotNil(t, Record{Headers: []Header{}}.Clone().Headers)
}

// TestConsumerAllocations checks that, once warm, Poll allocates nothing,
// for uncompressed and compressed batches alike.
func TestConsumerAllocations(t *testing.T) {
	if builtWithRace() {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, codec := range []Compression{CompressionNone, CompressionZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			b, tp := consumerTestBroker(t, "orders", TopicConfig{})
			p := consumerTestPartition(t, tp, 0)
			for i := 0; i < 5000; i += 50 {
				recs := make([]Record, 50)
				for j := range recs {
					recs[j] = Record{Key: []byte("key"), Value: consumerTestValue(0, i+j), Headers: []Header{{Key: "h", Value: []byte("v")}}}
				}
				data, err := AppendBatch(nil, codec, recs...)
				require.NoError(t, err)
				_, err = p.AppendBatch(data)
				require.NoError(t, err)
			}
			c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, MaxPollRecords: 120})
			require.NoError(t, err)
			defer c.Close()
			ctx := context.Background()
			poll := func() {
				if p, _ := c.Position("orders", 0); p == 5000 {
					require.NoError(t, c.SeekToStart("orders", 0))
				}
				if _, err := c.Poll(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for range 100 {
				poll()
			}
			require.Zero(t, testing.AllocsPerRun(200, poll), "allocations per Poll of 120 records")
		})
	}
}

// TestConsumerCorruptBatch damages a stored batch: the records before it
// are returned, then Poll reports ErrCorruptBatch for that partition, every
// time, while the other partitions go on.
func TestConsumerCorruptBatch(t *testing.T) {
	b, tp := consumerTestBroker(t, "orders", TopicConfig{Partitions: 2})
	p0, p1 := consumerTestPartition(t, tp, 0), consumerTestPartition(t, tp, 1)
	consumerTestFill(t, p0, 10, 5)
	consumerTestFill(t, p1, 10, 5)
	s, err := p0.Read(5, 1)
	require.NoError(t, err)
	pos := s.Position
	s.Release()
	f, err := os.OpenFile(filepath.Join(p0.log.Dir(), layout.SegmentFile(0, layout.KindLog)), os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0xff}, pos+batch.HeaderSize+3) // a record byte: the CRC fails
	require.NoError(t, err)
	require.NoError(t, f.Close())

	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}})
	require.NoError(t, err)
	defer c.Close()
	want := map[int32]int64{0: 0, 1: 0}
	corrupt := 0
	for range 6 {
		recs, err := c.Poll(context.Background())
		if err != nil {
			require.ErrorIs(t, err, ErrCorruptBatch)
			require.ErrorContains(t, err, "orders-0")
			corrupt++
			continue
		}
		consumerTestCheck(t, "orders", recs, want)
	}
	require.Equal(t, map[int32]int64{0: 5, 1: 10}, want)
	require.GreaterOrEqual(t, corrupt, 3, "the error repeats: the position does not move past it")
	off, err := c.Position("orders", 0)
	require.NoError(t, err)
	require.Equal(t, int64(5), off)
	require.NoError(t, c.Seek("orders", 0, 10))
	consumerTestNothing(t, c)
}

// TestConsumerResetLatest checks that ResetLatest positions a partition
// when it joins the assignment: records appended after that are read,
// those before are not.
func TestConsumerResetLatest(t *testing.T) {
	b, tp := consumerTestBroker(t, "orders", TopicConfig{})
	p := consumerTestPartition(t, tp, 0)
	consumerTestFill(t, p, 5, 5)
	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, Reset: ResetLatest})
	require.NoError(t, err)
	defer c.Close()
	consumerTestFill(t, p, 3, 1)
	consumerTestCheck(t, "orders", consumerTestPoll(t, c, 3), map[int32]int64{0: 5})
}

// TestConsumerCompacted reads a compacted partition, whose batches have
// offset gaps, from the start and from inside a gap.
func TestConsumerCompacted(t *testing.T) {
	b, tp := consumerTestBroker(t, "orders", TopicConfig{CleanupPolicy: CleanupCompact, SegmentBytes: 1024})
	p := consumerTestPartition(t, tp, 0)
	for i := 0; i < 100; i += 4 {
		recs := make([]Record, 4)
		for j := range recs {
			recs[j] = Record{Key: fmt.Appendf(nil, "k%d", (i+j)%10), Value: consumerTestValue(0, i+j)}
		}
		_, err := p.Append(recs...)
		require.NoError(t, err)
	}
	stats, err := p.log.Compact(CompactOptions{})
	require.NoError(t, err)
	require.Positive(t, stats.RecordsRemoved)

	c, err := b.NewConsumer(ConsumerConfig{Topics: []string{"orders"}, MaxPollRecords: 7})
	require.NoError(t, err)
	defer c.Close()
	var got []Record
	for len(got) == 0 || got[len(got)-1].Offset < 99 {
		recs, err := c.Poll(context.Background())
		require.NoError(t, err)
		for _, r := range recs {
			got = append(got, r.Clone())
		}
	}
	require.Less(t, len(got), 100, "compaction removed records")
	latest := map[string]int64{}
	for i, r := range got {
		require.Equal(t, string(consumerTestValue(0, int(r.Offset))), string(r.Value))
		if i > 0 {
			require.Greater(t, r.Offset, got[i-1].Offset)
		}
		latest[string(r.Key)] = r.Offset
	}
	for k := range 10 {
		require.Equal(t, int64(90+k), latest[fmt.Sprintf("k%d", k)], "the latest record of every key is kept")
	}

	// Into a gap: the next record kept comes first.
	require.Positive(t, got[0].Offset, "the first records were removed")
	require.Equal(t, int64(0), p.StartOffset())
	require.NoError(t, c.Seek("orders", 0, got[0].Offset-1))
	recs, err := c.Poll(context.Background())
	require.NoError(t, err)
	require.Equal(t, got[0].Offset, recs[0].Offset)
}
