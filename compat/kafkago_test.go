package compat

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/commitlogtest"
)

// kafkaGoRecord is what a record produced with kafka-go must read back as.
type kafkaGoRecord struct {
	partition int
	offset    int64
	key       string
	value     string
	headers   []string // "key=value", in order
	time      time.Time
}

func fromKafkaGo(m kafka.Message) kafkaGoRecord {
	r := kafkaGoRecord{partition: m.Partition, offset: m.Offset, key: string(m.Key), value: string(m.Value), time: m.Time}
	for _, h := range m.Headers {
		r.headers = append(r.headers, h.Key+"="+string(h.Value))
	}
	return r
}

func (r kafkaGoRecord) position() (int32, int64) { return int32(r.partition), r.offset }

func (r kafkaGoRecord) equal(o kafkaGoRecord) bool {
	return r.partition == o.partition && r.offset == o.offset && r.key == o.key &&
		r.value == o.value && slices.Equal(r.headers, o.headers) && r.time.Equal(o.time)
}

// kafkaGoCodecs are the Writer's compression settings tested: none, and
// every codec kafka-go supports.
var kafkaGoCodecs = []kafka.Compression{0, kafka.Gzip, kafka.Snappy, kafka.Lz4, kafka.Zstd}

func codecName(c kafka.Compression) string {
	if c == 0 {
		return "none"
	}
	return compress.Codec(c.Codec()).Name()
}

// produceKafkaGo writes perCodec records with each codec through a Writer
// and returns them with the partition and offset the broker gave them, as
// the Writer's Completion reports them.
func produceKafkaGo(ctx context.Context, t *testing.T, addr, topic string, perCodec int) map[[2]int64]kafkaGoRecord {
	t.Helper()
	want := make(map[[2]int64]kafkaGoRecord)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	n := 0
	for _, codec := range kafkaGoCodecs {
		name := codecName(codec)
		var mu sync.Mutex
		var done []kafka.Message
		var failed error
		w := &kafka.Writer{
			Addr:        kafka.TCP(addr),
			Topic:       topic,
			Compression: codec,
			// The default, RequireNone, gets no produce response, and so
			// no offsets for Completion.
			RequiredAcks: kafka.RequireAll,
			// The default, 1s, would make each WriteMessages call wait a
			// second for a full batch.
			BatchTimeout: 10 * time.Millisecond,
			// Completion reports the partition and offset of each
			// message written.
			Completion: func(msgs []kafka.Message, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil && failed == nil {
					failed = err
				}
				done = append(done, msgs...)
			},
		}
		msgs := make([]kafka.Message, perCodec)
		for i := range msgs {
			msgs[i] = kafka.Message{
				Key:   fmt.Appendf(nil, "%s-key-%d", name, i),
				Value: fmt.Appendf(nil, "%s-value-%d-%s", name, i, longValue(i)),
				Headers: []kafka.Header{
					{Key: "codec", Value: []byte(name)},
					{Key: "n", Value: fmt.Append(nil, n)},
				},
				Time: base.Add(time.Duration(n) * time.Millisecond),
			}
			n++
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			w.Close()
			t.Fatalf("%s: write messages: %v", name, err)
		}
		// Close waits for the Completion calls.
		if err := w.Close(); err != nil {
			t.Fatalf("%s: close writer: %v", name, err)
		}
		mu.Lock()
		if failed != nil {
			t.Fatalf("%s: completion: %v", name, failed)
		}
		if len(done) != perCodec {
			t.Fatalf("%s: %d messages completed, want %d", name, len(done), perCodec)
		}
		for _, m := range done {
			id := [2]int64{int64(m.Partition), m.Offset}
			if _, dup := want[id]; dup {
				t.Fatalf("%s: two messages at partition %d offset %d", name, m.Partition, m.Offset)
			}
			want[id] = fromKafkaGo(m)
		}
		mu.Unlock()
	}
	return want
}

// readerMaxWait is the Readers' MaxWait, the longest a fetch waits for
// records. Reader.Close waits for the fetch in flight
// (segmentio/kafka-go#428), so the default, 10s, would add up to 10s to
// every Close.
const readerMaxWait = 500 * time.Millisecond

func TestKafkaGoWriterAndReaders(t *testing.T) {
	const (
		topic      = "kafka-go"
		partitions = 3
		perCodec   = 12
		group      = "kafka-go-group"
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, addr := commitlogtest.NewKafka(t, commitlogtest.WithTopic(topic, commitlog.TopicConfig{Partitions: partitions}))

	want := produceKafkaGo(ctx, t, addr, topic, perCodec)
	if len(want) != perCodec*len(kafkaGoCodecs) {
		t.Fatalf("produced %d distinct records, want %d", len(want), perCodec*len(kafkaGoCodecs))
	}
	perPartition := make(map[int]map[[2]int64]kafkaGoRecord)
	for id, r := range want {
		if perPartition[r.partition] == nil {
			perPartition[r.partition] = make(map[[2]int64]kafkaGoRecord)
		}
		perPartition[r.partition][id] = r
	}

	t.Run("group", func(t *testing.T) {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: group, Topic: topic, MaxWait: readerMaxWait})
		var got []kafkaGoRecord
		for range len(want) {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read message %d of %d: %v", len(got)+1, len(want), err)
			}
			got = append(got, fromKafkaGo(m))
		}
		if err := r.Close(); err != nil {
			t.Fatalf("close reader: %v", err)
		}
		checkExactlyOnce(t, want, got)

		// ReadMessage committed every offset: the group's offsets are
		// the end of every partition.
		client := &kafka.Client{Addr: kafka.TCP(addr)}
		resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2}}})
		if err != nil {
			t.Fatalf("offset fetch: %v", err)
		}
		if resp.Error != nil {
			t.Fatalf("offset fetch: %v", resp.Error)
		}
		for _, p := range resp.Topics[topic] {
			if p.Error != nil {
				t.Errorf("partition %d: offset fetch: %v", p.Partition, p.Error)
			}
			if want := int64(len(perPartition[p.Partition])); p.CommittedOffset != want {
				t.Errorf("partition %d: committed offset %d, want %d", p.Partition, p.CommittedOffset, want)
			}
		}
		if len(resp.Topics[topic]) != partitions {
			t.Errorf("offset fetch returned %d partitions, want %d", len(resp.Topics[topic]), partitions)
		}
	})

	t.Run("partition", func(t *testing.T) {
		for p := range partitions {
			wantP := perPartition[p]
			if len(wantP) == 0 {
				t.Fatalf("partition %d received no records: the writer did not spread them", p)
			}
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MaxWait: readerMaxWait})
			var got []kafkaGoRecord
			for range len(wantP) {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					r.Close()
					t.Fatalf("partition %d: read message %d of %d: %v", p, len(got)+1, len(wantP), err)
				}
				got = append(got, fromKafkaGo(m))
			}
			if err := r.Close(); err != nil {
				t.Fatalf("partition %d: close reader: %v", p, err)
			}
			checkExactlyOnce(t, wantP, got)
			for i, rec := range got {
				if rec.offset != int64(i) {
					t.Errorf("partition %d: record %d has offset %d", p, i, rec.offset)
				}
			}
		}
	})
}
