package commitlog

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// TopicConfig configures a topic. The zero value is usable: zero fields
// take the broker's defaults (Options), which are Kafka's.
type TopicConfig struct {
	// Partitions is the number of partitions (num.partitions). Default
	// Options.DefaultPartitions, 1.
	Partitions int32
	// ReplicationFactor is the number of copies of each partition, on as
	// many brokers of a cluster (Options.Cluster); a single broker holds
	// one. 0 means 1 on a single broker and the smaller of 3 and the
	// cluster's live brokers in a cluster.
	ReplicationFactor int16
	// RetentionBytes caps each partition's size; the oldest segments are
	// deleted past it (retention.bytes). Default Options.RetentionBytes, -1:
	// no limit.
	RetentionBytes int64
	// RetentionTime is how long records are kept (retention.ms). Default
	// Options.RetentionTime, 7 days; -1 keeps them forever.
	RetentionTime time.Duration
	// SegmentBytes is the segment size (segment.bytes). Default 1 GiB.
	SegmentBytes int64
	// SegmentAge rolls a segment this old (segment.ms). Default 7 days.
	SegmentAge time.Duration
	// CleanupPolicy is "delete" (the default: retention deletes old
	// segments), "compact" (the latest record of each key is kept forever;
	// see Log.Compact) or "compact,delete" (both) (cleanup.policy).
	CleanupPolicy string
	// DeleteRetention is how long a compacted topic keeps tombstones
	// (delete.retention.ms). Default 24 hours.
	DeleteRetention time.Duration
	// MinCleanableDirtyRatio is the share of a compacted partition's closed
	// bytes not yet compacted above which the cleaner compacts it
	// (min.cleanable.dirty.ratio). Default 0.5.
	MinCleanableDirtyRatio float64
	// MaxMessageBytes is the largest record batch the topic accepts
	// (max.message.bytes). Default Options.MaxMessageBytes, 1048588.
	MaxMessageBytes int
	// MinInsyncReplicas is the number of in-sync replicas an acks=all
	// write needs (min.insync.replicas). Default 1.
	MinInsyncReplicas int
	// TimestampType says which time records carry (message.timestamp.type):
	// the producer's CreateTime (default) or the broker's LogAppendTime.
	TimestampType TimestampType
}

// Cleanup policies (cleanup.policy).
const (
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
	CleanupCompactDelete = "compact,delete"
)

func (c *TopicConfig) compacted() bool {
	return c.CleanupPolicy == CleanupCompact || c.CleanupPolicy == CleanupCompactDelete
}

func (c *TopicConfig) deletes() bool {
	return c.CleanupPolicy == CleanupDelete || c.CleanupPolicy == CleanupCompactDelete
}

// TimestampType is Kafka's message.timestamp.type.
type TimestampType int8

const (
	// CreateTime keeps the timestamps producers set.
	CreateTime TimestampType = iota
	// LogAppendTime replaces them with the time the broker appends the
	// batch.
	LogAppendTime
)

func (t TimestampType) String() string {
	if t == LogAppendTime {
		return "LogAppendTime"
	}
	return "CreateTime"
}

const maxTopicNameLen = 249

// IsInternalTopic reports whether name is a topic the broker keeps for
// itself (__consumer_offsets): clients may read it but not write to it,
// delete it or add partitions to it.
func IsInternalTopic(name string) bool { return name == offsetsTopic }

// ValidateTopicName reports whether name is a topic name Kafka accepts:
// 1 to 249 characters from [a-zA-Z0-9._-], and neither "." nor "..".
func ValidateTopicName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > maxTopicNameLen {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has %q", ErrInvalidTopic, name, c)
		}
	}
	return nil
}

// withDefaults fills zero fields from the broker's options.
func (c TopicConfig) withDefaults(o *Options) TopicConfig {
	if c.Partitions == 0 {
		c.Partitions = o.DefaultPartitions
	}
	if c.ReplicationFactor == 0 && o.Cluster == nil {
		c.ReplicationFactor = 1 // a cluster's default depends on its brokers
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = o.RetentionBytes
	}
	if c.RetentionTime == 0 {
		c.RetentionTime = o.RetentionTime
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentAge == 0 {
		c.SegmentAge = DefaultSegmentAge
	}
	if c.CleanupPolicy == "" {
		c.CleanupPolicy = CleanupDelete
	}
	if c.DeleteRetention == 0 {
		c.DeleteRetention = DefaultDeleteRetention
	}
	if c.MinCleanableDirtyRatio == 0 {
		c.MinCleanableDirtyRatio = 0.5
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = o.MaxMessageBytes
	}
	if c.MinInsyncReplicas == 0 {
		c.MinInsyncReplicas = 1
	}
	return c
}

func (c *TopicConfig) validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: TopicConfig.%s %v %s", ErrInvalidConfig, field, v, why)
	}
	switch {
	case c.Partitions < 1:
		return bad("Partitions", c.Partitions, "must be at least 1")
	case c.ReplicationFactor < 1:
		return bad("ReplicationFactor", c.ReplicationFactor, "must be at least 1")
	case c.RetentionBytes < -1:
		return bad("RetentionBytes", c.RetentionBytes, "must be -1 or positive")
	case c.RetentionTime < -1:
		return bad("RetentionTime", c.RetentionTime, "must be -1 or positive")
	case c.SegmentBytes < 1024 || c.SegmentBytes > maxSegmentBytes:
		return bad("SegmentBytes", c.SegmentBytes, fmt.Sprintf("outside [1024, %d]", maxSegmentBytes))
	case c.SegmentAge < time.Millisecond:
		return bad("SegmentAge", c.SegmentAge, "below 1ms")
	case c.CleanupPolicy != CleanupDelete && c.CleanupPolicy != CleanupCompact && c.CleanupPolicy != CleanupCompactDelete:
		return bad("CleanupPolicy", c.CleanupPolicy, `must be "delete", "compact" or "compact,delete"`)
	case c.DeleteRetention < -1:
		return bad("DeleteRetention", c.DeleteRetention, "must be -1 or positive")
	case c.MinCleanableDirtyRatio < 0 || c.MinCleanableDirtyRatio > 1:
		return bad("MinCleanableDirtyRatio", c.MinCleanableDirtyRatio, "outside [0, 1]")
	case c.MaxMessageBytes < 1024 || c.MaxMessageBytes > maxSegmentBytes:
		return bad("MaxMessageBytes", c.MaxMessageBytes, fmt.Sprintf("outside [1024, %d]", maxSegmentBytes))
	case c.MinInsyncReplicas < 1 || c.MinInsyncReplicas > int(c.ReplicationFactor):
		return bad("MinInsyncReplicas", c.MinInsyncReplicas, "outside [1, ReplicationFactor]")
	case c.TimestampType != CreateTime && c.TimestampType != LogAppendTime:
		return bad("TimestampType", c.TimestampType, "unknown")
	}
	return nil
}

// logConfig is the configuration of each of the topic's partition logs.
func (c *TopicConfig) logConfig(o *Options) LogConfig {
	return LogConfig{
		SegmentBytes:  c.SegmentBytes,
		SegmentAge:    c.SegmentAge,
		MaxBatchBytes: c.MaxMessageBytes,
		SyncPolicy:    o.SyncPolicy,
		SyncInterval:  o.SyncInterval,
	}
}

// Topic is a named set of partitions. Its methods are safe for concurrent
// use.
type Topic struct {
	name string
	// cfg is the configuration the topic was opened with; it is never
	// written afterwards. The current one is live (Broker.AlterTopicConfig).
	cfg TopicConfig
	// live is the current configuration, an immutable value replaced
	// whole; nil until the first change, cfg meanwhile. Read it with
	// config().
	live  atomic.Pointer[TopicConfig]
	parts atomic.Pointer[[]*Partition] // grows with AddPartitions
}

// config returns the topic's current configuration. It must not be
// modified.
func (t *Topic) config() *TopicConfig {
	if c := t.live.Load(); c != nil {
		return c
	}
	return &t.cfg
}

// Name returns the topic's name.
func (t *Topic) Name() string { return t.name }

// Config returns the topic's configuration with defaults filled in.
func (t *Topic) Config() TopicConfig {
	c := *t.config()
	c.Partitions = t.NumPartitions()
	return c
}

// NumPartitions returns how many partitions the topic has.
func (t *Topic) NumPartitions() int32 { return int32(len(*t.parts.Load())) }

// Partition returns partition i of the topic.
func (t *Topic) Partition(i int32) (*Partition, error) {
	parts := *t.parts.Load()
	if i < 0 || int(i) >= len(parts) {
		return nil, fmt.Errorf("%w: %s has no partition %d (it has %d)", ErrUnknownPartition, t.name, i, len(parts))
	}
	return parts[i], nil
}

// Partitions returns every partition of the topic, in order.
func (t *Topic) Partitions() []*Partition { return slices.Clone(*t.parts.Load()) }

// held returns the partitions with a log on this broker: all of them on a
// single broker; on a broker of a cluster, those it holds a replica of.
func (t *Topic) held() []*Partition {
	return slices.DeleteFunc(t.Partitions(), func(p *Partition) bool { return p.log == nil })
}

// TopicDescription describes a topic and each of its partitions.
type TopicDescription struct {
	Name       string
	Config     TopicConfig
	Partitions []PartitionDescription
}

// PartitionDescription describes one partition's log.
type PartitionDescription struct {
	Partition     int32
	StartOffset   int64 // first offset still held
	EndOffset     int64 // offset of the next record
	DurableOffset int64 // offsets below it are fsynced
	SizeBytes     int64 // record batch bytes on disk
	Segments      int
}

// Describe returns the topic's configuration and its partitions' offsets
// and sizes.
func (t *Topic) Describe() TopicDescription {
	d := TopicDescription{Name: t.name, Config: t.Config()}
	for _, p := range *t.parts.Load() {
		if p.log == nil {
			// A partition of a cluster with no replica on this broker.
			d.Partitions = append(d.Partitions, PartitionDescription{Partition: p.id})
			continue
		}
		d.Partitions = append(d.Partitions, PartitionDescription{
			Partition:     p.id,
			StartOffset:   p.log.StartOffset(),
			EndOffset:     p.log.EndOffset(),
			DurableOffset: p.log.DurableOffset(),
			SizeBytes:     p.log.Size(),
			Segments:      p.log.Segments(),
		})
	}
	return d
}
