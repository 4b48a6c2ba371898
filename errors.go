package commitlog

import (
	"errors"
	"fmt"

	"github.com/streamkit/commitlog/replication"
)

// Sentinel errors. Every error the package returns wraps one of these (or an
// I/O error from the operating system) with context, so callers test them
// with errors.Is.
var (
	// ErrClosed is returned by every call on a log, broker, producer or
	// consumer after it was closed.
	ErrClosed = errors.New("commitlog: closed")

	// ErrCorruptBatch is returned when bytes offered for appending are not a
	// valid record batch: bad length, magic, CRC or records. Nothing is
	// appended. The error also wraps the precise reason.
	ErrCorruptBatch = errors.New("commitlog: corrupt record batch")

	// ErrRecordTooLarge is returned when a batch (or a record) is larger than
	// the configured maximum (Kafka's MESSAGE_TOO_LARGE). Nothing is appended.
	ErrRecordTooLarge = errors.New("commitlog: record batch too large")

	// ErrOffsetOutOfRange is matched by every *OffsetOutOfRangeError.
	ErrOffsetOutOfRange = errors.New("commitlog: offset out of range")

	// ErrCorruptLog is returned when files on disk are damaged in a way that
	// recovery cannot repair without losing records it must not lose (for
	// example a damaged segment that is not the last one).
	ErrCorruptLog = errors.New("commitlog: corrupt log files")

	// ErrLocked is returned by Open when another broker, in this process or
	// another, holds the directory.
	ErrLocked = errors.New("commitlog: directory locked by another process")
)

// OffsetOutOfRangeError reports an offset outside [Start, End] of a
// partition's log. It matches ErrOffsetOutOfRange with errors.Is.
type OffsetOutOfRangeError struct {
	Offset int64 // the offset asked for
	Start  int64 // the log's start offset: the first offset still held
	End    int64 // the log's end offset: the offset the next record will get
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("commitlog: offset %d out of range [%d, %d]", e.Offset, e.Start, e.End)
}

// Is reports whether target is ErrOffsetOutOfRange.
func (e *OffsetOutOfRangeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// Broker and topic errors.
var (
	// ErrUnknownTopic is returned for a topic that does not exist (Kafka's
	// UNKNOWN_TOPIC_OR_PARTITION).
	ErrUnknownTopic = errors.New("commitlog: unknown topic")
	// ErrUnknownPartition is returned for a partition number a topic does
	// not have.
	ErrUnknownPartition = errors.New("commitlog: unknown partition")
	// ErrTopicExists is returned by CreateTopic for a name already taken
	// (TOPIC_ALREADY_EXISTS).
	ErrTopicExists = errors.New("commitlog: topic already exists")
	// ErrInvalidTopic is returned for a topic name Kafka would refuse
	// (INVALID_TOPIC_EXCEPTION).
	ErrInvalidTopic = errors.New("commitlog: invalid topic name")
	// ErrInvalidConfig is returned for a configuration value out of range;
	// the message names the field.
	ErrInvalidConfig = errors.New("commitlog: invalid configuration")
)

// Producer errors.
var (
	// ErrBufferFull is returned by a Producer configured with FailWhenFull
	// when its buffer (MaxBufferedBytes) has no room for a record. Nothing
	// is buffered.
	ErrBufferFull = errors.New("commitlog: producer buffer full")
)

// ErrNotAssigned is returned for a commit of a partition that is not
// assigned to the consumer: it never was, or a rebalance took it away.
var ErrNotAssigned = errors.New("commitlog: partition not assigned to this consumer")

// Consumer group errors, returned by GroupCoordinator. Each names the Kafka
// error code the wire protocol answers with.
var (
	// ErrInvalidGroupID is returned for an empty group id where Kafka
	// requires one (INVALID_GROUP_ID, 24).
	ErrInvalidGroupID = errors.New("commitlog: invalid group id")
	// ErrGroupIDNotFound is returned for a group the coordinator does not
	// know (GROUP_ID_NOT_FOUND, 69).
	ErrGroupIDNotFound = errors.New("commitlog: group not found")
	// ErrUnknownMemberID is returned for a member id the group does not
	// have, or a group that does not exist (UNKNOWN_MEMBER_ID, 25): the
	// member forgets its id and joins again.
	ErrUnknownMemberID = errors.New("commitlog: unknown member id")
	// ErrIllegalGeneration is returned for a request from a generation of
	// the group that is over (ILLEGAL_GENERATION, 22): a zombie is fenced.
	ErrIllegalGeneration = errors.New("commitlog: illegal generation")
	// ErrRebalanceInProgress is returned while the group rebalances
	// (REBALANCE_IN_PROGRESS, 27): the member joins again.
	ErrRebalanceInProgress = errors.New("commitlog: rebalance in progress")
	// ErrInconsistentGroupProtocol is returned when a member's protocol
	// type or protocols do not match the group's
	// (INCONSISTENT_GROUP_PROTOCOL, 23).
	ErrInconsistentGroupProtocol = errors.New("commitlog: inconsistent group protocol")
	// ErrInvalidSessionTimeout is returned for a session timeout outside
	// the broker's bounds (INVALID_SESSION_TIMEOUT, 26).
	ErrInvalidSessionTimeout = errors.New("commitlog: invalid session timeout")
	// ErrNonEmptyGroup is returned when deleting a group that has members
	// (NON_EMPTY_GROUP, 68).
	ErrNonEmptyGroup = errors.New("commitlog: group not empty")
	// ErrFencedInstanceID is returned to a static member whose instance id
	// was taken over by a newer member id (FENCED_INSTANCE_ID, 82).
	ErrFencedInstanceID = errors.New("commitlog: fenced instance id")
	// ErrMemberIDRequired asks a new member to join again with the member
	// id it was given (MEMBER_ID_REQUIRED, 79; KIP-394).
	ErrMemberIDRequired = errors.New("commitlog: member id required")
	// ErrGroupMaxSizeReached is returned when a group already has
	// Options.GroupMaxSize members (GROUP_MAX_SIZE_REACHED, 81).
	ErrGroupMaxSizeReached = errors.New("commitlog: group max size reached")
	// ErrCoordinatorNotAvailable is returned, with ErrClosed, once the
	// broker is closing (COORDINATOR_NOT_AVAILABLE, 15).
	ErrCoordinatorNotAvailable = errors.New("commitlog: group coordinator not available")
	// ErrGroupSubscribedToTopic is returned when deleting the offsets of a
	// topic the group's members consume (GROUP_SUBSCRIBED_TO_TOPIC, 86).
	ErrGroupSubscribedToTopic = errors.New("commitlog: group subscribed to topic")
	// ErrOffsetMetadataTooLarge is returned for a commit whose metadata
	// exceeds Options.OffsetMetadataMaxBytes (OFFSET_METADATA_TOO_LARGE,
	// 12).
	ErrOffsetMetadataTooLarge = errors.New("commitlog: offset metadata too large")
)

// Errors of a broker of a cluster (Options.Cluster).
var (
	// ErrNotLeader is returned for a write to, or a read from, a
	// partition this broker does not lead (Kafka's NOT_LEADER_OR_FOLLOWER):
	// the controller knows the leader.
	ErrNotLeader = replication.ErrNotLeader
	// ErrNotEnoughReplicas is returned for an acks=all write while fewer
	// replicas than the topic's MinInsyncReplicas are in sync (Kafka's
	// NOT_ENOUGH_REPLICAS).
	ErrNotEnoughReplicas = replication.ErrNotEnoughReplicas
)
