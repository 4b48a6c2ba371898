package compat

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/commitlogtest"
)

// saramaCodecs are the compression codecs sarama supports.
var saramaCodecs = []sarama.CompressionCodec{
	sarama.CompressionNone,
	sarama.CompressionGZIP,
	sarama.CompressionSnappy,
	sarama.CompressionLZ4,
	sarama.CompressionZSTD,
}

// saramaRecord is what a record produced with sarama must read back as.
type saramaRecord struct {
	partition int32
	offset    int64
	key       string
	value     string
	headers   []string // "key=value", in order
	timestamp time.Time
}

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0 // zstd needs >= V2_1_0_0
	return cfg
}

// produceSarama sends perCodec records with each codec through a
// SyncProducer and returns them as the broker stored them, keyed by
// partition and offset.
func produceSarama(ctx context.Context, t *testing.T, addr, topic, tag string, perCodec int) map[[2]int64]saramaRecord {
	t.Helper()
	want := make(map[[2]int64]saramaRecord)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	n := 0
	for _, codec := range saramaCodecs {
		cfg := saramaConfig()
		cfg.Producer.Return.Successes = true
		cfg.Producer.Compression = codec
		p, err := sarama.NewSyncProducer([]string{addr}, cfg)
		if err != nil {
			t.Fatalf("%v: new sync producer: %v", codec, err)
		}
		msgs := make([]*sarama.ProducerMessage, perCodec)
		for i := range msgs {
			ts := base.Add(time.Duration(n) * time.Millisecond)
			msgs[i] = &sarama.ProducerMessage{
				Topic: topic,
				Key:   sarama.StringEncoder(fmt.Sprintf("%s-%v-key-%d", tag, codec, i)),
				Value: sarama.StringEncoder(fmt.Sprintf("%s-%v-value-%d-%s", tag, codec, i, longValue(i))),
				Headers: []sarama.RecordHeader{
					{Key: []byte("codec"), Value: []byte(codec.String())},
					{Key: []byte("n"), Value: []byte(fmt.Sprint(n))},
				},
				Timestamp: ts,
			}
			n++
		}
		// One call per codec: the producer batches the messages of a
		// partition, so the codec compresses batches of several records.
		if err := p.SendMessages(msgs); err != nil {
			p.Close()
			t.Fatalf("%v: send messages: %v", codec, err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("%v: close producer: %v", codec, err)
		}
		for _, m := range msgs {
			if m.Offset < 0 {
				t.Fatalf("%v: message %v has no offset", codec, m.Key)
			}
			k, _ := m.Key.Encode()
			v, _ := m.Value.Encode()
			r := saramaRecord{partition: m.Partition, offset: m.Offset, key: string(k), value: string(v), timestamp: m.Timestamp}
			for _, h := range m.Headers {
				r.headers = append(r.headers, string(h.Key)+"="+string(h.Value))
			}
			id := [2]int64{int64(m.Partition), m.Offset}
			if _, dup := want[id]; dup {
				t.Fatalf("%v: two messages at partition %d offset %d", codec, m.Partition, m.Offset)
			}
			want[id] = r
		}
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
	}
	return want
}

// longValue makes values long and repetitive enough for every codec to
// actually compress them.
func longValue(i int) string {
	b := make([]byte, 200)
	for j := range b {
		b[j] = 'a' + byte((i+j/10)%26)
	}
	return string(b)
}

func fromSarama(m *sarama.ConsumerMessage) saramaRecord {
	r := saramaRecord{partition: m.Partition, offset: m.Offset, key: string(m.Key), value: string(m.Value), timestamp: m.Timestamp}
	for _, h := range m.Headers {
		r.headers = append(r.headers, string(h.Key)+"="+string(h.Value))
	}
	return r
}

func (r saramaRecord) position() (int32, int64) { return r.partition, r.offset }

func (r saramaRecord) equal(o saramaRecord) bool {
	return r.partition == o.partition && r.offset == o.offset && r.key == o.key &&
		r.value == o.value && slices.Equal(r.headers, o.headers) && r.timestamp.Equal(o.timestamp)
}

// groupRun is one run of a sarama consumer group of several members, until
// they have received want records between them: what each member and all
// of them received.
type groupRun struct {
	members int
	want    int

	mu     sync.Mutex
	gens   map[int]int32           // member -> generation of its current session
	ready  map[int32]chan struct{} // generation -> closed once every member is in it
	got    map[[2]int64]int        // record -> member that received it
	per    [][]saramaRecord
	recs   []saramaRecord
	done   chan struct{}
	failed error
}

// groupHandler is the sarama.ConsumerGroupHandler of one member.
type groupHandler struct {
	run    *groupRun
	member int
}

func (h groupHandler) Setup(s sarama.ConsumerGroupSession) error {
	r := h.run
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gens[h.member] = s.GenerationID()
	ch := r.readyLocked(s.GenerationID())
	all := len(r.gens) == r.members
	for _, g := range r.gens {
		all = all && g == s.GenerationID()
	}
	if all {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
	return nil
}

func (r *groupRun) readyLocked(gen int32) chan struct{} {
	ch, ok := r.ready[gen]
	if !ok {
		ch = make(chan struct{})
		r.ready[gen] = ch
	}
	return ch
}

func (groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	r := h.run
	// Consume only once every member is in the same generation: then no
	// rebalance moves a partition while records of it are in flight, and
	// every record arrives exactly once.
	r.mu.Lock()
	ready := r.readyLocked(s.GenerationID())
	r.mu.Unlock()
	select {
	case <-ready:
	case <-s.Context().Done():
		return nil
	}
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return nil
			}
			rec := fromSarama(m)
			r.mu.Lock()
			id := [2]int64{int64(rec.partition), rec.offset}
			if prev, dup := r.got[id]; dup && r.failed == nil {
				r.failed = fmt.Errorf("partition %d offset %d received twice (members %d and %d)", rec.partition, rec.offset, prev, h.member)
			}
			r.got[id] = h.member
			r.per[h.member] = append(r.per[h.member], rec)
			r.recs = append(r.recs, rec)
			if len(r.got) == r.want {
				select {
				case <-r.done:
				default:
					close(r.done)
				}
			}
			r.mu.Unlock()
			// Sarama commits the marked offsets every second and when
			// the session ends (the default Offsets.AutoCommit).
			s.MarkMessage(m, "")
		case <-s.Context().Done():
			return nil
		}
	}
}

// consumeGroup runs a group of members consumers, until they have
// received want records, and returns them in the order received.
func consumeGroup(ctx context.Context, t *testing.T, addr, group, topic string, members, want int) *groupRun {
	t.Helper()
	run := &groupRun{
		members: members, want: want,
		gens:  make(map[int]int32),
		ready: make(map[int32]chan struct{}),
		got:   make(map[[2]int64]int),
		per:   make([][]saramaRecord, members),
		done:  make(chan struct{}),
	}
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, members*4)
	var groups []sarama.ConsumerGroup
	for i := range members {
		cfg := saramaConfig()
		// The group has no committed offset at first: start from the
		// beginning rather than sarama's default, the end.
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		g, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
		if err != nil {
			cancel()
			t.Fatalf("member %d: new consumer group: %v", i, err)
		}
		groups = append(groups, g)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for cctx.Err() == nil {
				if err := g.Consume(cctx, []string{topic}, groupHandler{run, i}); err != nil && cctx.Err() == nil {
					errs <- fmt.Errorf("member %d: consume: %w", i, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for err := range g.Errors() {
				select {
				case errs <- fmt.Errorf("member %d: %w", i, err):
				default:
				}
			}
		}()
	}
	var failure error
	select {
	case <-run.done:
	case err := <-errs:
		failure = err
	case <-ctx.Done():
		failure = fmt.Errorf("waiting for %d records: %w", want, ctx.Err())
	}
	cancel()
	for i, g := range groups {
		if err := g.Close(); err != nil && failure == nil {
			failure = fmt.Errorf("member %d: close: %w", i, err)
		}
	}
	wg.Wait()
	if failure == nil {
		select {
		case failure = <-errs:
		default:
		}
	}
	if failure != nil {
		run.mu.Lock()
		got := len(run.got)
		run.mu.Unlock()
		t.Fatalf("group %s: %v (received %d of %d records)", group, failure, got, want)
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.failed != nil {
		t.Fatalf("group %s: %v", group, run.failed)
	}
	return run
}

func TestSaramaProduceAndConsumerGroup(t *testing.T) {
	const (
		topic      = "sarama"
		partitions = 4
		perCodec   = 12
		group      = "sarama-group"
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, addr := commitlogtest.NewKafka(t, commitlogtest.WithTopic(topic, commitlog.TopicConfig{Partitions: partitions}))

	want := produceSarama(ctx, t, addr, topic, "first", perCodec)
	if len(want) != perCodec*len(saramaCodecs) {
		t.Fatalf("produced %d distinct records, want %d", len(want), perCodec*len(saramaCodecs))
	}

	// Two members consume everything once between them, committing.
	run := consumeGroup(ctx, t, addr, group, topic, 2, len(want))
	checkExactlyOnce(t, want, run.recs)
	for i, recs := range run.per {
		if len(recs) == 0 {
			t.Errorf("member %d received no records: the partitions were not shared", i)
		}
	}
	owner := make(map[int32]int)
	for i, recs := range run.per {
		for _, r := range recs {
			if o, ok := owner[r.partition]; ok && o != i {
				t.Errorf("partition %d consumed by members %d and %d", r.partition, o, i)
			}
			owner[r.partition] = i
		}
	}

	// The committed offsets are the end of every partition.
	committed := committedOffsets(t, addr, group, topic, partitions)
	end := make(map[int32]int64)
	for _, r := range want {
		end[r.partition] = max(end[r.partition], r.offset+1)
	}
	for p := range int32(partitions) {
		if committed[p] != end[p] {
			t.Errorf("partition %d: committed offset %d, want %d", p, committed[p], end[p])
		}
	}

	// A restarted group resumes from the commit: it receives exactly the
	// records produced since, none of the first ones.
	more := produceSarama(ctx, t, addr, topic, "second", perCodec/2)
	run = consumeGroup(ctx, t, addr, group, topic, 2, len(more))
	checkExactlyOnce(t, more, run.recs)
	for _, r := range run.recs {
		if r.offset < committed[r.partition] {
			t.Errorf("restarted group read partition %d offset %d, before its commit %d", r.partition, r.offset, committed[r.partition])
		}
	}
}

// committedOffsets returns the group's committed offsets of topic, read
// with sarama's ClusterAdmin.
func committedOffsets(t *testing.T, addr, group, topic string, partitions int32) map[int32]int64 {
	t.Helper()
	admin, err := sarama.NewClusterAdmin([]string{addr}, saramaConfig())
	if err != nil {
		t.Fatalf("new cluster admin: %v", err)
	}
	defer admin.Close()
	ps := make([]int32, partitions)
	for i := range ps {
		ps[i] = int32(i)
	}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: ps})
	if err != nil {
		t.Fatalf("list consumer group offsets: %v", err)
	}
	if resp.Err != sarama.ErrNoError {
		t.Fatalf("list consumer group offsets: %v", resp.Err)
	}
	out := make(map[int32]int64)
	for _, p := range ps {
		b := resp.GetBlock(topic, p)
		if b == nil {
			t.Fatalf("partition %d: no committed offset", p)
		}
		if b.Err != sarama.ErrNoError {
			t.Fatalf("partition %d: committed offset: %v", p, b.Err)
		}
		out[p] = b.Offset
	}
	return out
}
