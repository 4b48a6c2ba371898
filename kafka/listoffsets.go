package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// Special timestamps of ListOffsets.
const (
	listLatest        = -1 // the high watermark (the last stable offset for read_committed)
	listEarliest      = -2 // the log start offset
	listMaxTimestamp  = -3 // the record with the largest timestamp (version 7+, KIP-734)
	listEarliestLocal = -4 // the earliest offset on local disk (version 8+, KIP-405): the earliest here
)

// handleListOffsets answers, per partition, the earliest offset (-2, and
// -4 from version 8: with no tiered storage every offset is local), the
// latest (-1), the record with the largest timestamp (-3, from version 7),
// or the first offset whose record's timestamp is at or after the one
// given, with that record's timestamp; offset -1 when there is none. A
// special timestamp below the version that defines it answers
// UNSUPPORTED_VERSION.
func (s *Server) handleListOffsets(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		tr := &resp.Topics[i]
		*tr = kmsg.NewListOffsetsResponseTopic()
		tr.Topic = rt.Topic
		tr.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(rt.Partitions))
		for j, rp := range rt.Partitions {
			out := &tr.Partitions[j]
			*out = kmsg.NewListOffsetsResponseTopicPartition()
			out.Partition = rp.Partition
			s.listOffset(req.Version, rt.Topic, &rp, out)
		}
	}
	return resp, nil
}

func (s *Server) listOffset(version int16, topic string, rp *kmsg.ListOffsetsRequestTopicPartition, out *kmsg.ListOffsetsResponseTopicPartition) {
	p, code := s.resolveLeader(topic, rp.Partition, rp.CurrentLeaderEpoch)
	if code != errNone {
		out.ErrorCode = code
		return
	}
	switch ts := rp.Timestamp; ts {
	case listLatest:
		out.Offset = p.EndOffset()
		out.LeaderEpoch = p.LeaderEpoch()
	case listEarliest, listEarliestLocal:
		if ts == listEarliestLocal && version < 8 {
			out.ErrorCode = errUnsupportedVersion
			return
		}
		out.Offset = p.StartOffset()
		out.LeaderEpoch = p.LeaderEpoch()
	case listMaxTimestamp:
		if version < 7 {
			out.ErrorCode = errUnsupportedVersion
			return
		}
		offset, at, ok, err := p.MaxTimestamp()
		if err != nil {
			out.ErrorCode = errorCode(err)
			return
		}
		if !ok {
			return // offset and timestamp -1: no record
		}
		out.Offset = offset
		out.Timestamp = at.UnixMilli()
		out.LeaderEpoch = p.LeaderEpoch()
	default:
		offset, ok, err := p.OffsetForTime(time.UnixMilli(ts))
		if err != nil {
			out.ErrorCode = errorCode(err)
			return
		}
		if !ok {
			return // offset and timestamp -1: no record that late
		}
		recordTS, err := timestampAt(p, offset)
		if err != nil {
			out.ErrorCode = errorCode(err)
			return
		}
		out.Offset = offset
		out.Timestamp = recordTS
		out.LeaderEpoch = p.LeaderEpoch()
	}
}

// timestampAt returns the timestamp (ms) of the record at offset, or of the
// first after it when compaction removed that one.
func timestampAt(p *commitlog.Partition, offset int64) (int64, error) {
	sl, err := p.Read(offset, 1)
	if err != nil {
		return 0, err
	}
	defer sl.Release()
	for rec, err := range commitlog.Records(sl) {
		if err != nil {
			return 0, err
		}
		if rec.Offset >= offset {
			return rec.Timestamp.UnixMilli(), nil
		}
	}
	return -1, nil
}
