package commitlog

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamkit/commitlog/internal/layout"
	"github.com/streamkit/commitlog/internal/vfs"
)

// Options configures a Broker. The zero value is usable: every zero field
// takes the default written beside it, Kafka's where Kafka has the setting.
type Options struct {
	// SyncPolicy says when appends are fsynced, for every partition.
	// Default SyncGroupCommit: an append returns once durable.
	SyncPolicy SyncPolicy
	// SyncInterval is the period of SyncPeriodic (flush.ms). Default 1 s.
	SyncInterval time.Duration
	// DefaultPartitions is the partition count of topics created without
	// one (num.partitions). Default 1.
	DefaultPartitions int32
	// MaxMessageBytes is the default largest record batch a topic accepts
	// (message.max.bytes). Default 1048588.
	MaxMessageBytes int
	// RetentionTime is the default retention of topics created without one
	// (log.retention.hours). Default 7 days; -1 keeps records forever.
	RetentionTime time.Duration
	// RetentionBytes is the default size cap of each partition of topics
	// created without one (log.retention.bytes). Default -1: no cap.
	RetentionBytes int64
	// AutoCreateTopics creates a topic with default settings the first time
	// a producer writes to it (auto.create.topics.enable). Off by default:
	// a typo then fails with ErrUnknownTopic instead of making a topic.
	AutoCreateTopics bool
	// RetentionCheckInterval is how often retention runs
	// (log.retention.check.interval.ms). Default 5 minutes.
	RetentionCheckInterval time.Duration
	// CleanerBackoff is how often the cleaner looks for compacted topics'
	// partitions dirty enough to compact (log.cleaner.backoff.ms). Default
	// 15 s.
	CleanerBackoff time.Duration
	// CleanerMemoryBytes bounds the key map of one compaction pass
	// (log.cleaner.dedupe.buffer.size). Default 64 MiB.
	CleanerMemoryBytes int

	// Consumer groups (consumergroup.go, offsets.go).

	// OffsetsTopicPartitions is the partition count of __consumer_offsets,
	// the compacted topic that stores committed offsets and group metadata
	// (offsets.topic.num.partitions). Default 50. It applies when the topic
	// is created, on first use; an existing topic keeps its count.
	OffsetsTopicPartitions int32
	// OffsetsRetention is how long the committed offsets of a group with
	// no members are kept after it emptied (offsets.retention.minutes).
	// Default 7 days; -1 keeps them forever.
	OffsetsRetention time.Duration
	// OffsetsRetentionCheckInterval is how often expired offsets are
	// removed (offsets.retention.check.interval.ms). Default 10 minutes.
	OffsetsRetentionCheckInterval time.Duration
	// OffsetMetadataMaxBytes bounds the metadata string of one committed
	// offset (offset.metadata.max.bytes). Default 4096.
	OffsetMetadataMaxBytes int
	// GroupInitialRebalanceDelay is how long the first rebalance of an
	// empty group waits for more members (group.initial.rebalance.delay.ms),
	// extended by as much each time one joins, up to the rebalance timeout.
	// Default 100 ms, not Kafka's 3 s: in-process members that start
	// together join within microseconds, so a short wait still gathers them
	// into one generation, and tests do not pay seconds per group. -1: no
	// delay.
	GroupInitialRebalanceDelay time.Duration
	// GroupMinSessionTimeout and GroupMaxSessionTimeout bound the session
	// timeouts members may ask for (group.min.session.timeout.ms,
	// group.max.session.timeout.ms). Defaults 6 s and 30 minutes.
	GroupMinSessionTimeout time.Duration
	GroupMaxSessionTimeout time.Duration
	// GroupMaxSize caps the members of one group (group.max.size). Default
	// 0: no limit.
	GroupMaxSize int

	// Cluster makes the broker one of several that replicate their
	// partitions, following a controller (see ClusterConfig and
	// clusterbroker.go). Nil, the default: a single broker, whose topics
	// have one replica.
	Cluster *ClusterConfig
}

// Defaults of Options and TopicConfig not already defined by LogConfig.
const (
	DefaultRetentionTime          = 7 * 24 * time.Hour
	DefaultRetentionCheckInterval = 5 * time.Minute
	DefaultCleanerBackoff         = 15 * time.Second

	DefaultOffsetsTopicPartitions        = 50
	DefaultOffsetsRetention              = 7 * 24 * time.Hour
	DefaultOffsetsRetentionCheckInterval = 10 * time.Minute
	DefaultOffsetMetadataMaxBytes        = 4096
	DefaultGroupInitialRebalanceDelay    = 100 * time.Millisecond
	DefaultGroupMinSessionTimeout        = 6 * time.Second
	DefaultGroupMaxSessionTimeout        = 30 * time.Minute
)

func (o Options) withDefaults() Options {
	if o.Cluster != nil {
		c := *o.Cluster
		c.withDefaults()
		o.Cluster = &c
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.DefaultPartitions == 0 {
		o.DefaultPartitions = 1
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxBatchBytes
	}
	if o.RetentionTime == 0 {
		o.RetentionTime = DefaultRetentionTime
	}
	if o.RetentionBytes == 0 {
		o.RetentionBytes = -1
	}
	if o.RetentionCheckInterval == 0 {
		o.RetentionCheckInterval = DefaultRetentionCheckInterval
	}
	if o.CleanerBackoff == 0 {
		o.CleanerBackoff = DefaultCleanerBackoff
	}
	if o.CleanerMemoryBytes == 0 {
		o.CleanerMemoryBytes = DefaultCompactMemoryBytes
	}
	if o.OffsetsTopicPartitions == 0 {
		o.OffsetsTopicPartitions = DefaultOffsetsTopicPartitions
	}
	if o.OffsetsRetention == 0 {
		o.OffsetsRetention = DefaultOffsetsRetention
	}
	if o.OffsetsRetentionCheckInterval == 0 {
		o.OffsetsRetentionCheckInterval = DefaultOffsetsRetentionCheckInterval
	}
	if o.OffsetMetadataMaxBytes == 0 {
		o.OffsetMetadataMaxBytes = DefaultOffsetMetadataMaxBytes
	}
	if o.GroupInitialRebalanceDelay == 0 {
		o.GroupInitialRebalanceDelay = DefaultGroupInitialRebalanceDelay
	}
	if o.GroupMinSessionTimeout == 0 {
		o.GroupMinSessionTimeout = DefaultGroupMinSessionTimeout
	}
	if o.GroupMaxSessionTimeout == 0 {
		o.GroupMaxSessionTimeout = DefaultGroupMaxSessionTimeout
	}
	return o
}

func (o *Options) validate() error {
	if o.Cluster != nil {
		if err := o.Cluster.validate(); err != nil {
			return err
		}
	}
	switch {
	case o.SyncPolicy < SyncGroupCommit || o.SyncPolicy > SyncNone:
		return fmt.Errorf("%w: Options.SyncPolicy %v unknown", ErrInvalidConfig, o.SyncPolicy)
	case o.SyncInterval < 0:
		return fmt.Errorf("%w: Options.SyncInterval %v is negative", ErrInvalidConfig, o.SyncInterval)
	case o.DefaultPartitions < 1:
		return fmt.Errorf("%w: Options.DefaultPartitions %d below 1", ErrInvalidConfig, o.DefaultPartitions)
	case o.MaxMessageBytes < 1024 || o.MaxMessageBytes > maxSegmentBytes:
		return fmt.Errorf("%w: Options.MaxMessageBytes %d outside [1024, %d]", ErrInvalidConfig, o.MaxMessageBytes, maxSegmentBytes)
	case o.RetentionTime < -1:
		return fmt.Errorf("%w: Options.RetentionTime %v must be -1 or positive", ErrInvalidConfig, o.RetentionTime)
	case o.RetentionBytes < -1:
		return fmt.Errorf("%w: Options.RetentionBytes %d must be -1 or positive", ErrInvalidConfig, o.RetentionBytes)
	case o.RetentionCheckInterval < 0:
		return fmt.Errorf("%w: Options.RetentionCheckInterval %v is negative", ErrInvalidConfig, o.RetentionCheckInterval)
	case o.CleanerBackoff < 0:
		return fmt.Errorf("%w: Options.CleanerBackoff %v is negative", ErrInvalidConfig, o.CleanerBackoff)
	case o.CleanerMemoryBytes < 0:
		return fmt.Errorf("%w: Options.CleanerMemoryBytes %d is negative", ErrInvalidConfig, o.CleanerMemoryBytes)
	case o.OffsetsTopicPartitions < 1:
		return fmt.Errorf("%w: Options.OffsetsTopicPartitions %d below 1", ErrInvalidConfig, o.OffsetsTopicPartitions)
	case o.OffsetsRetention < -1:
		return fmt.Errorf("%w: Options.OffsetsRetention %v must be -1 or positive", ErrInvalidConfig, o.OffsetsRetention)
	case o.OffsetsRetentionCheckInterval < 0:
		return fmt.Errorf("%w: Options.OffsetsRetentionCheckInterval %v is negative", ErrInvalidConfig, o.OffsetsRetentionCheckInterval)
	case o.OffsetMetadataMaxBytes < 0:
		return fmt.Errorf("%w: Options.OffsetMetadataMaxBytes %d is negative", ErrInvalidConfig, o.OffsetMetadataMaxBytes)
	case o.GroupInitialRebalanceDelay < -1:
		return fmt.Errorf("%w: Options.GroupInitialRebalanceDelay %v must be -1 or positive", ErrInvalidConfig, o.GroupInitialRebalanceDelay)
	case o.GroupMinSessionTimeout < 0 || o.GroupMaxSessionTimeout < o.GroupMinSessionTimeout:
		return fmt.Errorf("%w: Options.GroupMinSessionTimeout %v and GroupMaxSessionTimeout %v out of order", ErrInvalidConfig, o.GroupMinSessionTimeout, o.GroupMaxSessionTimeout)
	case o.GroupMaxSize < 0:
		return fmt.Errorf("%w: Options.GroupMaxSize %d is negative", ErrInvalidConfig, o.GroupMaxSize)
	}
	return nil
}

// Files of a broker's directory besides the partition directories.
const (
	lockFile   = ".lock"
	metaFile   = "meta"
	topicsFile = "topics.json"
	// producerIDsFile holds the end of the last block of producer ids
	// handed out, so that ids stay unique across restarts.
	producerIDsFile  = "producer-ids"
	producerIDsBlock = 1000
	metaVersion      = 1
	// deleteSuffix marks a partition directory being deleted.
	deleteSuffix = ".deleting"
)

// Broker is an in-process broker: it owns a data directory, the topics in
// it and the background work on them (retention). Its methods are safe for
// concurrent use. Close it when done.
//
// Lock order: Broker.mu before any Log's mutex.
type Broker struct {
	dir       string
	opts      Options
	fs        vfs.FS
	lock      io.Closer
	clusterID string

	mu      sync.RWMutex // guards topics, clients and closed
	topics  map[string]*Topic
	clients map[client]struct{}
	closed  bool

	groups *GroupCoordinator // consumer groups and committed offsets

	pidMu    sync.Mutex // guards the producer id block
	pidNext  int64      // next producer id to hand out
	pidLimit int64      // end of the block persisted in producerIDsFile

	done chan struct{} // closed by Close: stops background goroutines
	wg   sync.WaitGroup

	// cluster is the broker's membership of a cluster (Options.Cluster),
	// nil on a single broker. recorded holds the configurations of the
	// topics topics.json lists, for the controller's events to open them
	// with.
	cluster  *clusterMember
	recorded map[string]TopicConfig
}

// client is a producer or consumer that the broker flushes and closes on
// Shutdown and Close.
type client interface {
	flush(ctx context.Context) error
	close() error
}

// Open opens the broker whose data lives in dir, creating it if needed, and
// recovers every partition (see OpenLog). A directory is used by one broker
// at a time: another process's Open fails with ErrLocked.
func Open(dir string, opts Options) (*Broker, error) {
	return openBroker(vfs.Default, dir, opts)
}

func openBroker(fs vfs.FS, dir string, opts Options) (*Broker, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("commitlog: open %s: %w", dir, err)
	}
	lock, err := fs.Lock(filepath.Join(dir, lockFile))
	if errors.Is(err, vfs.ErrLocked) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("commitlog: open %s: %w", dir, err)
	}
	b := &Broker{dir: dir, opts: opts, fs: fs, lock: lock, topics: map[string]*Topic{}, clients: map[client]struct{}{}, done: make(chan struct{})}
	if err := b.load(); err != nil {
		b.closeTopics()
		lock.Close()
		return nil, fmt.Errorf("commitlog: open %s: %w", dir, err)
	}
	if b.groups, err = newGroupCoordinator(b); err != nil {
		b.closeTopics()
		lock.Close()
		return nil, fmt.Errorf("commitlog: open %s: %w", dir, err)
	}
	if b.opts.Cluster != nil {
		if err := b.joinCluster(); err != nil {
			b.groups.close()
			b.closeTopics()
			lock.Close()
			return nil, fmt.Errorf("commitlog: open %s: %w", dir, err)
		}
	}
	b.wg.Add(2)
	go b.every(b.opts.RetentionCheckInterval, func() { _, _ = b.EnforceRetention() })
	go b.every(b.opts.CleanerBackoff, func() { _, _ = b.CompactTopics(false) })
	return b, nil
}

// topicRecord is a topic as topics.json stores it.
type topicRecord struct {
	Name   string      `json:"name"`
	Config TopicConfig `json:"config"`
}

// load checks the meta file, finishes interrupted deletions and opens the
// topics listed in topics.json.
func (b *Broker) load() error {
	if err := b.loadMeta(); err != nil {
		return err
	}
	var records []topicRecord
	if data, err := os.ReadFile(filepath.Join(b.dir, topicsFile)); err == nil {
		if err := json.Unmarshal(data, &records); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorruptLog, topicsFile, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	known := map[string]bool{}
	for _, r := range records {
		known[r.Name] = true
	}
	if b.opts.Cluster != nil {
		// The controller's events open the replicated topics (and delete
		// what it no longer has); only the broker's own topics open here.
		b.recorded = map[string]TopicConfig{}
		for _, r := range records {
			if !IsInternalTopic(r.Name) {
				b.recorded[r.Name] = r.Config
			}
		}
		records = slices.DeleteFunc(records, func(r topicRecord) bool { return !IsInternalTopic(r.Name) })
	}
	// Partition directories of deleted topics, or marked for deletion,
	// go: a crash interrupted their removal.
	entries, err := b.fs.ReadDir(b.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		topic, _, isPart := layout.ParsePartitionDir(name)
		if e.IsDir() && (strings.HasSuffix(name, deleteSuffix) || isPart && !known[topic] && b.opts.Cluster == nil) {
			if err := b.removeDir(filepath.Join(b.dir, name)); err != nil {
				return err
			}
		}
	}
	if err := b.loadProducerIDs(); err != nil {
		return err
	}
	for _, r := range records {
		t, err := b.openTopic(r.Name, r.Config)
		if err != nil {
			return err
		}
		b.topics[r.Name] = t
	}
	return nil
}

// openTopic opens (creating as needed) the partition logs of a topic.
func (b *Broker) openTopic(name string, cfg TopicConfig) (*Topic, error) {
	t := &Topic{name: name, cfg: cfg}
	parts := make([]*Partition, 0, cfg.Partitions)
	t.parts.Store(&parts)
	for i := int32(0); i < cfg.Partitions; i++ {
		p, err := b.openPartition(t, i)
		if err != nil {
			closePartitions(parts)
			return nil, err
		}
		parts = append(parts, p)
		t.parts.Store(&parts)
	}
	return t, nil
}

func (b *Broker) openPartition(t *Topic, i int32) (*Partition, error) {
	l, err := openLog(b.fs, filepath.Join(b.dir, layout.PartitionDir(t.name, i)), t.config().logConfig(&b.opts))
	if err != nil {
		return nil, err
	}
	return &Partition{topic: t, id: i, log: l}, nil
}

func closePartitions(parts []*Partition) error {
	parts = slices.DeleteFunc(slices.Clone(parts), func(p *Partition) bool { return p.log == nil })
	var errs []error
	for _, p := range parts {
		errs = append(errs, p.log.Close())
	}
	return errors.Join(errs...)
}

// saveTopicsLocked writes topics.json atomically.
func (b *Broker) saveTopicsLocked() error {
	records := make([]topicRecord, 0, len(b.topics))
	for _, t := range b.topics {
		records = append(records, topicRecord{Name: t.name, Config: t.Config()})
	}
	slices.SortFunc(records, func(a, b topicRecord) int { return strings.Compare(a.Name, b.Name) })
	data, err := json.MarshalIndent(records, "", "  ")
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(b.fs, filepath.Join(b.dir, topicsFile), data, 0o644)
}

// removeDir removes a directory of files and syncs its parent.
func (b *Broker) removeDir(dir string) error {
	entries, err := b.fs.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if err := b.fs.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	if err := b.fs.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return b.fs.SyncDir(filepath.Dir(dir))
}

// InitProducerID hands out a new idempotent producer id, with epoch 0
// (Kafka's InitProducerId without a transactional id). Ids are unique for
// the life of the data directory: blocks of them are reserved durably
// before use.
func (b *Broker) InitProducerID(ctx context.Context) (id int64, epoch int16, err error) {
	if err := ctx.Err(); err != nil {
		return -1, -1, err
	}
	b.pidMu.Lock()
	defer b.pidMu.Unlock()
	if b.pidNext >= b.pidLimit {
		limit := b.pidNext + producerIDsBlock
		data := []byte(strconv.FormatInt(limit, 10))
		if err := vfs.WriteFileAtomic(b.fs, filepath.Join(b.dir, producerIDsFile), data, 0o644); err != nil {
			return -1, -1, fmt.Errorf("commitlog: allocate producer ids: %w", err)
		}
		b.pidLimit = limit
	}
	id = b.pidNext
	b.pidNext++
	if b.opts.Cluster != nil {
		// Brokers of a cluster count ids independently; the broker id in
		// the high bits keeps theirs apart (Kafka asks its controller
		// for blocks instead).
		id |= int64(b.opts.Cluster.BrokerID) << clusterProducerIDShift
	}
	return id, 0, nil
}

// clusterProducerIDShift places a broker's id above the 2^40 producer ids
// it can hand out.
const clusterProducerIDShift = 40

// loadProducerIDs reads where the next block of producer ids starts.
func (b *Broker) loadProducerIDs() error {
	data, err := os.ReadFile(filepath.Join(b.dir, producerIDsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%w: %s holds %q", ErrCorruptLog, producerIDsFile, data)
	}
	b.pidNext, b.pidLimit = n, n
	return nil
}

// Dir returns the broker's data directory.
func (b *Broker) Dir() string { return b.dir }

// CreateTopic creates a topic. It fails with ErrInvalidTopic for a bad
// name, ErrTopicExists when the name is taken and ErrInvalidConfig for a bad
// configuration. The topic and its configuration survive restarts.
func (b *Broker) CreateTopic(ctx context.Context, name string, cfg TopicConfig) (*Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults(&b.opts)
	if err := b.validateTopicConfig(name, &cfg); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.cluster != nil && !IsInternalTopic(name) {
		return b.cluster.createTopic(ctx, name, cfg)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if _, ok := b.topics[name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicExists, name)
	}
	t, err := b.openTopic(name, cfg)
	if err != nil {
		return nil, fmt.Errorf("commitlog: create topic %s: %w", name, err)
	}
	b.topics[name] = t
	if err := b.saveTopicsLocked(); err != nil {
		delete(b.topics, name)
		closePartitions(t.Partitions())
		return nil, fmt.Errorf("commitlog: create topic %s: %w", name, err)
	}
	return t, nil
}

// Topic returns the named topic, or ErrUnknownTopic.
func (b *Broker) Topic(name string) (*Topic, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	t, ok := b.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	return t, nil
}

// topicForWrite returns the named topic, creating it when
// Options.AutoCreateTopics allows.
func (b *Broker) topicForWrite(ctx context.Context, name string) (*Topic, error) {
	t, err := b.Topic(name)
	if err == nil || !errors.Is(err, ErrUnknownTopic) || !b.opts.AutoCreateTopics {
		return t, err
	}
	t, err = b.CreateTopic(ctx, name, TopicConfig{})
	if errors.Is(err, ErrTopicExists) {
		return b.Topic(name)
	}
	return t, err
}

// Topics returns the names of all topics, sorted.
func (b *Broker) Topics() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	names := make([]string, 0, len(b.topics))
	for n := range b.topics {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// DeleteTopic deletes a topic and its files, and the offsets groups
// committed for it (as Kafka does: a topic created again under the name
// starts with none). Readers holding Slices keep them until they release
// them. The deletion is durable when it returns.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if b.cluster != nil && !IsInternalTopic(name) {
		if err := b.cluster.cfg.Controller.DeleteTopic(ctx, name); err != nil {
			return clusterError(err)
		}
		// The controller's event deletes it here too; whichever comes
		// first does it.
		if err := b.deleteTopic(ctx, name); err != nil && !errors.Is(err, ErrUnknownTopic) {
			return err
		}
		return b.groups.forgetTopic(ctx, name)
	}
	if err := b.deleteTopic(ctx, name); err != nil {
		return err
	}
	if err := b.groups.forgetTopic(ctx, name); err != nil {
		return fmt.Errorf("commitlog: delete topic %s: committed offsets: %w", name, err)
	}
	return nil
}

// deleteTopic removes the topic and its files.
func (b *Broker) deleteTopic(ctx context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.topicForAdminLocked(ctx, name)
	if err != nil {
		return err
	}
	if IsInternalTopic(name) {
		return fmt.Errorf("%w: %s is internal and cannot be deleted", ErrInvalidTopic, name)
	}
	delete(b.topics, name)
	if err := b.saveTopicsLocked(); err != nil {
		b.topics[name] = t
		return fmt.Errorf("commitlog: delete topic %s: %w", name, err)
	}
	// From here the topic is gone: a crash leaves directories that the
	// next open removes.
	var errs []error
	for _, p := range t.held() {
		if p.repl != nil {
			b.cluster.forget(p) // its fetches stop before its log closes
		}
		errs = append(errs, p.log.Close())
		dir := p.log.Dir()
		gone := dir + deleteSuffix
		if err := b.fs.Rename(dir, gone); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, b.removeDir(gone))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("commitlog: delete topic %s: %w", name, err)
	}
	return nil
}

// topicForAdminLocked returns the named topic for an admin change, or the
// reason there is none: ctx done, broker closed, unknown topic.
func (b *Broker) topicForAdminLocked(ctx context.Context, name string) (*Topic, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.closed {
		return nil, ErrClosed
	}
	t, ok := b.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	return t, nil
}

// AddPartitions raises a topic's partition count to total (Kafka's
// CreatePartitions). Partitions are never removed: total below the current
// count fails with ErrInvalidConfig.
func (b *Broker) AddPartitions(ctx context.Context, name string, total int32) error {
	if b.cluster != nil && !IsInternalTopic(name) {
		return b.cluster.addPartitions(ctx, name, total)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.topicForAdminLocked(ctx, name)
	if err != nil {
		return err
	}
	if IsInternalTopic(name) {
		// Groups map to its partitions by hash: more would move them.
		return fmt.Errorf("%w: %s is internal: its partition count is fixed", ErrInvalidTopic, name)
	}
	cur := *t.parts.Load()
	if total <= int32(len(cur)) {
		return fmt.Errorf("%w: %s has %d partitions, cannot go to %d", ErrInvalidConfig, name, len(cur), total)
	}
	parts := slices.Clone(cur)
	for i := int32(len(cur)); i < total; i++ {
		p, err := b.openPartition(t, i)
		if err != nil {
			closePartitions(parts[len(cur):])
			return fmt.Errorf("commitlog: add partitions to %s: %w", name, err)
		}
		parts = append(parts, p)
	}
	t.parts.Store(&parts)
	if err := b.saveTopicsLocked(); err != nil {
		t.parts.Store(&cur)
		closePartitions(parts[len(cur):])
		return fmt.Errorf("commitlog: add partitions to %s: %w", name, err)
	}
	return nil
}

// DescribeTopic describes the named topic; see Topic.Describe.
func (b *Broker) DescribeTopic(name string) (TopicDescription, error) {
	t, err := b.Topic(name)
	if err != nil {
		return TopicDescription{}, err
	}
	return t.Describe(), nil
}

// every runs fn every period until Close: the broker's background work.
// Errors are left for the next run (a broken partition's appends report
// them to their callers).
func (b *Broker) every(period time.Duration, fn func()) {
	defer b.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
			fn()
		}
	}
}

// topicsSnapshot returns the current topics.
func (b *Broker) topicsSnapshot() []*Topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	topics := make([]*Topic, 0, len(b.topics))
	for _, t := range b.topics {
		topics = append(topics, t)
	}
	return topics
}

// CompactTopics compacts the partitions of compacted topics whose dirty
// ratio reaches the topic's MinCleanableDirtyRatio, or all of them when
// force is set. The broker's cleaner does this every CleanerBackoff. It
// returns the summed statistics and the errors met (the pass goes on past
// them).
func (b *Broker) CompactTopics(force bool) (CompactStats, error) {
	var total CompactStats
	var errs []error
	for _, t := range b.topicsSnapshot() {
		cfg := t.config()
		if !cfg.compacted() {
			continue
		}
		for _, p := range t.held() {
			if !force && p.log.DirtyRatio() < cfg.MinCleanableDirtyRatio {
				continue
			}
			s, err := p.log.Compact(CompactOptions{DeleteRetention: cfg.DeleteRetention, MemoryBytes: b.opts.CleanerMemoryBytes})
			total.Passes += s.Passes
			total.SegmentsWritten += s.SegmentsWritten
			total.BytesRead += s.BytesRead
			total.BytesWritten += s.BytesWritten
			total.RecordsRemoved += s.RecordsRemoved
			if err != nil && !errors.Is(err, ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return total, errors.Join(errs...)
}

// EnforceRetention deletes, in every partition, the segments past the
// topic's retention time and bytes, now. The broker also does this every
// RetentionCheckInterval. It returns the number of segments deleted and
// the errors met (the pass goes on past them).
func (b *Broker) EnforceRetention() (int, error) {
	now := time.Now()
	deleted := 0
	var errs []error
	for _, t := range b.topicsSnapshot() {
		cfg := t.config()
		if !cfg.deletes() {
			continue
		}
		for _, p := range t.held() {
			if cfg.RetentionTime > 0 {
				n, err := p.log.RetainAge(cfg.RetentionTime, now)
				deleted += n
				if err != nil && !errors.Is(err, ErrClosed) {
					errs = append(errs, err)
				}
			}
			if cfg.RetentionBytes > 0 {
				n, err := p.log.RetainBytes(cfg.RetentionBytes)
				deleted += n
				if err != nil && !errors.Is(err, ErrClosed) {
					errs = append(errs, err)
				}
			}
		}
	}
	return deleted, errors.Join(errs...)
}

// register adds a producer or consumer to flush and close with the broker.
func (b *Broker) register(c client) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.clients[c] = struct{}{}
	return nil
}

// unregister forgets a client that closed itself.
func (b *Broker) unregister(c client) {
	b.mu.Lock()
	delete(b.clients, c)
	b.mu.Unlock()
}

// Shutdown flushes every producer (waiting for their buffered records to
// be appended, until ctx is done), then closes the broker as Close does.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.RLock()
	clients := make([]client, 0, len(b.clients))
	for c := range b.clients {
		clients = append(clients, c)
	}
	b.mu.RUnlock()
	var errs []error
	for _, c := range clients {
		if err := c.flush(ctx); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, b.Close())
	return errors.Join(errs...)
}

// Close closes every producer and consumer (records still buffered in
// producers fail with ErrClosed; use Shutdown to flush them), stops the
// background work, closes every partition cleanly and releases the
// directory. It is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	clients := b.clients
	b.clients = nil
	b.mu.Unlock()
	var errs []error
	for c := range clients {
		errs = append(errs, c.close())
	}
	close(b.done)
	b.wg.Wait()
	if b.cluster != nil {
		errs = append(errs, b.cluster.leave())
	}
	b.groups.close()
	b.mu.Lock()
	errs = append(errs, b.closeTopics())
	b.mu.Unlock()
	if b.cluster != nil && !b.cluster.killed && errors.Join(errs...) == nil {
		errs = append(errs, b.markCleanShutdown())
	}
	errs = append(errs, b.lock.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("commitlog: close broker: %w", err)
	}
	return nil
}

func (b *Broker) closeTopics() error {
	var errs []error
	for _, t := range b.topics {
		errs = append(errs, closePartitions(t.Partitions()))
	}
	return errors.Join(errs...)
}

// brokerMeta is the meta file: the directory's format version and the
// cluster id, made once when the directory is created.
type brokerMeta struct {
	Version   int    `json:"version"`
	ClusterID string `json:"cluster_id"`
}

// loadMeta reads the meta file, creating it in a new directory. A meta file
// of another format version is refused.
func (b *Broker) loadMeta() error {
	name := filepath.Join(b.dir, metaFile)
	data, err := os.ReadFile(name)
	var m brokerMeta
	switch {
	case errors.Is(err, os.ErrNotExist):
		m = brokerMeta{Version: metaVersion}
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(data, &m); err != nil || m.Version != metaVersion {
			return fmt.Errorf("%w: meta file %q: want format version %d", ErrCorruptLog, data, metaVersion)
		}
	}
	if m.ClusterID == "" {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return err
		}
		// Kafka's cluster ids are 16 random bytes in unpadded URL base64.
		m.ClusterID = base64.RawURLEncoding.EncodeToString(id[:])
		data, _ := json.Marshal(m)
		if err := vfs.WriteFileAtomic(b.fs, name, data, 0o644); err != nil {
			return err
		}
	}
	b.clusterID = m.ClusterID
	return nil
}

// ClusterID returns the id of the cluster this broker's directory belongs
// to: 22 characters, made when the directory was created and kept in its
// meta file, as Kafka's cluster.id.
func (b *Broker) ClusterID() string { return b.clusterID }

// Options returns the broker's options, with defaults filled in.
func (b *Broker) Options() Options { return b.opts }

// ValidateTopic checks a topic name and configuration as CreateTopic would,
// without creating anything, and returns the configuration with defaults
// filled in (Kafka's validate-only CreateTopics).
func (b *Broker) ValidateTopic(name string, cfg TopicConfig) (TopicConfig, error) {
	if err := ValidateTopicName(name); err != nil {
		return TopicConfig{}, err
	}
	cfg = cfg.withDefaults(&b.opts)
	if err := b.validateTopicConfig(name, &cfg); err != nil {
		return TopicConfig{}, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return TopicConfig{}, ErrClosed
	}
	if _, ok := b.topics[name]; ok {
		return TopicConfig{}, fmt.Errorf("%w: %s", ErrTopicExists, name)
	}
	return cfg, nil
}
