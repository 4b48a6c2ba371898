package replication

import "errors"

// Errors of the package. Functions return them wrapped with detail; test with
// errors.Is. The comments name the Kafka error code a wire layer answers
// with.
var (
	// ErrNotLeader: this broker does not lead the partition, or no longer
	// does (NOT_LEADER_OR_FOLLOWER, 6).
	ErrNotLeader = errors.New("replication: not the leader")
	// ErrNotEnoughReplicas: an acks=all write while the ISR is smaller than
	// MinInsyncReplicas (NOT_ENOUGH_REPLICAS, 19).
	ErrNotEnoughReplicas = errors.New("replication: not enough in-sync replicas")
	// ErrFencedLeaderEpoch: the request or state carries a leader epoch
	// older than the current one (FENCED_LEADER_EPOCH, 74).
	ErrFencedLeaderEpoch = errors.New("replication: fenced leader epoch")
	// ErrUnknownLeaderEpoch: the request carries a leader epoch newer than
	// this broker knows (UNKNOWN_LEADER_EPOCH, 75).
	ErrUnknownLeaderEpoch = errors.New("replication: unknown leader epoch")
	// ErrOffsetOutOfRange: an offset outside the log's [start, end]
	// (OFFSET_OUT_OF_RANGE, 1).
	ErrOffsetOutOfRange = errors.New("replication: offset out of range")
	// ErrClosed: the Node is closed.
	ErrClosed = errors.New("replication: closed")
	// ErrUnknownReplica: a follower fetch from a broker that is not one of
	// the partition's replicas (Kafka answers NOT_LEADER_OR_FOLLOWER).
	ErrUnknownReplica = errors.New("replication: broker is not a replica of the partition")
	// ErrUnknownPartition: the Node has no Replica for the partition
	// (UNKNOWN_TOPIC_OR_PARTITION, 3).
	ErrUnknownPartition = errors.New("replication: unknown partition")
	// ErrUnreachable: MemNetwork could not deliver a request (the target is
	// unregistered, partitioned away, or the message was dropped).
	ErrUnreachable = errors.New("replication: broker unreachable")
	// ErrCorruptCheckpoint: a leader-epoch-checkpoint file does not parse.
	ErrCorruptCheckpoint = errors.New("replication: corrupt leader epoch checkpoint")
	// ErrInvalidRecords: fetched bytes are not whole, valid record batches
	// continuing the follower's log.
	ErrInvalidRecords = errors.New("replication: invalid replicated records")
)
