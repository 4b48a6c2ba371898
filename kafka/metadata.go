package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// handleMetadata describes the cluster (this one broker) and the topics
// asked for, all of them when the request names none. This broker leads
// every partition, at leader epoch 0, as its only replica.
//
// An unknown topic is UNKNOWN_TOPIC_OR_PARTITION, unless the broker's
// Options.AutoCreateTopics is set and the client allows creation: the
// topic is then created and, as Kafka answers for the request that
// triggered the creation, LEADER_NOT_AVAILABLE; the client asks again and
// finds it.
//
// The cluster id is the broker's (Broker.ClusterID), kept in its directory.
func (s *Server) handleMetadata(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID = s.cfg.NodeID
	b.Host = r.c.adv.host
	b.Port = r.c.adv.port
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	clusterID := s.b.ClusterID()
	resp.ClusterID = &clusterID
	resp.ControllerID = s.cfg.NodeID
	ctrl := s.controller()
	if ctrl != nil {
		resp.Brokers = s.clusterBrokers(ctrl)
	}

	// Version 0 asks for every topic with an empty list, later versions
	// with a null one; auto-creation is implied before version 4.
	all := req.Topics == nil || req.Version == 0 && len(req.Topics) == 0
	autoCreate := s.opts.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	if all {
		for _, name := range s.b.Topics() {
			t, err := s.b.Topic(name)
			if err != nil {
				continue // deleted meanwhile
			}
			resp.Topics = append(resp.Topics, s.topicMetadata(t, resp.Brokers))
		}
		return resp, nil
	}
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			// Version 10+ may name a topic by id only; topics have no ids
			// yet.
			mt := kmsg.NewMetadataResponseTopic()
			mt.TopicID = rt.TopicID
			mt.ErrorCode = errUnknownTopicID
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		name := *rt.Topic
		t, err := s.b.Topic(name)
		if errors.Is(err, commitlog.ErrUnknownTopic) && autoCreate {
			t, err = s.b.CreateTopic(ctx, name, commitlog.TopicConfig{})
			if err == nil {
				s.log.Info("kafka: auto-created topic", "topic", name, "client", clientName(r))
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic = &name
				mt.ErrorCode = errLeaderNotAvailable
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			if errors.Is(err, commitlog.ErrTopicExists) { // created by another request meanwhile
				t, err = s.b.Topic(name)
			}
		}
		if err != nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = &name
			mt.ErrorCode = errorCode(err)
			if errors.Is(err, commitlog.ErrUnknownTopic) && commitlog.ValidateTopicName(name) != nil {
				mt.ErrorCode = errInvalidTopic
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, s.topicMetadata(t, resp.Brokers))
	}
	return resp, nil
}

// topicMetadata describes a topic and its partitions.
func (s *Server) topicMetadata(t *commitlog.Topic, live []kmsg.MetadataResponseBroker) kmsg.MetadataResponseTopic {
	name := t.Name()
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = &name
	mt.IsInternal = commitlog.IsInternalTopic(name)
	if ctrl := s.controller(); ctrl != nil && !mt.IsInternal {
		if parts, ok := s.clusterPartitions(ctrl, name, live); ok {
			mt.Partitions = parts
			return mt
		}
	}
	n := t.NumPartitions()
	mt.Partitions = make([]kmsg.MetadataResponseTopicPartition, n)
	for i := range n {
		p := kmsg.NewMetadataResponseTopicPartition()
		p.Partition = i
		p.Leader = s.cfg.NodeID
		p.LeaderEpoch = 0
		p.Replicas = []int32{s.cfg.NodeID}
		p.ISR = []int32{s.cfg.NodeID}
		p.OfflineReplicas = []int32{}
		mt.Partitions[i] = p
	}
	return mt
}

// clientName is the client id of a request, for logs.
func clientName(r *request) string {
	if r.clientID == nil {
		return ""
	}
	return *r.clientID
}

// Endpoint types of DescribeCluster v1+ (KIP-919).
const (
	endpointBrokers int8 = 1
)

// handleDescribeCluster describes the cluster: this broker, which is also
// its controller.
func (s *Server) handleDescribeCluster(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = req.EndpointType
	if req.Version >= 1 && req.EndpointType != endpointBrokers {
		resp.ErrorCode = errMismatchedEndpointType
		msg := "this listener serves brokers, not controllers"
		resp.ErrorMessage = &msg
		return resp, nil
	}
	resp.ClusterID = s.b.ClusterID()
	resp.ControllerID = s.cfg.NodeID
	b := kmsg.NewDescribeClusterResponseBroker()
	b.NodeID = s.cfg.NodeID
	b.Host = r.c.adv.host
	b.Port = r.c.adv.port
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{b}
	return resp, nil
}
