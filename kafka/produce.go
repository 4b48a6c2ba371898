package kafka

import (
	"context"
	"errors"
	"sync"

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
// to its partition, and answers with the base offsets. Partitions are
// appended concurrently, so that their fsyncs (under the broker's default
// group commit) overlap instead of adding up.
//
// With acks=0 nothing is answered; if any partition failed, the connection
// is closed instead, as Kafka does, so that the client notices and
// refreshes its metadata. acks=all waits for what acks=1 does until
// replication exists: the append, durable under group commit.
func (s *Server) handleProduce(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)

	// Batches of one partition are appended in request order, distinct
	// partitions in parallel.
	type work struct {
		records []byte
		out     *kmsg.ProduceResponseTopicPartition
	}
	byPartition := map[topicPartition][]work{}
	var order []topicPartition
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
			tp := topicPartition{rt.Topic, rp.Partition}
			if _, ok := byPartition[tp]; !ok {
				order = append(order, tp)
			}
			byPartition[tp] = append(byPartition[tp], work{records: rp.Records, out: out})
		}
	}

	switch req.Acks {
	case acksNone, acksLeader, acksAll:
		produce := func(tp topicPartition) {
			for _, w := range byPartition[tp] {
				s.producePartition(tp, w.records, w.out)
			}
		}
		if len(order) == 1 {
			produce(order[0])
		} else {
			var wg sync.WaitGroup
			for _, tp := range order {
				wg.Go(func() { produce(tp) })
			}
			wg.Wait()
		}
	default:
		for _, works := range byPartition {
			for _, w := range works {
				w.out.ErrorCode = errInvalidRequiredAcks
			}
		}
	}

	if req.Acks == acksNone {
		for _, tp := range order {
			for _, w := range byPartition[tp] {
				if w.out.ErrorCode != errNone {
					return nil, closeConn("acks=0 produce to %s partition %d failed with error %d", tp.topic, tp.partition, w.out.ErrorCode)
				}
			}
		}
		return nil, nil
	}
	return resp, nil
}

// topicPartition names a partition.
type topicPartition struct {
	topic     string
	partition int32
}

// producePartition appends one partition's records and fills its response.
func (s *Server) producePartition(tp topicPartition, records []byte, out *kmsg.ProduceResponseTopicPartition) {
	fail := func(code int16, err error) {
		out.ErrorCode = code
		out.ErrorMessage = errorMessage(err)
	}
	t, err := s.b.Topic(tp.topic)
	if err != nil {
		fail(errorCode(err), err)
		return
	}
	p, err := t.Partition(tp.partition)
	if err != nil {
		fail(errorCode(err), err)
		return
	}
	if code, err := checkProduceBatch(records); code != errNone {
		fail(code, err)
		return
	}
	base, err := p.AppendBatch(records)
	if err != nil {
		fail(errorCode(err), err)
		return
	}
	out.BaseOffset = base
	out.LogStartOffset = p.StartOffset()
	if t.Config().TimestampType == commitlog.LogAppendTime {
		// AppendBatch stamped the batch with its append time.
		if h, err := batch.ReadHeader(records); err == nil {
			out.LogAppendTime = h.MaxTimestamp
		}
	}
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
