package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// maxNewPartitions bounds the partitions one CreateTopics or
// CreatePartitions entry may add: each is a directory, files and mappings,
// and one request must not be able to exhaust the machine's file
// descriptors.
const maxNewPartitions = 10000

// handleCreateTopics creates topics, or with ValidateOnly only checks that
// they could be created. Partition count and replication factor -1 take
// the broker's defaults; configs are Kafka's names (see topicConfigs). A
// replica assignment may only place every partition on this broker.
func (s *Server) handleCreateTopics(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	count := map[string]int{}
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	for i := range req.Topics {
		rt := &req.Topics[i]
		out := kmsg.NewCreateTopicsResponseTopic()
		out.Topic = rt.Topic
		out.NumPartitions, out.ReplicationFactor = -1, -1
		var err error
		if count[rt.Topic] > 1 {
			err = &configError{errInvalidRequest, fmt.Sprintf("topic %q appears more than once in the request", rt.Topic)}
		} else {
			err = s.createTopic(ctx, rt, req.ValidateOnly, &out)
		}
		if err != nil {
			out.ErrorCode = codeOf(err)
			out.ErrorMessage = errorMessage(err)
			out.NumPartitions, out.ReplicationFactor, out.Configs = -1, -1, nil
		} else if !req.ValidateOnly {
			s.log.Info("kafka: created topic", "topic", rt.Topic, "partitions", out.NumPartitions, "client", clientName(r))
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

// codeOf is the Kafka error code of a handler's error.
func codeOf(err error) int16 {
	if ce, ok := errors.AsType[*configError](err); ok {
		return ce.code
	}
	return errorCode(err)
}

// createTopic checks and creates one topic, filling out's partition count,
// replication factor and configs (reported from CreateTopics version 5).
// With validateOnly the broker checks the topic as it would create it
// (Broker.ValidateTopic), and the answer is the same but for the creation.
func (s *Server) createTopic(ctx context.Context, rt *kmsg.CreateTopicsRequestTopic, validateOnly bool, out *kmsg.CreateTopicsResponseTopic) error {
	if err := commitlog.ValidateTopicName(rt.Topic); err != nil {
		return err
	}
	if _, err := s.b.Topic(rt.Topic); err == nil {
		return fmt.Errorf("%w: %s", commitlog.ErrTopicExists, rt.Topic)
	}
	cfg, err := topicConfigFrom(rt.Configs)
	if err != nil {
		return err
	}
	cfg.Partitions, cfg.ReplicationFactor, err = s.placement(rt)
	if err != nil {
		return err
	}
	if validateOnly {
		if cfg, err = s.b.ValidateTopic(rt.Topic, cfg); err != nil {
			return err
		}
	} else {
		t, err := s.b.CreateTopic(ctx, rt.Topic, cfg)
		if err != nil {
			return err
		}
		cfg = t.Config()
	}
	set := map[string]bool{}
	for _, kv := range rt.Configs {
		set[kv.Name] = true
	}
	out.NumPartitions = cfg.Partitions
	out.ReplicationFactor = cfg.ReplicationFactor
	for i := range topicConfigs {
		tc := &topicConfigs[i]
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name = tc.name
		v := tc.get(&cfg)
		c.Value = &v
		c.Source = int8(kmsg.ConfigSourceDefaultConfig)
		if set[tc.name] {
			c.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
		}
		out.Configs = append(out.Configs, c)
	}
	return nil
}

// placement checks a CreateTopics entry's partition count, replication
// factor and replica assignment, and returns the partitions and
// replication factor to create (0 for the broker's default).
func (s *Server) placement(rt *kmsg.CreateTopicsRequestTopic) (int32, int16, error) {
	if len(rt.ReplicaAssignment) > 0 {
		if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
			return 0, 0, &configError{errInvalidRequest, "a replica assignment needs partitions and replication factor -1"}
		}
		if len(rt.ReplicaAssignment) > maxNewPartitions {
			return 0, 0, &configError{errInvalidPartitions, fmt.Sprintf("%d partitions is more than %d", len(rt.ReplicaAssignment), maxNewPartitions)}
		}
		seen := make([]bool, len(rt.ReplicaAssignment))
		for _, a := range rt.ReplicaAssignment {
			if a.Partition < 0 || int(a.Partition) >= len(seen) || seen[a.Partition] {
				return 0, 0, &configError{errInvalidReplicaAssignment, "assigned partitions must be 0 to n-1, each once"}
			}
			seen[a.Partition] = true
			if err := s.checkReplicas(a.Replicas); err != nil {
				return 0, 0, err
			}
		}
		return int32(len(rt.ReplicaAssignment)), 1, nil
	}
	switch n := rt.NumPartitions; {
	case n == -1:
	case n <= 0:
		return 0, 0, &configError{errInvalidPartitions, fmt.Sprintf("number of partitions %d: must be positive, or -1 for the default", n)}
	case n > maxNewPartitions:
		return 0, 0, &configError{errInvalidPartitions, fmt.Sprintf("number of partitions %d is more than %d", n, maxNewPartitions)}
	}
	switch rf := rt.ReplicationFactor; {
	case rf == -1 || rf == 1:
	case rf <= 0:
		return 0, 0, &configError{errInvalidReplicationFactor, fmt.Sprintf("replication factor %d: must be positive, or -1 for the default", rf)}
	default:
		return 0, 0, &configError{errInvalidReplicationFactor, fmt.Sprintf("replication factor %d is larger than the number of brokers, 1", rf)}
	}
	return max(rt.NumPartitions, 0), 1, nil
}

// checkReplicas checks that a partition's replicas are this broker alone.
func (s *Server) checkReplicas(replicas []int32) error {
	if len(replicas) != 1 || replicas[0] != s.cfg.NodeID {
		return &configError{errInvalidReplicaAssignment, fmt.Sprintf("replicas %v: the only broker is %d", replicas, s.cfg.NodeID)}
	}
	return nil
}

// handleDeleteTopics deletes topics and their data.
func (s *Server) handleDeleteTopics(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	topics := req.Topics
	if req.Version < 6 {
		topics = nil
		for _, name := range req.TopicNames {
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.Topic = &name
			topics = append(topics, rt)
		}
	}
	for _, rt := range topics {
		out := kmsg.NewDeleteTopicsResponseTopic()
		out.Topic = rt.Topic
		out.TopicID = rt.TopicID
		if rt.Topic == nil {
			// Topics have no ids yet.
			out.ErrorCode = errUnknownTopicID
		} else if err := s.b.DeleteTopic(ctx, *rt.Topic); err != nil {
			out.ErrorCode = errorCode(err)
			out.ErrorMessage = errorMessage(err)
		} else {
			s.log.Info("kafka: deleted topic", "topic", *rt.Topic, "client", clientName(r))
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

// handleCreatePartitions raises topics' partition counts, or with
// ValidateOnly only checks that it could.
func (s *Server) handleCreatePartitions(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	count := map[string]int{}
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	for i := range req.Topics {
		rt := &req.Topics[i]
		out := kmsg.NewCreatePartitionsResponseTopic()
		out.Topic = rt.Topic
		var err error
		if count[rt.Topic] > 1 {
			err = &configError{errInvalidRequest, fmt.Sprintf("topic %q appears more than once in the request", rt.Topic)}
		} else {
			err = s.createPartitions(ctx, rt, req.ValidateOnly)
		}
		if err != nil {
			out.ErrorCode = codeOf(err)
			out.ErrorMessage = errorMessage(err)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

func (s *Server) createPartitions(ctx context.Context, rt *kmsg.CreatePartitionsRequestTopic, validateOnly bool) error {
	t, err := s.b.Topic(rt.Topic)
	if err != nil {
		return err
	}
	cur := t.NumPartitions()
	switch {
	case rt.Count < cur:
		return &configError{errInvalidPartitions, fmt.Sprintf("topic has %d partitions, more than the %d asked for; partitions are never removed", cur, rt.Count)}
	case rt.Count == cur:
		return &configError{errInvalidPartitions, fmt.Sprintf("topic already has %d partitions", cur)}
	case rt.Count-cur > maxNewPartitions:
		return &configError{errInvalidPartitions, fmt.Sprintf("adding %d partitions is more than %d", rt.Count-cur, maxNewPartitions)}
	}
	if rt.Assignment != nil {
		if len(rt.Assignment) != int(rt.Count-cur) {
			return &configError{errInvalidReplicaAssignment, fmt.Sprintf("%d assignments for %d new partitions", len(rt.Assignment), rt.Count-cur)}
		}
		for _, a := range rt.Assignment {
			if err := s.checkReplicas(a.Replicas); err != nil {
				return err
			}
		}
	}
	if validateOnly {
		return nil
	}
	if err := s.b.AddPartitions(ctx, rt.Topic, rt.Count); err != nil {
		if errors.Is(err, commitlog.ErrInvalidConfig) {
			return &configError{errInvalidPartitions, err.Error()}
		}
		return err
	}
	s.log.Info("kafka: added partitions", "topic", rt.Topic, "partitions", rt.Count)
	return nil
}
