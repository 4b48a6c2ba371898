package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// Committed offsets: OffsetCommit, OffsetFetch and OffsetDelete, relayed to
// the GroupCoordinator (see groups.go).

// handleOffsetCommit commits a group's offsets. A member commits for its
// generation; generation -1 without a member id is a commit from outside
// group management (a consumer assigning itself partitions, an admin
// tool), accepted while the group has no members. A refusal of the whole
// request (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS,
// ...) is answered on every partition, the response having no other error
// field; otherwise each partition has its own outcome
// (UNKNOWN_TOPIC_OR_PARTITION, OFFSET_METADATA_TOO_LARGE, ...). The
// retention time of versions 2-4 is ignored, as Kafka ignores it since
// 2.1 (KIP-211): offsets expire by Options.OffsetsRetention once the group
// is empty.
func (s *Server) handleOffsetCommit(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	cr := commitlog.CommitRequest{
		Group:      req.Group,
		Generation: req.Generation,
		MemberID:   req.MemberID,
		InstanceID: strOrEmpty(req.InstanceID),
		Offsets:    make(map[string]map[int32]commitlog.OffsetAndMetadata, len(req.Topics)),
	}
	for _, rt := range req.Topics {
		parts := cr.Offsets[rt.Topic]
		if parts == nil {
			parts = make(map[int32]commitlog.OffsetAndMetadata, len(rt.Partitions))
			cr.Offsets[rt.Topic] = parts
		}
		for _, rp := range rt.Partitions {
			epoch := int32(-1)
			if req.Version >= 6 {
				epoch = rp.LeaderEpoch
			}
			parts[rp.Partition] = commitlog.OffsetAndMetadata{Offset: rp.Offset, LeaderEpoch: epoch, Metadata: strOrEmpty(rp.Metadata)}
		}
	}
	// The commit is not a wait for other clients: once begun it is
	// answered with its outcome, Shutdown or not.
	err := s.b.Groups().CommitOffsets(context.WithoutCancel(ctx), cr)
	partErrs, all := splitPartitionErrors(err)
	allCode := groupErrorCode(all)
	if errors.Is(all, commitlog.ErrRecordTooLarge) {
		// Kafka's answer to a commit too large for __consumer_offsets.
		allCode = errInvalidCommitOffsetSize
	}
	for _, rt := range req.Topics {
		ot := kmsg.NewOffsetCommitResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewOffsetCommitResponseTopicPartition()
			op.Partition = rp.Partition
			op.ErrorCode = allCode
			if all == nil {
				op.ErrorCode = errorCode(partErrs[rt.Topic][rp.Partition])
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp, nil
}

// splitPartitionErrors separates an error of CommitOffsets or
// DeleteOffsets into the partitions' errors and an error of the whole
// request.
func splitPartitionErrors(err error) (map[string]map[int32]error, error) {
	if err == nil {
		return nil, nil
	}
	if pe, ok := errors.AsType[*commitlog.PartitionErrors](err); ok {
		return pe.Errs, nil
	}
	return nil, err
}

// handleOffsetFetch returns committed offsets: of the partitions asked, or
// from version 2 of every partition the group committed when the request's
// topics are null. A partition without a committed offset (or of a group
// that does not exist) is answered offset -1, metadata "" and no error, as
// Kafka answers. Version 8 asks for several groups at once, each answered
// on its own. An error of the whole request is the top-level error from
// version 2; version 1 has no such field and carries it on every partition
// asked (Kafka's OffsetFetchRequest.getErrorResponse). RequireStable
// (version 7) waits for no pending transactional commits, since there are
// none.
func (s *Server) handleOffsetFetch(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	ctx = context.WithoutCancel(ctx)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			og := kmsg.NewOffsetFetchResponseGroup()
			og.Group = rg.Group
			var asked []fetchTopic
			if rg.Topics != nil {
				asked = make([]fetchTopic, len(rg.Topics))
				for i, t := range rg.Topics {
					asked[i] = fetchTopic{t.Topic, t.Partitions}
				}
			}
			fetched, err := s.fetchOffsets(ctx, rg.Group, asked, rg.Topics == nil)
			if err != nil {
				og.ErrorCode = groupErrorCode(err)
			}
			for _, ft := range fetched {
				ot := kmsg.NewOffsetFetchResponseGroupTopic()
				ot.Topic = ft.topic
				for _, fp := range ft.partitions {
					op := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					op.Partition, op.Offset, op.LeaderEpoch, op.Metadata = fp.partition, fp.offset, fp.leaderEpoch, &fp.metadata
					ot.Partitions = append(ot.Partitions, op)
				}
				og.Topics = append(og.Topics, ot)
			}
			resp.Groups = append(resp.Groups, og)
		}
		return resp, nil
	}
	asked := make([]fetchTopic, len(req.Topics))
	for i, t := range req.Topics {
		asked[i] = fetchTopic{t.Topic, t.Partitions}
	}
	fetched, err := s.fetchOffsets(ctx, req.Group, asked, req.Version >= 2 && req.Topics == nil)
	var code int16
	if err != nil {
		code = groupErrorCode(err)
		if req.Version >= 2 {
			resp.ErrorCode = code
			return resp, nil
		}
		fetched = unfetched(asked)
	}
	for _, ft := range fetched {
		ot := kmsg.NewOffsetFetchResponseTopic()
		ot.Topic = ft.topic
		for _, fp := range ft.partitions {
			op := kmsg.NewOffsetFetchResponseTopicPartition()
			op.Partition, op.Offset, op.LeaderEpoch, op.Metadata = fp.partition, fp.offset, fp.leaderEpoch, &fp.metadata
			op.ErrorCode = code
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp, nil
}

// fetchTopic is a topic's partitions asked for in an OffsetFetch.
type fetchTopic struct {
	topic      string
	partitions []int32
}

// fetchedTopic is a topic's committed offsets, as OffsetFetch answers them.
type fetchedTopic struct {
	topic      string
	partitions []fetchedPartition
}

type fetchedPartition struct {
	partition   int32
	offset      int64 // -1: none committed
	leaderEpoch int32
	metadata    string
}

// fetchOffsets returns group's committed offsets of the partitions asked,
// in the order asked, or with all of every partition it committed, sorted.
// On error it returns nil and the error of the whole request.
func (s *Server) fetchOffsets(ctx context.Context, group string, asked []fetchTopic, all bool) ([]fetchedTopic, error) {
	var want map[string][]int32 // nil: all
	if !all {
		want = make(map[string][]int32, len(asked))
		for _, t := range asked {
			want[t.topic] = append(want[t.topic], t.partitions...)
		}
	}
	committed, err := s.b.Groups().FetchOffsets(ctx, group, want)
	if err != nil {
		return nil, err
	}
	if all {
		asked = asked[:0]
		for _, topic := range slices.Sorted(maps.Keys(committed)) {
			asked = append(asked, fetchTopic{topic, slices.Sorted(maps.Keys(committed[topic]))})
		}
	}
	out := unfetched(asked)
	for i := range out {
		ft := &out[i]
		for j := range ft.partitions {
			fp := &ft.partitions[j]
			if om, ok := committed[ft.topic][fp.partition]; ok {
				fp.offset, fp.leaderEpoch, fp.metadata = om.Offset, om.LeaderEpoch, om.Metadata
			}
		}
	}
	return out, nil
}

// unfetched answers the partitions asked with no committed offset.
func unfetched(asked []fetchTopic) []fetchedTopic {
	out := make([]fetchedTopic, len(asked))
	for i, t := range asked {
		out[i].topic = t.topic
		out[i].partitions = make([]fetchedPartition, len(t.partitions))
		for j, p := range t.partitions {
			out[i].partitions[j] = fetchedPartition{partition: p, offset: -1, leaderEpoch: -1}
		}
	}
	return out
}

// handleOffsetDelete deletes committed offsets of a group (KIP-496). As in
// Kafka: an empty group id is INVALID_GROUP_ID; an error of the group
// (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP for a group of another protocol
// type that has members) is the top-level error, with no partitions; a
// partition of an unknown topic is UNKNOWN_TOPIC_OR_PARTITION, and one of
// a topic the group's members subscribe to GROUP_SUBSCRIBED_TO_TOPIC.
func (s *Server) handleOffsetDelete(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.OffsetDeleteRequest)
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if req.Group == "" {
		resp.ErrorCode = errInvalidGroupID
		return resp, nil
	}
	unknown := map[string]map[int32]error{}
	want := map[string][]int32{}
	for _, rt := range req.Topics {
		n := int32(-1)
		if t, err := s.b.Topic(rt.Topic); err == nil {
			n = t.NumPartitions()
		}
		for _, rp := range rt.Partitions {
			if rp.Partition < 0 || rp.Partition >= n {
				if unknown[rt.Topic] == nil {
					unknown[rt.Topic] = map[int32]error{}
				}
				unknown[rt.Topic][rp.Partition] = fmt.Errorf("%w: %s/%d", commitlog.ErrUnknownPartition, rt.Topic, rp.Partition)
				continue
			}
			want[rt.Topic] = append(want[rt.Topic], rp.Partition)
		}
	}
	err := s.b.Groups().DeleteOffsets(context.WithoutCancel(ctx), req.Group, want)
	partErrs, all := splitPartitionErrors(err)
	if all != nil {
		resp.ErrorCode = groupErrorCode(all)
		return resp, nil
	}
	deleted := 0
	for _, rt := range req.Topics {
		ot := kmsg.NewOffsetDeleteResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewOffsetDeleteResponseTopicPartition()
			op.Partition = rp.Partition
			op.ErrorCode = errorCode(cmp.Or(unknown[rt.Topic][rp.Partition], partErrs[rt.Topic][rp.Partition]))
			if op.ErrorCode == errNone {
				deleted++
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	if deleted > 0 {
		s.log.Info("kafka: deleted committed offsets", "group", req.Group, "partitions", deleted, "client", clientName(r))
	}
	return resp, nil
}
