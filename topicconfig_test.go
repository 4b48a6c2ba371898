package commitlog

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func openTestBroker(t *testing.T, dir string) *Broker {
	t.Helper()
	b, err := Open(dir, Options{SyncPolicy: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAlterTopicConfigPersists changes every live setting, checks the
// topic and its logs see them, and that a restart keeps them.
func TestAlterTopicConfigPersists(t *testing.T) {
	dir := t.TempDir()
	b := openTestBroker(t, dir)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, "t", TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	want, err := b.AlterTopicConfig(ctx, "t", func(c *TopicConfig) error {
		c.RetentionTime = time.Hour
		c.RetentionBytes = 1 << 20
		c.SegmentBytes = 64 << 10
		c.SegmentAge = time.Minute
		c.MaxMessageBytes = 32 << 10
		c.CleanupPolicy = CleanupCompactDelete
		c.MinCleanableDirtyRatio = 0.25
		c.DeleteRetention = time.Minute
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	topic, _ := b.Topic("t")
	if got := topic.Config(); got != want || got.SegmentBytes != 64<<10 || got.Partitions != 2 {
		t.Fatalf("config %+v, want %+v", got, want)
	}
	for _, p := range topic.Partitions() {
		if c := p.log.config(); c.SegmentBytes != 64<<10 || c.MaxBatchBytes != 32<<10 || c.SegmentAge != time.Minute {
			t.Fatalf("partition %d log config %+v", p.ID(), *c)
		}
	}
	// A zero field goes back to the default.
	if got, err := b.AlterTopicConfig(ctx, "t", func(c *TopicConfig) error { c.SegmentAge = 0; return nil }); err != nil || got.SegmentAge != DefaultSegmentAge {
		t.Fatalf("reset SegmentAge: %v, %v", got.SegmentAge, err)
	}
	want.SegmentAge = DefaultSegmentAge
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openTestBroker(t, dir)
	defer b.Close()
	topic, _ = b.Topic("t")
	if got := topic.Config(); got != want {
		t.Fatalf("after restart %+v, want %+v", got, want)
	}
	if c := topic.Partitions()[1].log.config(); c.MaxBatchBytes != 32<<10 {
		t.Fatalf("after restart the log has MaxBatchBytes %d", c.MaxBatchBytes)
	}
}

func TestAlterTopicConfigRefusals(t *testing.T) {
	b := openTestBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, "t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic(ctx, "lat", TopicConfig{TimestampType: LogAppendTime, MaxMessageBytes: 4096}); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		topic string
		fn    func(*TopicConfig) error
		want  error
	}{
		"unknown topic":  {"nope", func(*TopicConfig) error { return nil }, ErrUnknownTopic},
		"bad value":      {"t", func(c *TopicConfig) error { c.SegmentBytes = 10; return nil }, ErrInvalidConfig},
		"partitions":     {"t", func(c *TopicConfig) error { c.Partitions = 3; return nil }, ErrInvalidConfig},
		"timestamp type": {"t", func(c *TopicConfig) error { c.TimestampType = 7; return nil }, ErrInvalidConfig},
		"fn error":       {"t", func(*TopicConfig) error { return errSentinel }, errSentinel},
	} {
		if _, err := b.AlterTopicConfig(ctx, tc.topic, tc.fn); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// Lowering on a LogAppendTime topic is fine, and back up to the opened
	// value too.
	for _, n := range []int{2048, 4096} {
		if _, err := b.AlterTopicConfig(ctx, "lat", func(c *TopicConfig) error { c.MaxMessageBytes = n; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Validation changes nothing.
	if got, err := b.ValidateTopicConfigChange(ctx, "t", func(c *TopicConfig) error { c.RetentionTime = time.Minute; return nil }); err != nil || got.RetentionTime != time.Minute {
		t.Fatal(got.RetentionTime, err)
	}
	if c, _ := b.DescribeTopic("t"); c.Config.RetentionTime != DefaultRetentionTime {
		t.Fatalf("validation changed RetentionTime to %v", c.Config.RetentionTime)
	}
}

var errSentinel = errors.New("sentinel")

// TestRaiseMaxMessageBytesEmptyActiveSegment is the case of a segment
// whose mapping (max(SegmentBytes, MaxBatchBytes) when it was made) is too
// small for a batch the raised limit lets in: an empty active segment is
// made again, a non-empty one rolls.
func TestRaiseMaxMessageBytesEmptyActiveSegment(t *testing.T) {
	dir := t.TempDir()
	b := openTestBroker(t, dir)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, "t", TopicConfig{SegmentBytes: 4096, MaxMessageBytes: 2048}); err != nil {
		t.Fatal(err)
	}
	topic, _ := b.Topic("t")
	p, _ := topic.Partition(0)
	big := Record{Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 48<<10)}
	if _, err := p.Append(big); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("before the change: %v, want ErrRecordTooLarge", err)
	}
	if _, err := b.AlterTopicConfig(ctx, "t", func(c *TopicConfig) error { c.MaxMessageBytes = 64 << 10; return nil }); err != nil {
		t.Fatal(err)
	}
	// The active segment is empty and maps 4 KiB.
	if off, err := p.Append(big); err != nil || off != 0 {
		t.Fatalf("append to the empty active segment: %d, %v", off, err)
	}
	small := Record{Value: []byte("small")}
	if _, err := p.Append(small); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AlterTopicConfig(ctx, "t", func(c *TopicConfig) error { c.MaxMessageBytes = 128 << 10; c.SegmentBytes = 1 << 20; return nil }); err != nil {
		t.Fatal(err)
	}
	huge := Record{Value: bytes.Repeat([]byte("h"), 100<<10)}
	if _, err := p.Append(huge); err != nil {
		t.Fatal(err)
	}
	check := func(p *Partition) {
		t.Helper()
		var got [][]byte
		for off := p.StartOffset(); off < p.EndOffset(); {
			sl, err := p.Read(off, 1)
			if err != nil {
				t.Fatal(err)
			}
			for r, err := range Records(sl) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, bytes.Clone(r.Value))
			}
			off = sl.NextOffset
			sl.Release()
		}
		if len(got) != 3 || !bytes.Equal(got[0], big.Value) || !bytes.Equal(got[1], small.Value) || !bytes.Equal(got[2], huge.Value) {
			t.Fatalf("read %d records back", len(got))
		}
	}
	check(p)
	// Lowered again: refused, the connection of the log unaffected.
	if _, err := b.AlterTopicConfig(ctx, "t", func(c *TopicConfig) error { c.MaxMessageBytes = 4096; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(big); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("after lowering: %v, want ErrRecordTooLarge", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openTestBroker(t, dir)
	defer b.Close()
	topic, _ = b.Topic("t")
	p, _ = topic.Partition(0)
	check(p)
}

// TestAlterTopicConfigConcurrent changes the configuration while appends,
// reads, retention and the cleaner run (for the race detector).
func TestAlterTopicConfigConcurrent(t *testing.T) {
	b := openTestBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, "t", TopicConfig{SegmentBytes: 4096, CleanupPolicy: CleanupCompactDelete}); err != nil {
		t.Fatal(err)
	}
	topic, _ := b.Topic("t")
	p, _ := topic.Partition(0)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := p.Append(Record{Key: []byte{byte(i % 7)}, Value: bytes.Repeat([]byte("x"), 200+i%3000)}); err != nil && !errors.Is(err, ErrRecordTooLarge) {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = b.EnforceRetention()
			_, _ = b.CompactTopics(true)
		}
	}()
	for i := range 50 {
		if _, err := b.AlterTopicConfig(ctx, "t", func(c *TopicConfig) error {
			c.SegmentBytes = int64(2048 + 1024*(i%5))
			c.MaxMessageBytes = 2048 + 1024*(i%4)
			c.RetentionBytes = int64(16<<10 + i)
			c.MinCleanableDirtyRatio = float64(i%10) / 10
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestAlterTimestampTypeLive switches a topic to LogAppendTime while open:
// the next batch is stamped with the broker's time; and a LogAppendTime
// topic can then take batches larger than it was opened with.
func TestAlterTimestampTypeLive(t *testing.T) {
	b := openTestBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	topic, err := b.CreateTopic(ctx, "t", TopicConfig{MaxMessageBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := topic.Partition(0)
	old := time.UnixMilli(1_000_000)
	if _, err := p.Append(Record{Value: []byte("created"), Timestamp: old}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AlterTopicConfig(ctx, "t", func(c *TopicConfig) error {
		c.TimestampType = LogAppendTime
		c.MaxMessageBytes = 64 << 10
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	if _, err := p.Append(Record{Value: make([]byte, 16<<10), Timestamp: old}); err != nil {
		t.Fatalf("append above the opened max.message.bytes: %v", err)
	}
	var got []time.Time
	for off := int64(0); off < p.EndOffset(); { // the raise rolled a segment: read each
		s, err := p.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for r, err := range Records(s) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r.Timestamp)
		}
		off = s.NextOffset
		s.Release()
	}
	if len(got) != 2 || !got[0].Equal(old) || got[1].Before(before) {
		t.Fatalf("timestamps %v: want the producer's, then the broker's", got)
	}
}
