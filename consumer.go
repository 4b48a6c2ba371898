package commitlog

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
)

// Consumers.
//
// A Consumer reads the records of a set of partitions (its assignment) in
// offset order, keeping one position per partition: the offset of the next
// record Poll returns. Without a group, the assignment is explicit
// (ConsumerConfig.Partitions, Kafka's assign) or every partition of some
// topics (ConsumerConfig.Topics, subscribe without a group id), and
// positions live in memory only. A partition gets its position when it
// joins the assignment (in NewConsumer, or in the Poll that finds a new
// partition), from ConsumerConfig.Reset, and not at its first fetch as in
// Kafka's clients: with ResetLatest, records appended between NewConsumer
// and the first Poll are read. With ConsumerConfig.Group, the group assigns
// the partitions and positions start from its committed offsets; that part
// lives in consumer_group.go.
//
// Poll reads straight from the partitions' memory-mapped segments: records
// of uncompressed batches are returned without a copy, and compressed
// batches are inflated into buffers the consumer reuses. That is where the
// lifetime rule of Poll comes from (see Poll).

// ResetPolicy says where a consumer starts in a partition it has no
// position in, and what it does when its position falls outside the
// partition's log (retention deleted the records, or a Seek went past the
// end): Kafka's auto.offset.reset.
type ResetPolicy int8

const (
	// ResetEarliest starts at the partition's start offset, the oldest
	// record still held, and moves a position that fell out of range
	// there too. The default, as in franz-go (Kafka's Java client defaults
	// to latest).
	ResetEarliest ResetPolicy = iota
	// ResetLatest starts at the partition's end offset, so only records
	// appended afterwards are read, and moves a position that fell out of
	// range there too.
	ResetLatest
	// ResetNone never moves a position by itself: when it falls out of
	// range, Poll returns an error wrapping the *OffsetOutOfRangeError
	// (with the topic, the partition and the valid range) until Seek
	// moves it. A partition with no position yet, and no committed offset
	// in the consumer's group, starts at its start offset, as franz-go's
	// NoResetOffset does (Kafka's Java client fails instead).
	ResetNone
)

// String returns Kafka's name for the policy: "earliest", "latest" or
// "none".
func (p ResetPolicy) String() string {
	switch p {
	case ResetEarliest:
		return "earliest"
	case ResetLatest:
		return "latest"
	case ResetNone:
		return "none"
	}
	return fmt.Sprintf("ResetPolicy(%d)", int(p))
}

// Defaults of ConsumerConfig: Kafka's, except DefaultMetadataMaxAge.
const (
	DefaultMaxPollRecords    = 500
	DefaultMaxPollBytes      = 50 << 20
	DefaultMaxPartitionBytes = 1 << 20
	DefaultMetadataMaxAge    = 5 * time.Second
)

// ConsumerConfig configures a Consumer. The zero value is usable once it
// says what to read: exactly one of Topics and Partitions. Zero fields take
// the default written beside them.
type ConsumerConfig struct {
	// Topics subscribes to every partition of these topics, including
	// partitions added later: each Poll looks for new ones (and so does a
	// Poll that waits, every MetadataMaxAge); they start where Reset says.
	// A topic deleted meanwhile leaves the assignment, and comes back if it
	// is created again. Every topic must exist when the consumer is made
	// (ErrUnknownTopic otherwise). Exclusive with Partitions.
	Topics []string
	// Partitions assigns exactly these partitions, by topic (Kafka's
	// assign). Each must exist when the consumer is made (ErrUnknownTopic,
	// ErrUnknownPartition otherwise); if its topic is deleted later, the
	// next Poll returns an error wrapping ErrUnknownTopic once and drops
	// the topic's partitions. Exclusive with Topics.
	Partitions map[string][]int32
	// Group is the consumer group (group.id); see consumer_group.go for
	// what membership does and the delivery guarantees. With Topics, the
	// consumer joins the group and consumes the partitions of those topics
	// that the group assigns it, rebalancing as members come and go. With
	// Partitions, it does not join: it reads exactly those partitions and
	// commits as a client outside group management (Kafka's assign with a
	// group.id), which the coordinator accepts only while the group has no
	// members. Either way positions start from the group's committed
	// offsets, Reset applying to partitions without one, and Commit and its
	// siblings store them. Empty: no group, and the fields from InstanceID
	// to OnLost must be zero.
	Group string
	// Reset is where a partition without a position starts and where a
	// position out of range goes (auto.offset.reset). Default
	// ResetEarliest.
	Reset ResetPolicy
	// MaxPollRecords is the most records one Poll returns
	// (max.poll.records). Default 500.
	MaxPollRecords int
	// MaxPollBytes caps the record batch bytes one Poll decodes, counted as
	// stored, that is compressed (fetch.max.bytes). Default 50 MiB. The
	// first batch of a Poll is returned even when larger (KIP-74), so a
	// large batch never blocks a consumer.
	MaxPollBytes int
	// MaxPartitionBytes caps the record batch bytes one Poll decodes from
	// one partition, counted as MaxPollBytes is
	// (max.partition.fetch.bytes). Default 1 MiB. A partition's first
	// batch in a Poll is decoded even when larger, as long as it fits
	// MaxPollBytes or is the Poll's first.
	MaxPartitionBytes int
	// MetadataMaxAge is how often a Poll that waits for records looks for
	// partitions added to the subscribed topics (metadata.max.age.ms).
	// Default 5 s: Kafka's 5 minutes pays for a network round trip, here
	// a look costs a few atomic loads. In a group, it is how often the
	// group's leader looks for changes (partitions added, topics deleted or
	// created) that call for a new assignment. Unused with Partitions.
	MetadataMaxAge time.Duration

	// The fields below configure group membership (Group with Topics),
	// except AutoCommit and AutoCommitInterval, which also apply to a
	// Group with Partitions.

	// InstanceID makes the consumer a static member of its group
	// (group.instance.id, KIP-345): a consumer that restarts with the same
	// InstanceID within SessionTimeout takes its predecessor's place and
	// assignment back without a rebalance, and Close does not leave the
	// group, so its partitions move to other members only once its session
	// expires. Unique within the group; empty for a dynamic member.
	InstanceID string
	// Assignors are the partition assignment strategies the consumer
	// offers, in order of preference (partition.assignment.strategy); the
	// group uses one that every member offers. The consumer rebalances
	// cooperatively (KIP-429: it gives up only the partitions that move)
	// when every listed assignor is cooperative, and eagerly (it gives up
	// all its partitions at every rebalance) otherwise, as Kafka's consumer
	// does. Default RangeAssignor then CooperativeStickyAssignor, Kafka's
	// default (since 3.0, and still in 4.x): a group of default consumers,
	// including Java ones sharing it, agrees on range, and a rolling
	// restart that drops RangeAssignor then moves the group to
	// cooperative-sticky with no stop. Name CooperativeStickyAssignor alone
	// for cooperative rebalancing from the start.
	Assignors []Assignor
	// SessionTimeout is how long the group waits for a heartbeat before
	// it removes the member and reassigns its partitions
	// (session.timeout.ms). Default 45 s. It must lie within the broker's
	// Options.GroupMinSessionTimeout and GroupMaxSessionTimeout.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long a rebalance waits for the member to
	// join again, and so the longest the application may go without
	// calling Poll (max.poll.interval.ms): a consumer that does not come
	// back to Poll for that long leaves the group (its partitions are
	// lost; see OnLost) and joins again at its next Poll. Default 5
	// minutes.
	RebalanceTimeout time.Duration
	// HeartbeatInterval is how often the member tells the group it is
	// alive, and so how soon it learns of a rebalance
	// (heartbeat.interval.ms). Default 3 s; it must be below
	// SessionTimeout.
	HeartbeatInterval time.Duration
	// AutoCommit commits positions in the background every
	// AutoCommitInterval, when partitions are revoked and on Close
	// (enable.auto.commit). Off by default, unlike Kafka and franz-go: the
	// zero value of a bool is the default, and committing decides what a
	// restart skips, so it is chosen by name. What auto-commit commits is
	// written in consumer_group.go.
	AutoCommit bool
	// AutoCommitInterval is the period of AutoCommit
	// (auto.commit.interval.ms). Default 5 s.
	AutoCommitInterval time.Duration
	// The callbacks run one at a time, on a goroutine of the consumer's
	// (not the one that calls Poll); ctx expires after RebalanceTimeout,
	// as the group waits no longer. They may call the consumer's methods,
	// Commit and Seek included, except Close, which waits for them.

	// OnAssigned is called after every rebalance with the partitions the
	// consumer gained, perhaps none (Kafka's onPartitionsAssigned). Poll
	// returns none of their records until it returns, so it may Seek them
	// (to offsets kept outside the group, for example).
	OnAssigned func(ctx context.Context, partitions map[string][]int32)
	// OnRevoked is called when partitions are taken away from the
	// consumer and its generation is still valid, so that the application
	// can flush and Commit them (Kafka's onPartitionsRevoked): by a
	// rebalance, and for every partition on Close.
	OnRevoked func(ctx context.Context, partitions map[string][]int32)
	// OnLost is called when partitions are taken away from the consumer
	// after it left the group's generation: it was fenced, its session
	// expired, or it did not call Poll within RebalanceTimeout. Another
	// member may own them already, so a commit fails (Kafka's
	// onPartitionsLost). Nil: OnRevoked is called instead, as in Kafka.
	OnLost func(ctx context.Context, partitions map[string][]int32)
}

// normalized returns the configuration with defaults filled in, its topics
// and partitions copied, sorted where order carries no meaning and
// deduplicated, or the error naming the first bad field.
func (c ConsumerConfig) normalized() (ConsumerConfig, error) {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: ConsumerConfig.%s %v %s", ErrInvalidConfig, field, v, why)
	}
	switch {
	case len(c.Topics) > 0 && len(c.Partitions) > 0:
		return c, fmt.Errorf("%w: ConsumerConfig.Topics and ConsumerConfig.Partitions are exclusive: subscribe or assign, not both", ErrInvalidConfig)
	case len(c.Topics) == 0 && len(c.Partitions) == 0:
		return c, fmt.Errorf("%w: ConsumerConfig needs Topics or Partitions: nothing to consume", ErrInvalidConfig)
	case c.Reset < ResetEarliest || c.Reset > ResetNone:
		return c, bad("Reset", c.Reset, "unknown")
	case c.MaxPollRecords < 0:
		return c, bad("MaxPollRecords", c.MaxPollRecords, "is negative")
	case c.MaxPollBytes < 0:
		return c, bad("MaxPollBytes", c.MaxPollBytes, "is negative")
	case c.MaxPartitionBytes < 0:
		return c, bad("MaxPartitionBytes", c.MaxPartitionBytes, "is negative")
	case c.MetadataMaxAge < 0:
		return c, bad("MetadataMaxAge", c.MetadataMaxAge, "is negative")
	}
	if err := c.checkGroupFields(); err != nil {
		return c, err
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	if c.MaxPollBytes == 0 {
		c.MaxPollBytes = DefaultMaxPollBytes
	}
	if c.MaxPartitionBytes == 0 {
		c.MaxPartitionBytes = DefaultMaxPartitionBytes
	}
	if c.MetadataMaxAge == 0 {
		c.MetadataMaxAge = DefaultMetadataMaxAge
	}
	if c.Group != "" {
		c.groupDefaults()
	}
	if c.Topics != nil {
		topics := make([]string, 0, len(c.Topics))
		for _, t := range c.Topics {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
		c.Topics = topics
	}
	if c.Partitions != nil {
		parts := make(map[string][]int32, len(c.Partitions))
		for t, ids := range c.Partitions {
			if len(ids) == 0 {
				return c, fmt.Errorf("%w: ConsumerConfig.Partitions[%q] lists no partition", ErrInvalidConfig, t)
			}
			ids = slices.Clone(ids)
			slices.Sort(ids)
			parts[t] = slices.Compact(ids)
		}
		c.Partitions = parts
	}
	return c, nil
}

// Consumer reads records from the partitions assigned to it; see
// ConsumerConfig for how they are chosen and Poll for how records are
// returned.
//
// Its methods are safe for concurrent use, and Close, Seek and friends may
// be called while Poll waits: Seek wakes it up. Poll itself is meant for one
// goroutine at a time, since each call invalidates the records the last one
// returned.
//
// Lock order: groupMember.commitMu, then Consumer.mu, then Broker.mu and
// any Log's locks. Consumer.mu is not held while the consumer calls the
// group coordinator or a callback.
type Consumer struct {
	b        *Broker
	cfg      ConsumerConfig
	names    []string      // the topics of cfg, in the order refreshes visit them
	wake     chan struct{} // buffered (1): appends to assigned partitions, Seek, assignments
	done     chan struct{} // closed by close
	once     sync.Once
	group    *groupMember // nil without cfg.Group
	closeErr error        // the final commit's, set by close

	// mu guards everything below, the state of every cursor and the
	// fields of group its comments say it guards.
	mu      sync.Mutex
	closed  bool
	cursors []*cursor // the assignment, in the order partitions were added
	byTP    map[topicPartition]*cursor
	seen    map[string]topicState // per assigned topic: what the last refresh found
	pending error                 // reported by the next Poll: assigned partitions that vanished
	next    int                   // index in cursors where the next Poll starts
	polls   uint64                // Polls that returned records
	calls   uint64                // calls to Poll begun, a Records loop's included
	timer   *time.Timer           // MetadataMaxAge while Poll waits

	// The memory the last Poll's records alias, reused or released by the
	// next Poll (see recycleLocked).
	out     []Record    // the records themselves
	hdrs    []Header    // their Headers
	retired []Slice     // slices read to the end, or dropped by Seek
	pinned  []*inflater // inflaters holding batches decompressed since then
	free    []*inflater // inflaters ready for reuse
	freeCap int         // sum of the free inflaters' sizes
}

type topicPartition struct {
	topic     string
	partition int32
}

// topicState is what the last refresh found of an assigned topic: when
// neither changed, its partitions need no look.
type topicState struct {
	t *Topic
	n int // partitions
}

// cursor is the consumer's state for one assigned partition.
//
// Invariants: pos is the offset of the next record to return; rest is the
// unread tail of slice, beginning with a whole batch; while the iterator it
// is not nil, it decodes batch h, whose records below pos were returned.
type cursor struct {
	name  string
	p     *Partition
	pos   int64
	moved uint64 // c.polls when Seek last moved pos (or the cursor was made)
	stop  func() // ends NotifyData

	// For groups (consumer_group.go).
	mark      int64  // pos when the latest call to Poll began: what earlier Polls returned
	held      uint64 // the call to Poll that last returned records of it; 0: none
	committed int64  // the offset this consumer last committed or fetched; -1: none
	commitSeq uint64 // the commit snapshot that committed it
	asked     int64  // the offset the application last asked to commit, since Seek; -1: none
	sought    bool   // Seek or a reset moved pos since the last commit
	paused    bool   // being assigned or revoked: Poll skips it

	slice Slice // batches read from p, held until recycled
	rest  []byte
	it    *batch.Iter // &plain or &inf.it; nil between batches
	inf   *inflater   // owns it when the batch is compressed
	h     batch.Header
	plain batch.Iter // decodes uncompressed batches: records alias slice
}

// inflater decodes compressed batches; records alias its buffer, so one
// that decoded a batch during a Poll is pinned until the next Poll.
type inflater struct {
	it      batch.Iter
	decoded int  // bytes of keys and values decoded from its batch
	size    int  // the most it decoded from one batch, roughly its buffer size
	live    bool // a cursor is still decoding its batch
}

// maxFreeInflaterBytes bounds the decompression buffers a consumer keeps
// for reuse between polls.
const maxFreeInflaterBytes = 16 << 20

// NewConsumer returns a consumer of the topics or partitions cfg names,
// positioned where cfg.Reset says, or, in a group, where the group
// committed. A consumer with Group and Topics joins its group in the
// background: it has no partitions until the first rebalance completes
// (see ConsumerConfig.OnAssigned), and Poll waits for them. NewConsumer
// fails with ErrInvalidConfig for a bad configuration, ErrUnknownTopic or
// ErrUnknownPartition for what does not exist, and ErrClosed once the
// broker is closed. Close the consumer when done; closing the broker closes
// it too.
func (b *Broker) NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	if err := cfg.checkSessionTimeout(&b.opts); err != nil {
		return nil, err
	}
	// Fail on names that do not exist now, rather than wait for them.
	for _, name := range cfg.Topics {
		if _, err := b.Topic(name); err != nil {
			return nil, fmt.Errorf("commitlog: new consumer: %w", err)
		}
	}
	for name, ids := range cfg.Partitions {
		t, err := b.Topic(name)
		if err != nil {
			return nil, fmt.Errorf("commitlog: new consumer: %w", err)
		}
		for _, id := range ids {
			if _, err := t.Partition(id); err != nil {
				return nil, fmt.Errorf("commitlog: new consumer: %w", err)
			}
		}
	}
	c := &Consumer{
		b:     b,
		cfg:   cfg,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		byTP:  map[topicPartition]*cursor{},
		seen:  map[string]topicState{},
		timer: time.NewTimer(time.Hour),
	}
	c.names = cfg.Topics
	if cfg.Partitions != nil {
		c.names = slices.Sorted(maps.Keys(cfg.Partitions))
	}
	c.timer.Stop()
	if cfg.Group != "" {
		c.group = newGroupMember(c)
		if cfg.Partitions != nil {
			err = c.group.fetchStart(cfg.Partitions)
		}
	}
	if err == nil {
		c.mu.Lock()
		err = c.refreshLocked()
		if err == nil {
			err = c.pending
		}
		c.mu.Unlock()
	}
	if err == nil {
		if c.group != nil {
			c.group.start() // before the broker can close c: it waits for them
		}
		err = b.register(c)
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("commitlog: new consumer: %w", err)
	}
	return c, nil
}

// refreshLocked brings the assignment in line with the broker's topics:
// partitions added to subscribed topics join it, those of deleted topics
// leave it, and those of re-created topics are replaced (their position
// reset, since they are new logs). Vanished assigned partitions are
// reported through c.pending. It fails only when the broker is closed.
func (c *Consumer) refreshLocked() error {
	if c.group != nil && c.group.member {
		return c.refreshGroupLocked()
	}
	for i := 0; i < len(c.names); i++ {
		name := c.names[i]
		t, err := c.b.Topic(name)
		if errors.Is(err, ErrUnknownTopic) {
			if _, ok := c.seen[name]; ok {
				c.dropTopicLocked(name)
			}
			if c.cfg.Partitions != nil {
				delete(c.cfg.Partitions, name)
				c.names = slices.Delete(c.names, i, i+1)
				i--
				c.pending = errors.Join(c.pending, fmt.Errorf("commitlog: consumer: assigned topic deleted: %w", err))
			}
			continue
		}
		if err != nil {
			return err
		}
		parts := *t.parts.Load()
		s, ok := c.seen[name]
		if ok && s.t == t && s.n == len(parts) {
			continue
		}
		if ok && s.t != t {
			c.dropTopicLocked(name) // re-created: its partitions are new logs
		}
		c.seen[name] = topicState{t: t, n: len(parts)}
		ids := c.cfg.Partitions[name]
		if c.cfg.Topics != nil {
			ids = make([]int32, len(parts))
			for i := range ids {
				ids[i] = int32(i)
			}
		}
		var kept []int32
		for _, id := range ids {
			cur := c.byTP[topicPartition{name, id}]
			if int(id) >= len(parts) {
				// Only an assigned partition of a topic re-created
				// smaller can be missing.
				if cur != nil {
					c.removeLocked(cur)
				}
				c.pending = errors.Join(c.pending, fmt.Errorf("commitlog: consumer: assigned partition deleted: %w: %s has no partition %d", ErrUnknownPartition, name, id))
				continue
			}
			kept = append(kept, id)
			if cur == nil {
				c.addLocked(name, parts[id], c.group.startOffset(name, id))
			}
		}
		if c.cfg.Partitions != nil {
			c.cfg.Partitions[name] = kept
		}
	}
	return nil
}

// addLocked assigns p, positioned at committed, the group's committed
// offset, or where the reset policy starts when committed is negative.
func (c *Consumer) addLocked(name string, p *Partition, committed int64) *cursor {
	cur := &cursor{name: name, p: p, moved: c.polls, committed: committed, asked: -1}
	cur.stop = p.NotifyData(c.wake) // before the position is read: no append is missed
	cur.pos = committed
	if committed < 0 {
		cur.pos = c.startOffset(p)
	}
	cur.mark = cur.pos
	c.cursors = append(c.cursors, cur)
	c.byTP[topicPartition{name, p.id}] = cur
	return cur
}

// startOffset is where the reset policy starts reading p.
func (c *Consumer) startOffset(p *Partition) int64 {
	if c.cfg.Reset == ResetLatest {
		return p.EndOffset()
	}
	return p.StartOffset()
}

// removeLocked takes a cursor out of the assignment.
func (c *Consumer) removeLocked(cur *cursor) {
	cur.stop()
	c.dropBufferedLocked(cur)
	delete(c.byTP, topicPartition{cur.name, cur.p.id})
	if i := slices.Index(c.cursors, cur); i >= 0 {
		c.cursors = slices.Delete(c.cursors, i, i+1)
	}
}

// dropTopicLocked removes every partition of a topic from the assignment.
func (c *Consumer) dropTopicLocked(name string) {
	for _, cur := range slices.Clone(c.cursors) {
		if cur.name == name {
			c.removeLocked(cur)
		}
	}
	delete(c.seen, name)
}

// dropBufferedLocked forgets what the cursor read ahead. The memory stays
// valid until the next Poll, which recycles it: the last Poll's records may
// alias it.
func (c *Consumer) dropBufferedLocked(cur *cursor) {
	c.endBatchLocked(cur)
	c.retireLocked(cur)
}

// endBatchLocked marks the cursor's batch as done.
func (c *Consumer) endBatchLocked(cur *cursor) {
	if cur.inf != nil {
		cur.inf.live = false
		cur.inf = nil
	}
	cur.it = nil
}

// retireLocked hands the cursor's slice to the next Poll for release.
func (c *Consumer) retireLocked(cur *cursor) {
	if cur.slice.Bytes != nil {
		c.retired = append(c.retired, cur.slice)
	}
	cur.slice, cur.rest = Slice{}, nil
}

// recycleLocked reclaims the memory the last Poll's records alias: it
// releases retired slices and frees the inflaters of finished batches.
func (c *Consumer) recycleLocked() {
	for i := range c.retired {
		c.retired[i].Release()
	}
	clear(c.retired)
	c.retired = c.retired[:0]
	keep, dropped := c.pinned[:0], false
	for _, inf := range c.pinned {
		switch {
		case inf.live:
			keep = append(keep, inf)
		case inf.size <= maxPooledBytes && c.freeCap+inf.size <= maxFreeInflaterBytes:
			c.free = append(c.free, inf)
			c.freeCap += inf.size
		default:
			dropped = true
		}
	}
	clear(c.pinned[len(keep):])
	c.pinned = keep
	clear(c.hdrs)
	c.hdrs = c.hdrs[:0]
	if dropped {
		// Let the garbage collector have the buffers: no stale record
		// may point at them.
		clear(c.out[:cap(c.out)])
	}
	c.out = c.out[:0]
}

// getInflater returns an inflater to decode one compressed batch, pinned
// until the next Poll.
func (c *Consumer) getInflater() *inflater {
	var inf *inflater
	if n := len(c.free); n > 0 {
		inf = c.free[n-1]
		c.free[n-1] = nil
		c.free = c.free[:n-1]
		c.freeCap -= inf.size
	} else {
		inf = new(inflater)
	}
	inf.live, inf.decoded = true, 0
	c.pinned = append(c.pinned, inf)
	return inf
}

// Poll returns the next records of the assigned partitions: at least one,
// at most MaxPollRecords, waiting for them as long as ctx allows (a done
// ctx makes it return what is there, or ctx.Err()). Within a partition,
// records come in offset order, each once, unless Seek or a reset (see
// ResetPolicy) moves the position; across partitions, each Poll starts
// with the partition after the one the last Poll stopped in, so every
// partition with records gets its turn.
//
// Waiting costs nothing: appends to any assigned partition wake Poll
// through one channel. Poll fails with ErrClosed once the consumer (or its
// broker) is closed, even while it waits; with an error wrapping
// *OffsetOutOfRangeError when ResetNone lets a position fall out of range;
// with ErrUnknownTopic or ErrUnknownPartition (once) when assigned
// partitions were deleted; and with ErrCorruptBatch for a damaged batch.
// An error in one partition holds back no other: a Poll that has records
// returns them, and since positions never move past an error, it comes
// back on a Poll with nothing else to return.
//
// In a group, Poll returns records of the partitions the group assigned,
// except those being assigned (until OnAssigned returns) or revoked. A
// call to Poll tells the consumer that the application is done with the
// records of the previous one: auto-commit and rebalances rely on it (see
// consumer_group.go), so an application must call Poll at least every
// RebalanceTimeout. Once the membership ended for good (a fenced static
// member, a full group, a closed broker), Poll returns its error.
//
// Lifetime: the records, the returned slice and everything they point to
// (Key, Value, Headers and header Values) belong to the consumer and stay
// valid until the next call to Poll (or the iteration of Records that
// calls it) or Close. Key and Value of uncompressed batches alias the
// partition's read-only memory mapping (writing to them crashes the
// program); those of compressed batches alias decompression buffers the
// consumer reuses. Use Record.Clone for records you keep longer or modify.
// This is how Poll stays free of allocations per record.
func (c *Consumer) Poll(ctx context.Context) ([]Record, error) {
	recs, _, err := c.poll(ctx, false)
	return recs, err
}

// poll is Poll, also returning the number of Polls that returned records,
// this one included; iter says a Records loop calls it.
func (c *Consumer) poll(ctx context.Context, iter bool) ([]Record, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, ErrClosed
	}
	c.recycleLocked()
	c.calls++
	if m := c.group; m != nil {
		m.pollBeganLocked()
		defer m.pollEndedLocked()
	}
	for {
		if err := c.refreshLocked(); err != nil {
			return nil, 0, err
		}
		if err := c.pending; err != nil {
			c.pending = nil
			return nil, 0, err
		}
		if m := c.group; m != nil && m.fatal != nil {
			return nil, 0, m.fatal
		}
		if err := c.fillLocked(); err != nil {
			return nil, 0, err
		}
		if len(c.out) > 0 {
			c.polls++
			if iter && c.group != nil {
				c.group.yieldingLocked(c.out, c.polls)
			}
			return c.out, c.polls, nil
		}
		if err := c.waitLocked(ctx); err != nil {
			return nil, 0, err
		}
	}
}

// waitLocked waits, unlocked, for an append to an assigned partition, a
// Seek, the consumer's close, ctx, or (when subscribed) MetadataMaxAge.
func (c *Consumer) waitLocked(ctx context.Context) error {
	var meta <-chan time.Time
	if c.cfg.Topics != nil && c.group == nil {
		c.timer.Reset(c.cfg.MetadataMaxAge)
		meta = c.timer.C
	}
	c.mu.Unlock()
	var err error
	select {
	case <-c.wake:
	case <-meta:
	case <-c.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.mu.Lock()
	if meta != nil {
		c.timer.Stop()
	}
	if c.closed {
		return ErrClosed
	}
	return err
}

// Why fillLocked stopped taking records from a partition.
const (
	moreNone    = iota // the partition has nothing more, or used its budget
	moreRecords        // MaxPollRecords reached
	moreBytes          // MaxPollBytes reached before the partition's next batch
)

// fillLocked appends records to c.out, partition after partition, from
// c.next, within the poll's budgets. A partition's error stops it: the
// error is returned when no record was taken, and otherwise met again by a
// later Poll (positions do not move past errors).
func (c *Consumer) fillLocked() error {
	n := len(c.cursors)
	if n == 0 {
		return nil
	}
	start := c.next % n
	c.next = (start + 1) % n
	pollBytes := 0
	for i := range n {
		k := (start + i) % n
		cur := c.cursors[k]
		if cur.paused {
			continue
		}
		before := len(c.out)
		why, err := c.takeLocked(cur, &pollBytes)
		if len(c.out) > before {
			cur.held = c.calls
		}
		if err != nil {
			c.next = (k + 1) % n
			if len(c.out) > 0 {
				return nil
			}
			return err
		}
		switch why {
		case moreRecords:
			c.next = (k + 1) % n
			return nil
		case moreBytes:
			if len(c.out) == before {
				c.next = k // first next time, when KIP-74 lets its batch through
			} else {
				c.next = (k + 1) % n
			}
			return nil
		}
	}
	return nil
}

// maxResets bounds the position resets of one partition in one Poll, in
// case retention keeps deleting what a reset just moved to.
const maxResets = 3

// takeLocked appends the next records of one partition to c.out.
//
// It never decodes a batch past the partition's end offset, although Read
// may return one: an append makes its batch readable in the segment just
// before it moves the end offset, and a position past the end would read
// as out of range.
func (c *Consumer) takeLocked(cur *cursor, pollBytes *int) (int, error) {
	partBytes, resets, reread := 0, 0, false
	end := cur.p.EndOffset()
	for {
		if cur.it != nil {
			if c.decodeLocked(cur) {
				return moreRecords, nil
			}
			if err := cur.it.Err(); err != nil {
				return moreNone, fmt.Errorf("commitlog: consume %s-%d: %w: batch at offset %d: %w", cur.name, cur.p.id, ErrCorruptBatch, cur.h.BaseOffset, err)
			}
			c.endBatchLocked(cur)
		}
		if len(cur.rest) == 0 {
			c.retireLocked(cur)
			if partBytes >= c.cfg.MaxPartitionBytes {
				return moreNone, nil
			}
			s, err := cur.p.Read(cur.pos, c.cfg.MaxPartitionBytes)
			var oor *OffsetOutOfRangeError
			switch {
			case errors.As(err, &oor):
				if c.cfg.Reset == ResetNone || resets == maxResets {
					return moreNone, fmt.Errorf("commitlog: consume %s-%d: %w", cur.name, cur.p.id, err)
				}
				resets++
				cur.sought, cur.asked = true, -1
				if c.cfg.Reset == ResetLatest {
					cur.pos = oor.End
				} else {
					cur.pos = oor.Start
				}
				continue
			case errors.Is(err, ErrClosed):
				// The topic was deleted: the next refresh drops it.
				return moreNone, nil
			case err != nil:
				return moreNone, fmt.Errorf("commitlog: consume %s-%d: %w", cur.name, cur.p.id, err)
			}
			if len(s.Bytes) == 0 {
				s.Release()
				return moreNone, nil
			}
			cur.slice, cur.rest = s, s.Bytes
		}
		h, err := batch.Check(cur.rest, math.MaxInt)
		if err != nil {
			// Bytes read ahead may have been truncated away since (they
			// read as zeros then): read them again once before calling
			// them corrupt.
			if !reread {
				reread = true
				c.retireLocked(cur)
				continue
			}
			return moreNone, fmt.Errorf("commitlog: consume %s-%d: %w: at offset %d: %w", cur.name, cur.p.id, ErrCorruptBatch, cur.pos, err)
		}
		if h.NextOffset() > end {
			if end = cur.p.EndOffset(); h.NextOffset() > end {
				return moreNone, nil // its append has yet to move the end and wake us
			}
		}
		size := h.Size()
		if h.Control() || h.NextOffset() <= cur.pos {
			cur.rest = cur.rest[size:]
			cur.pos = max(cur.pos, h.NextOffset())
			continue
		}
		if len(c.out) > 0 {
			if *pollBytes+size > c.cfg.MaxPollBytes {
				return moreBytes, nil
			}
			if partBytes > 0 && partBytes+size > c.cfg.MaxPartitionBytes {
				return moreNone, nil
			}
		}
		b := cur.rest[:size]
		cur.rest = cur.rest[size:]
		*pollBytes += size
		partBytes += size
		cur.h = h
		cur.it = &cur.plain
		if h.Codec() != batch.CodecNone {
			cur.inf = c.getInflater()
			cur.it = &cur.inf.it
		}
		if err := cur.it.Reset(b, maxUncompressedBytes); err != nil {
			c.endBatchLocked(cur)
			return moreNone, fmt.Errorf("commitlog: consume %s-%d: %w: batch at offset %d: %w", cur.name, cur.p.id, ErrCorruptBatch, h.BaseOffset, err)
		}
	}
}

// decodeLocked appends the records of the cursor's batch to c.out from its
// position. It returns true when MaxPollRecords stopped it. This is the
// consumer's inner loop: the state it updates lives in locals meanwhile.
func (c *Consumer) decodeLocked(cur *cursor) bool {
	it, inf, out, limit := cur.it, cur.inf, c.out, c.cfg.MaxPollRecords
	name, id, pos := cur.name, cur.p.id, cur.pos
	base, baseTs := cur.h.BaseOffset, cur.h.BaseTimestamp
	appendTime := cur.h.LogAppendTime()
	full := true
	for len(out) < limit {
		r, ok := it.Next()
		if !ok {
			full = false
			break
		}
		if inf != nil {
			inf.decoded += len(r.Key) + len(r.Value)
			inf.size = max(inf.size, inf.decoded)
		}
		off := base + int64(r.OffsetDelta)
		if off < pos {
			continue
		}
		ts := baseTs + r.TimestampDelta
		if appendTime {
			ts = cur.h.MaxTimestamp
		}
		// Filled in place: cheaper than appending a composite literal.
		n := len(out)
		if n < cap(out) {
			out = out[:n+1]
		} else {
			out = append(out, Record{})
		}
		rec := &out[n]
		rec.Topic, rec.Partition, rec.Offset = name, id, off
		rec.Timestamp = time.UnixMilli(ts)
		rec.Key, rec.Value, rec.Headers = r.Key, r.Value, nil
		if len(r.Headers) > 0 {
			from := len(c.hdrs)
			for _, rh := range r.Headers {
				c.hdrs = append(c.hdrs, Header(rh))
			}
			rec.Headers = c.hdrs[from:len(c.hdrs):len(c.hdrs)]
		}
		pos = off + 1
	}
	c.out, cur.pos = out, pos
	return full
}

// Records returns an iterator over the records of successive Polls, until
// ctx is done (the iteration then just ends: check ctx.Err() to tell) or
// Poll fails (the error is yielded, then the iteration ends). A yielded
// Record is valid until the loop moves on to the next one; Clone what you
// keep. Breaking out of the loop leaves each partition positioned after
// the last record yielded from it, unless the loop body moved it with Seek,
// although the Poll behind the loop may have returned more. In a group,
// Commit in the loop body likewise commits up to the record yielded, and
// the loop's next Poll is the one that tells the consumer the records
// before are done with.
func (c *Consumer) Records(ctx context.Context) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for {
			recs, n, err := c.poll(ctx, true)
			if err != nil {
				if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
					yield(Record{}, err)
				}
				return
			}
			if c.group == nil {
				for i := range recs {
					if !yield(recs[i], nil) {
						c.rewind(recs[i+1:], n)
						return
					}
				}
				continue
			}
			// In a group, Commit counts the records yielded so far.
			for i := range recs {
				c.group.yielded.Store(int64(i + 1))
				if !yield(recs[i], nil) {
					c.rewind(recs[i+1:], n)
					return
				}
			}
		}
	}
}

// rewind moves positions back to the first of unyielded records that
// Records took from Poll number n but did not yield, in the partitions no
// Seek moved since.
func (c *Consumer) rewind(unyielded []Record, n uint64) {
	if len(unyielded) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for _, r := range unyielded {
		if cur := c.byTP[topicPartition{r.Topic, r.Partition}]; cur != nil && cur.moved < n && r.Offset < cur.pos {
			c.dropBufferedLocked(cur)
			cur.pos = r.Offset
		}
	}
}

// cursorLocked returns the cursor of an assigned partition.
func (c *Consumer) cursorLocked(topic string, partition int32) (*cursor, error) {
	if c.closed {
		return nil, ErrClosed
	}
	if c.cfg.Topics != nil {
		// Partitions added since the last Poll are already assigned.
		if err := c.refreshLocked(); err != nil {
			return nil, err
		}
	}
	if cur := c.byTP[topicPartition{topic, partition}]; cur != nil {
		return cur, nil
	}
	if _, ok := c.seen[topic]; !ok {
		return nil, fmt.Errorf("%w: %q is not assigned to this consumer", ErrUnknownTopic, topic)
	}
	return nil, fmt.Errorf("%w: partition %d of %s is not assigned to this consumer", ErrUnknownPartition, partition, topic)
}

// seekLocked moves a cursor and wakes a waiting Poll.
func (c *Consumer) seekLocked(cur *cursor, offset int64) {
	c.dropBufferedLocked(cur)
	cur.pos, cur.moved, cur.sought, cur.asked = offset, c.polls, true, -1
	c.wakeup()
}

// wakeup wakes a waiting Poll.
func (c *Consumer) wakeup() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Seek sets the position of an assigned partition: the next record Poll
// returns from it is the one at offset. An offset outside the partition's
// range is accepted, and handled by Poll as Reset says; a negative one
// fails with an error wrapping *OffsetOutOfRangeError. Errors:
// ErrUnknownTopic or ErrUnknownPartition for a partition not assigned,
// ErrClosed.
func (c *Consumer) Seek(topic string, partition int32, offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := c.cursorLocked(topic, partition)
	if err != nil {
		return err
	}
	if offset < 0 {
		oor := &OffsetOutOfRangeError{Offset: offset, Start: cur.p.StartOffset(), End: cur.p.EndOffset()}
		return fmt.Errorf("commitlog: seek %s-%d: %w", topic, partition, oor)
	}
	c.seekLocked(cur, offset)
	return nil
}

// SeekToStart moves the position of an assigned partition to its start
// offset, the oldest record it holds now (Kafka's seekToBeginning).
func (c *Consumer) SeekToStart(topic string, partition int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := c.cursorLocked(topic, partition)
	if err != nil {
		return err
	}
	c.seekLocked(cur, cur.p.StartOffset())
	return nil
}

// SeekToEnd moves the position of an assigned partition to its end offset:
// Poll returns only records appended from now on (Kafka's seekToEnd).
func (c *Consumer) SeekToEnd(topic string, partition int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := c.cursorLocked(topic, partition)
	if err != nil {
		return err
	}
	c.seekLocked(cur, cur.p.EndOffset())
	return nil
}

// SeekToTime moves the position of an assigned partition to the first
// record whose timestamp is at or after ts (Kafka's offsetsForTimes, then
// seek), or to the end offset when every record is older.
func (c *Consumer) SeekToTime(topic string, partition int32, ts time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := c.cursorLocked(topic, partition)
	if err != nil {
		return err
	}
	off, ok, err := cur.p.OffsetForTime(ts)
	if err != nil {
		return fmt.Errorf("commitlog: seek %s-%d to %v: %w", topic, partition, ts, err)
	}
	if !ok {
		off = cur.p.EndOffset()
	}
	c.seekLocked(cur, off)
	return nil
}

// Position returns the position of an assigned partition: the offset of
// the next record Poll returns from it.
func (c *Consumer) Position(topic string, partition int32) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := c.cursorLocked(topic, partition)
	if err != nil {
		return 0, err
	}
	return cur.pos, nil
}

// Assignment returns the assigned partitions, sorted, by topic. With
// Topics, it reflects the partitions found by the last Poll, Seek or
// Position call; in a group, the partitions the group assigned, including
// those being revoked until OnRevoked returned. It is empty once the
// consumer is closed.
func (c *Consumer) Assignment() map[string][]int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.assignmentLocked()
}

func (c *Consumer) assignmentLocked() map[string][]int32 {
	out := map[string][]int32{}
	for _, cur := range c.cursors {
		out[cur.name] = append(out[cur.name], cur.p.id)
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// Close closes the consumer: a Poll waiting returns ErrClosed, so do later
// calls, and the memory the last Poll's records alias is released. A
// member of a group first gives up its partitions (OnRevoked), commits
// under AutoCommit what Poll returned, as Commit does, and leaves the group
// unless it is static (ConsumerConfig.InstanceID); Close must not be called
// from a callback. It is idempotent, and returns the error of that final
// commit (nil without one).
func (c *Consumer) Close() error {
	c.close()
	c.b.unregister(c)
	return c.closeErr
}

// close is Close for the broker, which forgets its clients itself. Its
// commit fails when the broker closes (Broker.Shutdown commits before),
// and it returns nil.
func (c *Consumer) close() error {
	c.once.Do(func() {
		if c.group != nil {
			c.closeErr = c.group.close()
		}
		close(c.done)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.closed = true
		for _, cur := range c.cursors {
			cur.stop()
			c.dropBufferedLocked(cur)
		}
		c.cursors, c.byTP = nil, nil
		c.recycleLocked()
		c.free, c.pinned, c.out, c.hdrs, c.retired = nil, nil, nil, nil, nil
		c.timer.Stop()
	})
	return nil
}

// flush commits, under AutoCommit, what Poll returned, as Close would:
// Broker.Shutdown calls it before closing the broker, when committing is
// no longer possible. Other consumers have nothing to deliver.
func (c *Consumer) flush(ctx context.Context) error {
	if c.group == nil || !c.cfg.AutoCommit {
		return nil
	}
	return c.group.commitAll(ctx)
}

// Clone returns a deep copy of r: Key, Value, Headers and the header
// Values are copied into memory of the copy's own (one allocation for the
// bytes, one for the headers), so it outlives the Poll or iteration step
// that returned r and may be modified. Null stays nil and empty stays
// empty.
func (r Record) Clone() Record {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Value)
	}
	buf := make([]byte, 0, n)
	r.Key = cloneInto(&buf, r.Key)
	r.Value = cloneInto(&buf, r.Value)
	if r.Headers != nil {
		hs := make([]Header, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = Header{Key: h.Key, Value: cloneInto(&buf, h.Value)}
		}
		r.Headers = hs
	}
	return r
}

// cloneInto appends b to *buf, which has room for it, and returns the copy
// with its capacity clipped, or nil for a nil b.
func cloneInto(buf *[]byte, b []byte) []byte {
	if b == nil {
		return nil
	}
	from := len(*buf)
	*buf = append(*buf, b...)
	return (*buf)[from:len(*buf):len(*buf)]
}
