package kafka

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/internal/batch"
)

// TestInitProducerID checks every version served: fresh ids with epoch 0,
// a transactional id refused, and a half-given producer id and epoch
// refused.
func TestInitProducerID(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	seen := map[int64]bool{}
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = v
		if v >= 3 {
			// A bump after an error (KIP-360): without a transactional id
			// the answer is a new id, as from Kafka.
			req.ProducerID, req.ProducerEpoch = 1234, 5
		}
		resp := roundTrip[*kmsg.InitProducerIDResponse](c, req, int32(v))
		if resp.ErrorCode != 0 || resp.ProducerID < 0 || resp.ProducerEpoch != 0 || seen[resp.ProducerID] {
			t.Fatalf("v%d: %+v", v, resp)
		}
		seen[resp.ProducerID] = true

		txn := kmsg.NewPtrInitProducerIDRequest()
		txn.Version = v
		txn.TransactionalID = kmsg.StringPtr("txn")
		txn.TransactionTimeoutMillis = 60000
		if resp := roundTrip[*kmsg.InitProducerIDResponse](c, txn, 100+int32(v)); resp.ErrorCode != errTransactionalIDAuthz || resp.ProducerID != -1 {
			t.Fatalf("v%d transactional: %+v", v, resp)
		}
	}
	half := kmsg.NewPtrInitProducerIDRequest()
	half.Version = 4
	half.ProducerID, half.ProducerEpoch = -1, 3
	if resp := roundTrip[*kmsg.InitProducerIDResponse](c, half, 9); resp.ErrorCode != errInvalidRequest {
		t.Fatalf("epoch without id: %+v", resp)
	}

	// franz-go's transactional producer fails at once, not in a retry
	// loop.
	cl := e.client(kgo.TransactionalID("txn"))
	if err := cl.BeginTransaction(); !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("BeginTransaction: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
	}
}

// producePart is one partition of a raw Produce request.
type producePart struct {
	topic     string
	partition int32
	records   []byte
}

// produceRequest makes an acks=all Produce request.
func produceRequest(version int16, parts ...producePart) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = version
	req.Acks = -1
	req.TimeoutMillis = int32(testTimeout / time.Millisecond)
	for _, p := range parts {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = p.topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p.partition
		rp.Records = p.records
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// idempotentBatch encodes values as one batch of producer id at epoch,
// starting at sequence seq. The records are stamped now: a producer whose
// last batch is older than a day (by its timestamps) is left out of the
// log's producer snapshot.
func idempotentBatch(t testing.TB, id int64, epoch int16, seq int32, values ...string) []byte {
	t.Helper()
	var bb batch.Builder
	bb.Reset(batch.CodecNone)
	bb.SetProducer(id, epoch, seq)
	now := time.Now().UnixMilli()
	for _, v := range values {
		bb.Add(now, nil, []byte(v), nil)
	}
	b, err := bb.Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIdempotentProduce drives an idempotent producer by hand: a retried
// Produce, sent twice byte for byte, answers the original offset and
// writes nothing; a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older
// epoch is INVALID_PRODUCER_EPOCH. A broker restart keeps all of it: the
// log rebuilds the producers' state from its snapshot.
func TestIdempotentProduce(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, envOptions{dir: dir})
	e.createTopic("idem", commitlog.TopicConfig{Partitions: 2})
	c := e.dial()
	pid := roundTrip[*kmsg.InitProducerIDResponse](c, kmsg.NewPtrInitProducerIDRequest(), 1).ProducerID

	var corr int32
	produce := func(c *rawConn, version int16, parts ...producePart) []kmsg.ProduceResponseTopicPartition {
		t.Helper()
		corr++
		resp := roundTrip[*kmsg.ProduceResponse](c, produceRequest(version, parts...), corr)
		var out []kmsg.ProduceResponseTopicPartition
		for _, tr := range resp.Topics {
			out = append(out, tr.Partitions...)
		}
		return out
	}
	expect := func(what string, got kmsg.ProduceResponseTopicPartition, code int16, base int64) {
		t.Helper()
		if got.ErrorCode != code || code == 0 && got.BaseOffset != base {
			t.Fatalf("%s: error %d base offset %d, want error %d base offset %d", what, got.ErrorCode, got.BaseOffset, code, base)
		}
	}
	end := func(p int32) int64 { return partition(t, e, "idem", p).EndOffset() }

	first := producePart{"idem", 0, idempotentBatch(t, pid, 0, 0, "a", "b")}
	other := producePart{"idem", 1, idempotentBatch(t, pid, 0, 0, "x")}
	r := produce(c, 9, first, other)
	expect("first", r[0], 0, 0)
	expect("other partition", r[1], 0, 0)
	second := producePart{"idem", 0, idempotentBatch(t, pid, 0, 2, "c")}
	expect("second", produce(c, 9, second)[0], 0, 2)

	// The same request again, as after a lost response: the original
	// offsets, nothing written.
	r = produce(c, 9, first, other)
	expect("retried first", r[0], 0, 0)
	expect("retried other", r[1], 0, 0)
	expect("retried second", produce(c, 3, second)[0], 0, 2)
	if end(0) != 3 || end(1) != 1 {
		t.Fatalf("end offsets %d and %d after retries, want 3 and 1", end(0), end(1))
	}

	gap := producePart{"idem", 0, idempotentBatch(t, pid, 0, 10, "gap")}
	expect("sequence gap", produce(c, 9, gap)[0], errOutOfOrderSequence, 0)
	// A new epoch starts at sequence 0 and fences the old one.
	bumped := producePart{"idem", 0, idempotentBatch(t, pid, 1, 0, "d")}
	expect("new epoch", produce(c, 9, bumped)[0], 0, 3)
	stale := producePart{"idem", 0, idempotentBatch(t, pid, 0, 3, "zombie")}
	expect("old epoch", produce(c, 9, stale)[0], errInvalidProducerEpoch, 0)
	if end(0) != 4 {
		t.Fatalf("end offset %d, want 4", end(0))
	}

	// Restart the broker on the same directory.
	e.stop()
	e = newEnv(t, envOptions{dir: dir})
	c = e.dial()
	expect("retry after restart", produce(c, 9, bumped)[0], 0, 3)
	expect("gap after restart", produce(c, 9, producePart{"idem", 0, idempotentBatch(t, pid, 1, 5, "gap")})[0], errOutOfOrderSequence, 0)
	expect("old epoch after restart", produce(c, 9, stale)[0], errInvalidProducerEpoch, 0)
	expect("next after restart", produce(c, 9, producePart{"idem", 0, idempotentBatch(t, pid, 1, 1, "e")})[0], 0, 4)
	r = produce(c, 9, other)
	expect("other partition after restart", r[0], 0, 0)
	if end(0) != 5 || end(1) != 1 {
		t.Fatalf("end offsets %d and %d after restart, want 5 and 1", end(0), end(1))
	}
	// Producer ids stay unique across restarts.
	if next := roundTrip[*kmsg.InitProducerIDResponse](c, kmsg.NewPtrInitProducerIDRequest(), 99).ProducerID; next <= pid {
		t.Fatalf("producer id %d after restart, not above %d", next, pid)
	}
}

// TestProduceGroupCommit produces to several partitions with acks=all
// under the broker's default SyncGroupCommit: every partition is durable
// when the answer comes, and a LogAppendTime topic answers its append time.
func TestProduceGroupCommit(t *testing.T) {
	e := newEnv(t, envOptions{groupCommit: true})
	e.createTopic("durable", commitlog.TopicConfig{Partitions: 3})
	e.createTopic("stamped", commitlog.TopicConfig{TimestampType: commitlog.LogAppendTime})
	c := e.dial()
	before := time.Now().UnixMilli()
	var parts []producePart
	for p := range int32(3) {
		parts = append(parts, producePart{"durable", p, appendBatch(t, "a", "b", "c")})
	}
	parts = append(parts, producePart{"stamped", 0, appendBatch(t, "now")})
	resp := roundTrip[*kmsg.ProduceResponse](c, produceRequest(9, parts...), 1)
	for _, tr := range resp.Topics {
		for _, p := range tr.Partitions {
			if p.ErrorCode != 0 || p.BaseOffset != 0 || p.LogStartOffset != 0 {
				t.Fatalf("%s/%d: %+v", tr.Topic, p.Partition, p)
			}
			durable := partition(t, e, tr.Topic, p.Partition).DurableOffset()
			want := partition(t, e, tr.Topic, p.Partition).EndOffset()
			if durable < want {
				t.Fatalf("%s/%d: durable to %d of %d when acknowledged", tr.Topic, p.Partition, durable, want)
			}
			switch tr.Topic {
			case "stamped":
				if p.LogAppendTime < before || p.LogAppendTime > time.Now().UnixMilli() {
					t.Fatalf("log append time %d, want between %d and now", p.LogAppendTime, before)
				}
			default:
				if p.LogAppendTime != -1 {
					t.Fatalf("%s/%d: log append time %d on a CreateTime topic", tr.Topic, p.Partition, p.LogAppendTime)
				}
			}
		}
	}

	// franz-go's default producer: idempotent, acks=all.
	cl := e.client(kgo.DefaultProduceTopic("durable"))
	ctx := testContext(t)
	for i := range 50 {
		cl.Produce(ctx, &kgo.Record{Value: []byte{byte(i)}}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for p := range int32(3) {
		total += partition(t, e, "durable", p).EndOffset()
	}
	if total != 9+50 {
		t.Fatalf("%d records in the topic, want %d", total, 9+50)
	}
}
