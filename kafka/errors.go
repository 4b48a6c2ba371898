package kafka

import (
	"context"
	"errors"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/replication"
)

// Kafka error codes the server answers with (Kafka's Errors.java; franz-go's
// kerr has them all).
const (
	errNone                     int16 = 0
	errOffsetOutOfRange         int16 = 1
	errCorruptMessage           int16 = 2
	errUnknownTopicOrPartition  int16 = 3
	errLeaderNotAvailable       int16 = 5
	errNotLeaderOrFollower      int16 = 6
	errRequestTimedOut          int16 = 7
	errNotEnoughReplicas        int16 = 19
	errMessageTooLarge          int16 = 10
	errInvalidTopic             int16 = 17
	errInvalidRequiredAcks      int16 = 21
	errUnsupportedVersion       int16 = 35
	errTopicAlreadyExists       int16 = 36
	errInvalidPartitions        int16 = 37
	errInvalidReplicationFactor int16 = 38
	errInvalidReplicaAssignment int16 = 39
	errInvalidConfig            int16 = 40
	errInvalidRequest           int16 = 42
	errOutOfOrderSequence       int16 = 45
	errInvalidProducerEpoch     int16 = 47
	errInvalidTxnState          int16 = 48
	errTransactionalIDAuthz     int16 = 53
	errKafkaStorageError        int16 = 56
	errFetchSessionIDNotFound   int16 = 70
	errInvalidFetchSessionEpoch int16 = 71
	errFencedLeaderEpoch        int16 = 74
	errUnknownLeaderEpoch       int16 = 75
	errInvalidRecord            int16 = 87
	errUnknownTopicID           int16 = 100
	errMismatchedEndpointType   int16 = 114
)

// Error codes of the group coordinator's APIs.
const (
	errUnknownServerError        int16 = -1
	errOffsetMetadataTooLarge    int16 = 12
	errCoordinatorNotAvailable   int16 = 15
	errNotCoordinator            int16 = 16
	errIllegalGeneration         int16 = 22
	errInconsistentGroupProtocol int16 = 23
	errInvalidGroupID            int16 = 24
	errUnknownMemberID           int16 = 25
	errInvalidSessionTimeout     int16 = 26
	errRebalanceInProgress       int16 = 27
	errInvalidCommitOffsetSize   int16 = 28
	errNonEmptyGroup             int16 = 68
	errGroupIDNotFound           int16 = 69
	errMemberIDRequired          int16 = 79
	errGroupMaxSizeReached       int16 = 81
	errFencedInstanceID          int16 = 82
	errGroupSubscribedToTopic    int16 = 86
)

// errorCode maps an error of the broker onto the Kafka error code a client
// acts on.
func errorCode(err error) int16 {
	switch {
	case err == nil:
		return errNone
	case errors.Is(err, commitlog.ErrUnknownTopic), errors.Is(err, commitlog.ErrUnknownPartition):
		return errUnknownTopicOrPartition
	case errors.Is(err, commitlog.ErrNotLeader):
		return errNotLeaderOrFollower
	case errors.Is(err, commitlog.ErrNotEnoughReplicas):
		return errNotEnoughReplicas
	case errors.Is(err, replication.ErrFencedLeaderEpoch):
		return errFencedLeaderEpoch
	case errors.Is(err, replication.ErrUnknownLeaderEpoch):
		return errUnknownLeaderEpoch
	case errors.Is(err, commitlog.ErrRecordTooLarge):
		return errMessageTooLarge
	case errors.Is(err, commitlog.ErrCorruptBatch):
		return errCorruptMessage
	case errors.Is(err, commitlog.ErrOffsetOutOfRange):
		return errOffsetOutOfRange
	case errors.Is(err, commitlog.ErrTopicExists):
		return errTopicAlreadyExists
	case errors.Is(err, commitlog.ErrInvalidTopic):
		return errInvalidTopic
	case errors.Is(err, commitlog.ErrInvalidConfig):
		return errInvalidConfig
	case errors.Is(err, commitlog.ErrOutOfOrderSequence):
		return errOutOfOrderSequence
	case errors.Is(err, commitlog.ErrInvalidProducerEpoch):
		return errInvalidProducerEpoch
	case errors.Is(err, context.DeadlineExceeded):
		// A Produce whose records were written but not yet durable when
		// its timeout ran out: the client retries (an idempotent producer
		// then gets the original offsets).
		return errRequestTimedOut
	case errors.Is(err, commitlog.ErrInvalidGroupID):
		return errInvalidGroupID
	case errors.Is(err, commitlog.ErrGroupIDNotFound):
		return errGroupIDNotFound
	case errors.Is(err, commitlog.ErrUnknownMemberID):
		return errUnknownMemberID
	case errors.Is(err, commitlog.ErrIllegalGeneration):
		return errIllegalGeneration
	case errors.Is(err, commitlog.ErrRebalanceInProgress):
		return errRebalanceInProgress
	case errors.Is(err, commitlog.ErrInconsistentGroupProtocol):
		return errInconsistentGroupProtocol
	case errors.Is(err, commitlog.ErrInvalidSessionTimeout):
		return errInvalidSessionTimeout
	case errors.Is(err, commitlog.ErrNonEmptyGroup):
		return errNonEmptyGroup
	case errors.Is(err, commitlog.ErrFencedInstanceID):
		return errFencedInstanceID
	case errors.Is(err, commitlog.ErrMemberIDRequired):
		return errMemberIDRequired
	case errors.Is(err, commitlog.ErrGroupMaxSizeReached):
		return errGroupMaxSizeReached
	case errors.Is(err, commitlog.ErrGroupSubscribedToTopic):
		return errGroupSubscribedToTopic
	case errors.Is(err, commitlog.ErrOffsetMetadataTooLarge):
		return errOffsetMetadataTooLarge
	case errors.Is(err, commitlog.ErrCoordinatorNotAvailable):
		// The broker is closing (the error also wraps ErrClosed).
		return errCoordinatorNotAvailable
	case errors.Is(err, commitlog.ErrClosed):
		// The partition's log closed under the request: its topic was
		// deleted or the broker is stopping. The client refreshes its
		// metadata and retries.
		return errNotLeaderOrFollower
	default:
		// I/O errors, including the sticky error of a failed fsync, and
		// ErrCorruptLog: the partition's storage is unusable (retriable,
		// as for a failed Kafka log directory).
		return errKafkaStorageError
	}
}

// errorMessage is the ErrorMessage of a response for err: nil without one.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// checkLeaderEpoch answers a request's CurrentLeaderEpoch (KIP-320)
// against the partition's leader epoch (always 0 on a single broker): -1 is
// not checked, an older epoch is fenced, a newer one is not known yet.
func checkLeaderEpoch(current, leaderEpoch int32) int16 {
	switch {
	case current == -1 || current == leaderEpoch:
		return errNone
	case current < leaderEpoch:
		return errFencedLeaderEpoch
	default:
		return errUnknownLeaderEpoch
	}
}
