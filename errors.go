package commitlog

import (
	"errors"
	"fmt"
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
