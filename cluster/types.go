package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// NoLeader is the Leader of a partition none of whose in-sync replicas is
// alive (Kafka reports it as leader -1, LEADER_NOT_AVAILABLE).
const NoLeader int32 = -1

// PartitionState is what the controller decides for one partition: its
// replicas, which of them is in sync, which leads, and the epochs that
// fence stale leaders (Kafka's LeaderAndIsr / PartitionRegistration).
type PartitionState struct {
	Replicas    []int32 // broker ids, the preferred leader first
	ISR         []int32 // in-sync replicas, a subset of Replicas
	Leader      int32   // broker id of the leader, or NoLeader
	LeaderEpoch int32   // bumped on every leader change
	// PartitionEpoch is bumped on every change of the state (leader or
	// ISR); AlterISR requests carry it so that a stale proposal fails.
	PartitionEpoch int32
}

// Clone returns a deep copy of s.
func (s PartitionState) Clone() PartitionState {
	s.Replicas = slices.Clone(s.Replicas)
	s.ISR = slices.Clone(s.ISR)
	return s
}

// InSync reports whether broker id is in the ISR.
func (s PartitionState) InSync(id int32) bool { return slices.Contains(s.ISR, id) }

// BrokerInfo is a registered broker and the address clients and peers reach
// it at.
type BrokerInfo struct {
	ID   int32
	Host string
	Port int32
	Rack string
}

// Errors of the controller.
var (
	ErrUnknownBroker       = errors.New("cluster: unknown or fenced broker")
	ErrUnknownTopic        = errors.New("cluster: unknown topic")
	ErrTopicExists         = errors.New("cluster: topic already exists")
	ErrInvalidReplication  = errors.New("cluster: replication factor larger than the live brokers")
	ErrStaleState          = errors.New("cluster: stale leader or partition epoch")
	ErrControllerClosed    = errors.New("cluster: controller closed")
	ErrInvalidISR          = errors.New("cluster: ISR must be a subset of the replicas and contain the leader")
	ErrInvalidPartitionNum = errors.New("cluster: invalid partition count")
)

// ISRUpdater is the one call a partition leader makes to the controller:
// change the partition's ISR (Kafka's AlterPartition). The proposal names
// the epochs the leader saw; it fails with ErrStaleState when the
// partition moved on. The returned state is the one now in force.
type ISRUpdater interface {
	AlterISR(ctx context.Context, tp TopicPartition, leader int32, leaderEpoch, partitionEpoch int32, isr []int32) (PartitionState, error)
}

// Errors added with the in-process controller.
var (
	ErrInvalidTopic  = errors.New("cluster: invalid topic name")
	ErrInvalidBroker = errors.New("cluster: invalid broker id")
)

// Validate checks the invariants every PartitionState published by a
// controller holds:
//
//   - Replicas is non-empty, its ids are distinct and non-negative;
//   - ISR is a subset of Replicas without duplicates;
//   - Leader is NoLeader or a member of the ISR (so a leader exists only
//     while the ISR is non-empty);
//   - LeaderEpoch and PartitionEpoch are non-negative, and LeaderEpoch is
//     at most PartitionEpoch (every leader change is also a state change).
//
// The ISR may be empty: a broker that was the last member and restarted
// after an unclean stop leaves it (see Local.RegisterBroker). Whether a
// leaderless partition should have had a leader elected depends on which
// brokers are alive, which only the controller knows.
func (s PartitionState) Validate() error {
	if len(s.Replicas) == 0 {
		return errors.New("cluster: partition state has no replicas")
	}
	for i, r := range s.Replicas {
		if r < 0 {
			return fmt.Errorf("cluster: replica id %d is negative", r)
		}
		if slices.Contains(s.Replicas[:i], r) {
			return fmt.Errorf("cluster: replica %d listed twice in %v", r, s.Replicas)
		}
	}
	for i, r := range s.ISR {
		if !slices.Contains(s.Replicas, r) {
			return fmt.Errorf("%w: ISR member %d is not a replica (replicas %v)", ErrInvalidISR, r, s.Replicas)
		}
		if slices.Contains(s.ISR[:i], r) {
			return fmt.Errorf("%w: ISR member %d listed twice in %v", ErrInvalidISR, r, s.ISR)
		}
	}
	if s.Leader != NoLeader && !s.InSync(s.Leader) {
		return fmt.Errorf("%w: leader %d is not in the ISR %v", ErrInvalidISR, s.Leader, s.ISR)
	}
	if s.LeaderEpoch < 0 || s.PartitionEpoch < 0 || s.LeaderEpoch > s.PartitionEpoch {
		return fmt.Errorf("cluster: bad epochs: leader epoch %d, partition epoch %d", s.LeaderEpoch, s.PartitionEpoch)
	}
	return nil
}
