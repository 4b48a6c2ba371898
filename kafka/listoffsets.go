package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// Special timestamps of ListOffsets.
const (
	listLatest       = -1 // the high watermark (the last stable offset for read_committed)
	listEarliest     = -2 // the log start offset
	listMaxTimestamp = -3 // the record with the largest timestamp (version 7+, KIP-734)
)

// handleListOffsets answers, per partition, the earliest offset (-2), the
// latest (-1), or the first offset whose record's timestamp is at or after
// the one given, with that record's timestamp; offset -1 when there is none.
// The max-timestamp query (-3, version 7) is not advertised yet: it needs
// the partition to track the offset of its largest timestamp.
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
			s.listOffset(rt.Topic, &rp, out)
		}
	}
	return resp, nil
}

func (s *Server) listOffset(topic string, rp *kmsg.ListOffsetsRequestTopicPartition, out *kmsg.ListOffsetsResponseTopicPartition) {
	p, code := s.resolveLeader(topic, rp.Partition, rp.CurrentLeaderEpoch)
	if code != errNone {
		out.ErrorCode = code
		return
	}
	switch ts := rp.Timestamp; ts {
	case listLatest:
		out.Offset = p.EndOffset()
		out.LeaderEpoch = p.LeaderEpoch()
	case listEarliest:
		out.Offset = p.StartOffset()
		out.LeaderEpoch = p.LeaderEpoch()
	case listMaxTimestamp:
		out.ErrorCode = errUnsupportedVersion
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
