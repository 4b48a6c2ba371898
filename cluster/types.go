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
// replicas, which of them is in sync, which leads, which may lead when no
// in-sync replica can, and the epochs that fence stale leaders (Kafka's
// LeaderAndIsr / PartitionRegistration).
//
// ELR, the eligible leader replicas (Kafka's KIP-966), are the replicas
// that left the ISR while it was, or became, smaller than MinISR, after a
// clean stop, a fencing or a leader's shrink, and have not restarted
// uncleanly since. The replication layer never advances the high
// watermark while the ISR is below MinISR, so each of them holds every
// acknowledged record and may be elected when no ISR member is live. The
// ELR is empty whenever the ISR has at least MinISR members.
type PartitionState struct {
	Replicas []int32 // broker ids, the preferred leader first
	ISR      []int32 // in-sync replicas, a subset of Replicas
	// ELR is the eligible leader replicas, in replica order: a subset of
	// Replicas disjoint from the ISR, empty while len(ISR) >= MinISR.
	ELR         []int32
	Leader      int32 // broker id of the leader, or NoLeader
	LeaderEpoch int32 // bumped on every leader change
	// PartitionEpoch is bumped on every change of the state (leader, ISR
	// or ELR); AlterISR requests carry it so that a stale proposal fails.
	PartitionEpoch int32
	// MinISR is the topic's min.insync.replicas, between 1 and
	// len(Replicas); fixed when the topic is created. Zero, in a state
	// not made by a controller, stands for 1.
	MinISR int32
}

// TopicSpec describes a topic to create (Local.CreateTopicSpec).
type TopicSpec struct {
	Partitions        int32
	ReplicationFactor int16
	// MinInsyncReplicas is the topic's min.insync.replicas, in [1,
	// ReplicationFactor]; 0 means 1, Kafka's default. It decides when
	// replicas leaving the ISR become eligible leaders
	// (PartitionState.ELR), which is sound only if the replication layer
	// applies the same value: no high-watermark advance (and no acks=all
	// produce) while the ISR is smaller.
	MinInsyncReplicas int
	// Config is the topic's configuration, opaque to the controller (the
	// brokers' own encoding): kept with the topic and handed to every
	// broker with it (Event.Config), changed by SetTopicConfig.
	Config []byte
}

// Clone returns a deep copy of s.
func (s PartitionState) Clone() PartitionState {
	s.Replicas = slices.Clone(s.Replicas)
	s.ISR = slices.Clone(s.ISR)
	s.ELR = slices.Clone(s.ELR)
	return s
}

// minISR returns MinISR, 0 counting as 1.
func (s PartitionState) minISR() int { return max(int(s.MinISR), 1) }

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
	ErrInvalidMinISR = errors.New("cluster: min.insync.replicas outside [1, replication factor]")
)

// Validate checks the invariants every PartitionState published by a
// controller holds:
//
//   - Replicas is non-empty, its ids are distinct and non-negative;
//   - ISR is a subset of Replicas without duplicates;
//   - MinISR is at most len(Replicas) and not negative (0 stands for 1);
//   - ELR is a subset of Replicas without duplicates, disjoint from the
//     ISR, and empty when len(ISR) >= MinISR;
//   - Leader is NoLeader or a member of the ISR (so a leader exists only
//     while the ISR is non-empty);
//   - LeaderEpoch and PartitionEpoch are non-negative, and LeaderEpoch is
//     at most PartitionEpoch (every leader change is also a state change).
//
// The ISR may be empty: a broker that was the last member and restarted
// after an unclean stop leaves it (see Local.RegisterBroker); the ELR then
// names the replicas that may still be elected. Whether a leaderless
// partition should have had a leader elected depends on which brokers are
// alive, which only the controller knows.
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
	if s.MinISR < 0 || int(s.MinISR) > len(s.Replicas) {
		return fmt.Errorf("cluster: min ISR %d outside [1, %d replicas]", s.MinISR, len(s.Replicas))
	}
	for i, r := range s.ELR {
		switch {
		case !slices.Contains(s.Replicas, r):
			return fmt.Errorf("cluster: ELR member %d is not a replica (replicas %v)", r, s.Replicas)
		case slices.Contains(s.ELR[:i], r):
			return fmt.Errorf("cluster: ELR member %d listed twice in %v", r, s.ELR)
		case s.InSync(r):
			return fmt.Errorf("cluster: ELR member %d is also in the ISR %v", r, s.ISR)
		}
	}
	if len(s.ELR) > 0 && len(s.ISR) >= s.minISR() {
		return fmt.Errorf("cluster: ELR %v with an ISR %v of at least min ISR %d", s.ELR, s.ISR, s.minISR())
	}
	if s.Leader != NoLeader && !s.InSync(s.Leader) {
		return fmt.Errorf("%w: leader %d is not in the ISR %v", ErrInvalidISR, s.Leader, s.ISR)
	}
	if s.LeaderEpoch < 0 || s.PartitionEpoch < 0 || s.LeaderEpoch > s.PartitionEpoch {
		return fmt.Errorf("cluster: bad epochs: leader epoch %d, partition epoch %d", s.LeaderEpoch, s.PartitionEpoch)
	}
	return nil
}
