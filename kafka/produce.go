package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/internal/batch"
)

// Acks values of a Produce request.
const (
	acksNone   = 0
	acksLeader = 1
	acksAll    = -1
)

// handleProduce appends each partition's record batch, exactly as received,
// to its partition, and answers with the base offsets.
//
// Every batch of the request is written first (Partition.WriteBatch: in
// the log and readable, not yet durable); then, for acks=1 and acks=all
// under the broker's SyncGroupCommit, one WaitDurable per partition waits
// for the fsync that covers it. The partitions' flushers sync
// concurrently, so a request spanning many partitions waits for about one
// fsync, not one per partition, and concurrent requests share rounds. The
// wait is bounded by the request's TimeoutMillis: past it the partition
// answers REQUEST_TIMED_OUT, its records written but not acknowledged, and
// the client retries. Other sync policies do not wait, as AppendBatch does
// not. On a broker of a cluster, acks=all also waits for the high
// watermark to pass the batch (every in-sync replica has it) and fails
// with NOT_ENOUGH_REPLICAS up front when too few replicas are in sync.
// The wait runs on the connection before the answer is written, and the
// connection appends the client's next pipelined Produce meanwhile
// (conn.go, serve), so one fsync or replication round serves several of a
// client's requests in flight.
//
// Idempotent producers' batches are checked by the log (producerstate.go):
// a retry of one of the producer's last five batches answers success with
// the original base offset and writes nothing; a sequence gap is
// OUT_OF_ORDER_SEQUENCE_NUMBER, an epoch older than the producer's latest
// INVALID_PRODUCER_EPOCH.
//
// With acks=0 nothing is answered; if any partition failed, the connection
// is closed instead, as Kafka does, so that the client notices and
// refreshes its metadata.
func (s *Server) handleProduce(_ context.Context, r *request) (kmsg.Response, error) {
	s.stats.produceRequests.Add(1)
	req := r.body.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	validAcks := req.Acks == acksNone || req.Acks == acksLeader || req.Acks == acksAll
	acks := commitlog.AcksLeader
	switch req.Acks {
	case acksAll:
		acks = commitlog.AcksAll
	case acksNone:
		acks = commitlog.AcksNone
	}

	// durable collects, per partition written, the offset to wait for and
	// the answers that depend on it; in request order.
	type durable struct {
		p    *commitlog.Partition
		next int64
		outs []*kmsg.ProduceResponseTopicPartition
	}
	var waits []durable
	index := map[*commitlog.Partition]int{} // into waits
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		tr := &resp.Topics[i]
		*tr = kmsg.NewProduceResponseTopic()
		tr.Topic = rt.Topic
		tr.TopicID = rt.TopicID
		tr.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for j, rp := range rt.Partitions {
			out := &tr.Partitions[j]
			*out = kmsg.NewProduceResponseTopicPartition()
			out.Partition = rp.Partition
			out.BaseOffset = -1
			if !validAcks {
				out.ErrorCode = errInvalidRequiredAcks
				continue
			}
			p, next, ok := s.writePartition(rt.Topic, rp.Partition, rp.Records, acks, out)
			if !ok {
				continue
			}
			k, seen := index[p]
			if !seen {
				k = len(waits)
				index[p] = k
				waits = append(waits, durable{p: p})
			}
			waits[k].next = max(waits[k].next, next)
			waits[k].outs = append(waits[k].outs, out)
		}
	}

	if req.Acks == acksNone {
		for _, tr := range resp.Topics {
			for _, out := range tr.Partitions {
				if out.ErrorCode != errNone {
					return nil, closeConn("acks=0 produce to %s partition %d failed with error %d", tr.Topic, out.Partition, out.ErrorCode)
				}
			}
		}
		return nil, nil
	}
	if len(waits) > 0 {
		// The records are appended; the answer waits for them to be
		// written as acks says. The connection runs the wait before it
		// writes the answer, and may append its next Produce meanwhile.
		deadline := time.Time{}
		if req.TimeoutMillis > 0 {
			deadline = time.Now().Add(time.Duration(req.TimeoutMillis) * time.Millisecond)
		}
		r.wait = func() {
			ctx := context.Background()
			if !deadline.IsZero() {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, deadline)
				defer cancel()
			}
			for _, d := range waits {
				if err := d.p.WaitAcked(ctx, d.next, acks); err != nil {
					for _, out := range d.outs {
						out.ErrorCode = errorCode(err)
						out.ErrorMessage = errorMessage(err)
						out.BaseOffset, out.LogAppendTime, out.LogStartOffset = -1, -1, -1
					}
				}
			}
		}
	}
	return resp, nil
}

// writePartition writes one partition's records and fills its answer. It
// returns the partition and its end offset after the batch (what to wait
// for before the batch counts as durable), or ok false when the write
// failed, the answer then holding the error.
func (s *Server) writePartition(topic string, partition int32, records []byte, acks commitlog.Acks, out *kmsg.ProduceResponseTopicPartition) (p *commitlog.Partition, next int64, ok bool) {
	fail := func(code int16, err error) (*commitlog.Partition, int64, bool) {
		out.ErrorCode = code
		out.ErrorMessage = errorMessage(err)
		return nil, 0, false
	}
	if commitlog.IsInternalTopic(topic) {
		// Only the broker writes its internal topics (Kafka answers the same).
		return fail(errInvalidTopic, fmt.Errorf("%w: %s is internal: clients cannot produce to it", commitlog.ErrInvalidTopic, topic))
	}
	t, err := s.b.Topic(topic)
	if err != nil {
		return fail(errorCode(err), err)
	}
	p, err = t.Partition(partition)
	if err != nil {
		return fail(errorCode(err), err)
	}
	if code, err := checkProduceBatch(records); code != errNone {
		return fail(code, err)
	}
	res, err := p.WriteBatch(records, acks)
	if err != nil {
		return fail(errorCode(err), err)
	}
	out.BaseOffset = res.BaseOffset
	out.LogAppendTime = res.LogAppendTime
	out.LogStartOffset = p.StartOffset()
	return p, res.NextOffset, true
}

// checkProduceBatch applies Kafka's rules for the records of one partition
// of a Produce request (version 3+): exactly one batch of magic 2, no
// control batch, nothing transactional (there are no transactions yet).
// The partition checks the rest (size, CRC, records) as it appends.
func checkProduceBatch(records []byte) (int16, error) {
	if len(records) == 0 {
		return errInvalidRecord, errors.New("produce requests must carry one record batch")
	}
	h, err := batch.ReadHeader(records)
	switch {
	case errors.Is(err, batch.ErrBadMagic):
		return errInvalidRecord, errors.New("produce requests of version 3 and later carry record batches of magic 2 only")
	case err != nil:
		return errCorruptMessage, err
	case h.Size() < len(records):
		return errInvalidRecord, errors.New("produce requests carry exactly one record batch per partition")
	case h.Control():
		return errInvalidRecord, errors.New("clients may not write control batches")
	case h.Transactional():
		return errInvalidTxnState, errors.New("transactions are not supported")
	}
	return errNone, nil
}
