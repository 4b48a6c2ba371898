package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/cluster"
)

// A broker of a cluster (commitlog.Options.Cluster) answers Metadata from
// the controller (every live broker, each partition's leader, replicas, ISR
// and leader epoch), refuses to serve partitions it does not lead with
// NOT_LEADER_OR_FOLLOWER so that clients refresh their metadata and move,
// and serves its followers: Fetch with a replica id reads up to the log end
// and records the follower's progress, OffsetForLeaderEpoch answers the
// end of an epoch (KIP-101, KIP-279). The same listener serves clients and
// peers.

// controller returns the broker's controller, nil on a single broker.
func (s *Server) controller() commitlog.Controller {
	if c := s.opts.Cluster; c != nil {
		return c.Controller
	}
	return nil
}

// clusterBrokers lists the cluster's live brokers for Metadata.
func (s *Server) clusterBrokers(ctrl commitlog.Controller) []kmsg.MetadataResponseBroker {
	infos := ctrl.Brokers()
	out := make([]kmsg.MetadataResponseBroker, 0, len(infos))
	for _, info := range infos {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID = info.ID
		b.Host = info.Host
		b.Port = info.Port
		if info.Rack != "" {
			rack := info.Rack
			b.Rack = &rack
		}
		out = append(out, b)
	}
	return out
}

// clusterPartitions describes a topic's partitions as the controller has
// them. A partition without a live leader answers LEADER_NOT_AVAILABLE;
// replicas of brokers that are not alive are listed offline.
func (s *Server) clusterPartitions(ctrl commitlog.Controller, name string, live []kmsg.MetadataResponseBroker) ([]kmsg.MetadataResponseTopicPartition, bool) {
	states, ok := ctrl.Topic(name)
	if !ok {
		return nil, false
	}
	alive := func(id int32) bool {
		return slices.ContainsFunc(live, func(b kmsg.MetadataResponseBroker) bool { return b.NodeID == id })
	}
	out := make([]kmsg.MetadataResponseTopicPartition, len(states))
	for i, st := range states {
		p := kmsg.NewMetadataResponseTopicPartition()
		p.Partition = int32(i)
		p.Leader = st.Leader
		p.LeaderEpoch = st.LeaderEpoch
		p.Replicas = slices.Clone(st.Replicas)
		p.ISR = slices.Clone(st.ISR)
		p.OfflineReplicas = []int32{}
		for _, r := range st.Replicas {
			if !alive(r) {
				p.OfflineReplicas = append(p.OfflineReplicas, r)
			}
		}
		if st.Leader == cluster.NoLeader || !alive(st.Leader) {
			p.Leader = -1
			p.ErrorCode = errLeaderNotAvailable
		}
		out[i] = p
	}
	return out, true
}

// handleOffsetForLeaderEpoch answers, per partition, the end offset of the
// largest leader epoch at or below the one asked: where a follower (or a
// consumer validating its position, KIP-320) must truncate to.
func (s *Server) handleOffsetForLeaderEpoch(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	resp.Topics = make([]kmsg.OffsetForLeaderEpochResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		tr := &resp.Topics[i]
		*tr = kmsg.NewOffsetForLeaderEpochResponseTopic()
		tr.Topic = rt.Topic
		tr.Partitions = make([]kmsg.OffsetForLeaderEpochResponseTopicPartition, len(rt.Partitions))
		for j, rp := range rt.Partitions {
			out := &tr.Partitions[j]
			*out = kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			out.Partition = rp.Partition
			p, code := s.resolveLeader(rt.Topic, rp.Partition, rp.CurrentLeaderEpoch)
			if code != errNone {
				out.ErrorCode = code
				continue
			}
			epoch, end, err := p.EndOffsetForEpoch(rp.LeaderEpoch)
			if err != nil {
				out.ErrorCode = errorCode(err)
				continue
			}
			out.LeaderEpoch, out.EndOffset = epoch, end
		}
	}
	return resp, nil
}

// resolveLeader finds a partition this broker leads, checking the
// request's CurrentLeaderEpoch against the partition's; or the error code
// saying why not.
func (s *Server) resolveLeader(topic string, partition, currentLeaderEpoch int32) (*commitlog.Partition, int16) {
	p, code := s.resolve(topic, partition)
	if code != errNone {
		return nil, code
	}
	if code := checkLeaderEpoch(currentLeaderEpoch, p.LeaderEpoch()); code != errNone {
		return nil, code
	}
	if !p.Leader() {
		return nil, errNotLeaderOrFollower
	}
	return p, errNone
}
