package commitlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog/internal/batch"
)

// Committed offsets and group metadata: the __consumer_offsets topic.
//
// The coordinator keeps every group's committed offsets in memory and
// writes each change, in Kafka's own record format, to the compacted topic
// __consumer_offsets (created on first use with
// Options.OffsetsTopicPartitions partitions); on open it reads the topic
// back. A group's records all go to partition
// abs(javaStringHashCode(group)) % partitions, as Kafka places them, so a
// group's history is one ordered log, and compaction keeps the latest
// record of each key. One commit is one record batch, whatever the number
// of partitions it commits.
//
// Record keys and values (big-endian; string = int16 length + UTF-8;
// nullable string: length -1 for null; bytes = int32 length + bytes). Every
// key starts with an int16 version that says what the record is:
//
//	offset commit key, version 0 or 1 (written: 1)
//	  int16 version | string group | string topic | int32 partition
//	offset commit value, version 0-4 (written: 3)
//	  int16 version | int64 offset | int32 leader epoch (v3+) | string metadata
//	  | int64 commit timestamp ms | int64 expire timestamp ms (v1 only)
//	  (v4 is flexible: compact strings, then tagged fields)
//	group metadata key, version 2
//	  int16 version | string group
//	group metadata value, version 0-4 (written: 3)
//	  int16 version | string protocol type | int32 generation
//	  | nullable string protocol | nullable string leader
//	  | int64 state timestamp ms (v2+) | int32 member count, then per member:
//	    string member id | nullable string instance id (v3+) | string client id
//	    | string client host | int32 rebalance timeout ms (v1+)
//	    | int32 session timeout ms | bytes subscription | bytes assignment
//
// A null value (a tombstone) deletes its key: one committed offset, or a
// group's metadata. Records whose key version is unknown (newer Kafka
// record types, such as KIP-848's) are skipped on load; a known record that
// does not decode fails the open with ErrCorruptLog. The codecs are
// franz-go's kmsg types (OffsetCommitKey/Value, GroupMetadataKey/Value).

const (
	offsetsTopic = "__consumer_offsets"
	// offsetsSegmentBytes is Kafka's offsets.topic.segment.bytes.
	offsetsSegmentBytes = 100 << 20
	// offsetsMaxMessageBytes lets the metadata of a large group, one
	// record, fit in a batch.
	offsetsMaxMessageBytes = 16 << 20

	offsetCommitKeyVersion    = 1
	offsetCommitValueVersion  = 3
	groupMetadataKeyVersion   = 2
	groupMetadataValueVersion = 3
)

// OffsetAndMetadata is a committed offset.
type OffsetAndMetadata struct {
	// Offset is the next offset the group will consume.
	Offset int64
	// LeaderEpoch is the leader epoch of the last record consumed, -1 when
	// unknown (KIP-320).
	LeaderEpoch int32
	// Metadata is the committer's note, at most
	// Options.OffsetMetadataMaxBytes.
	Metadata string
	// CommitTime is when the coordinator stored the commit, to the
	// millisecond; ignored in a CommitRequest.
	CommitTime time.Time
}

// CommitRequest is an OffsetCommit request.
type CommitRequest struct {
	Group string
	// Generation, MemberID and InstanceID identify the committing member
	// of the group's current generation. Generation -1 with no member is a
	// commit from outside group management (an admin tool, or a consumer
	// that assigns itself partitions): allowed while the group has no
	// members, and it creates the group if needed.
	Generation int32
	MemberID   string
	InstanceID string
	// Offsets maps topics to partitions to the offsets to commit.
	Offsets map[string]map[int32]OffsetAndMetadata
}

// PartitionErrors reports the partitions a CommitOffsets or DeleteOffsets
// call failed for; it succeeded for the others. errors.Is matches any of
// its errors, and errors.As finds it.
type PartitionErrors struct {
	Errs map[string]map[int32]error // topic -> partition -> error
}

func (e *PartitionErrors) add(topic string, p int32, err error) {
	if e.Errs == nil {
		e.Errs = map[string]map[int32]error{}
	}
	if e.Errs[topic] == nil {
		e.Errs[topic] = map[int32]error{}
	}
	e.Errs[topic][p] = err
}

func (e *PartitionErrors) has(topic string, p int32) bool {
	_, ok := e.Errs[topic][p]
	return ok
}

// orNil returns e, or nil when it holds no error.
func (e *PartitionErrors) orNil() error {
	if len(e.Errs) == 0 {
		return nil
	}
	return e
}

func (e *PartitionErrors) Error() string {
	var parts []string
	for topic, ps := range e.Errs {
		for p, err := range ps {
			parts = append(parts, fmt.Sprintf("%s/%d: %v", topic, p, err))
		}
	}
	slices.Sort(parts)
	const shown = 3
	msg := fmt.Sprintf("commitlog: %d partitions failed: %s", len(parts), strings.Join(parts[:min(len(parts), shown)], "; "))
	if len(parts) > shown {
		msg += "; ..."
	}
	return msg
}

// Unwrap returns every partition's error.
func (e *PartitionErrors) Unwrap() []error {
	var errs []error
	for _, ps := range e.Errs {
		for _, err := range ps {
			errs = append(errs, err)
		}
	}
	return errs
}

// CommitOffsets stores a group's offsets, as one record batch; under
// SyncGroupCommit it returns once the batch is durable. The offsets are
// visible to FetchOffsets when it returns.
//
// Errors for the whole request (nothing is committed): ErrIllegalGeneration
// (a generation that is over, or a member's commit to a group that does not
// exist), ErrUnknownMemberID, ErrFencedInstanceID, ErrRebalanceInProgress
// (the member joined the next generation but has not synced yet), a closed
// broker, a write error. Errors for single partitions come in a
// *PartitionErrors, the other partitions being committed: ErrUnknownTopic,
// ErrUnknownPartition, ErrOffsetOutOfRange (a negative offset),
// ErrOffsetMetadataTooLarge.
func (gc *GroupCoordinator) CommitOffsets(ctx context.Context, req CommitRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var failed PartitionErrors
	valid := 0
	for topic, parts := range req.Offsets {
		n := int32(-1)
		t, terr := gc.b.Topic(topic)
		if errors.Is(terr, ErrClosed) {
			return errCoordinatorClosed
		}
		if terr == nil {
			n = t.NumPartitions()
		}
		for p, om := range parts {
			var err error
			switch {
			case terr != nil:
				err = terr
			case p < 0 || p >= n:
				err = fmt.Errorf("%w: %s has no partition %d (it has %d)", ErrUnknownPartition, topic, p, n)
			case om.Offset < 0:
				err = fmt.Errorf("%w: commit of negative offset %d", ErrOffsetOutOfRange, om.Offset)
			case len(om.Metadata) > gc.opts.OffsetMetadataMaxBytes:
				err = fmt.Errorf("%w: %d bytes, at most %d", ErrOffsetMetadataTooLarge, len(om.Metadata), gc.opts.OffsetMetadataMaxBytes)
			}
			if err != nil {
				failed.add(topic, p, err)
			} else {
				valid++
			}
		}
	}
	g, err := gc.lockGroup(req.Group, req.Generation < 0 && valid > 0)
	if err != nil {
		return err
	}
	if g == nil {
		if req.Generation < 0 {
			return failed.orNil() // nothing valid to commit
		}
		return fmt.Errorf("%w: %d: group %s does not exist", ErrIllegalGeneration, req.Generation, req.Group)
	}
	if err := g.validateCommitLocked(&req); err != nil {
		g.unlock()
		return err
	}
	if m := g.byID[req.MemberID]; m != nil && (g.state == GroupStable || g.state == GroupPreparingRebalance) {
		gc.armMemberLocked(g, m, m.session) // a commit is a sign of life too
	}
	now := time.UnixMilli(time.Now().UnixMilli())
	a, err := gc.appendLocked(g.id, func(w *recordWriter) {
		for topic, parts := range req.Offsets {
			for p, om := range parts {
				if !failed.has(topic, p) {
					w.addOffset(g.id, topic, p, om, now.UnixMilli())
				}
			}
		}
	})
	if err == nil {
		for topic, parts := range req.Offsets {
			cur := g.offsets[topic]
			for p, om := range parts {
				if failed.has(topic, p) {
					continue
				}
				if cur == nil {
					cur = make(map[int32]OffsetAndMetadata, len(parts))
					g.offsets[topic] = cur
				}
				om.CommitTime = now
				cur[p] = om
			}
		}
	}
	g.unlock()
	if err != nil {
		return fmt.Errorf("commitlog: commit offsets of group %s: %w", req.Group, err)
	}
	if err := a.wait(ctx); err != nil {
		return fmt.Errorf("commitlog: commit offsets of group %s: %w", req.Group, err)
	}
	return failed.orNil()
}

// validateCommitLocked checks who commits, as Kafka does.
func (g *group) validateCommitLocked(req *CommitRequest) error {
	if req.Generation < 0 && g.state == GroupEmpty {
		return nil
	}
	if req.Generation >= 0 || req.MemberID != "" || req.InstanceID != "" {
		if err := g.validateMemberLocked(req.MemberID, req.InstanceID); err != nil {
			return err
		}
		if req.Generation != g.generation {
			return fmt.Errorf("%w: %d, group %s is at generation %d", ErrIllegalGeneration, req.Generation, g.id, g.generation)
		}
	} else {
		return fmt.Errorf("%w: a commit without a member needs group %s empty; it is %v", ErrUnknownMemberID, g.id, g.state)
	}
	if g.state == GroupCompletingRebalance {
		return fmt.Errorf("%w: group %s: sync before committing", ErrRebalanceInProgress, g.id)
	}
	return nil
}

// FetchOffsets returns a group's committed offsets for the partitions
// asked (all of them when partitions is nil). Partitions without a
// committed offset are left out (the Kafka server answers offset -1 for
// them), and a group that does not exist has none.
func (gc *GroupCoordinator) FetchOffsets(ctx context.Context, groupID string, partitions map[string][]int32) (map[string]map[int32]OffsetAndMetadata, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[string]map[int32]OffsetAndMetadata{}
	g, err := gc.lockGroup(groupID, false)
	if err != nil || g == nil {
		return out, err
	}
	defer g.unlock()
	if partitions == nil {
		for topic, parts := range g.offsets {
			if len(parts) > 0 {
				out[topic] = maps.Clone(parts)
			}
		}
		return out, nil
	}
	for topic, ps := range partitions {
		cur := g.offsets[topic]
		for _, p := range ps {
			if om, ok := cur[p]; ok {
				if out[topic] == nil {
					out[topic] = map[int32]OffsetAndMetadata{}
				}
				out[topic][p] = om
			}
		}
	}
	return out, nil
}

// DeleteOffsets deletes a group's committed offsets of the partitions
// given (OffsetDelete, KIP-496). The group must have no members, or be a
// "consumer" group whose members do not subscribe to the topic: those
// partitions fail with ErrGroupSubscribedToTopic in a *PartitionErrors.
// Other errors: ErrGroupIDNotFound, ErrNonEmptyGroup (a group of another
// protocol type with members), a write error. Partitions without a
// committed offset succeed.
func (gc *GroupCoordinator) DeleteOffsets(ctx context.Context, groupID string, partitions map[string][]int32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g, err := gc.lockGroup(groupID, false)
	if err != nil {
		return err
	}
	if g == nil {
		return fmt.Errorf("%w: %s", ErrGroupIDNotFound, groupID)
	}
	if g.state != GroupEmpty && g.protocolType != consumerProtocolType {
		state := g.state
		g.unlock()
		return fmt.Errorf("%w: group %s is %v", ErrNonEmptyGroup, groupID, state)
	}
	var failed PartitionErrors
	var gone []offsetTP
	for topic, ps := range partitions {
		for _, p := range ps {
			switch _, ok := g.offsets[topic][p]; {
			case g.state != GroupEmpty && g.subscribed[topic]:
				failed.add(topic, p, fmt.Errorf("%w: group %s consumes %s", ErrGroupSubscribedToTopic, groupID, topic))
			case ok:
				gone = append(gone, offsetTP{topic, p})
			}
		}
	}
	a, err := gc.appendLocked(g.id, func(w *recordWriter) {
		for _, tp := range gone {
			w.addOffsetTombstone(g.id, tp.topic, tp.partition)
		}
	})
	if err == nil {
		g.forgetOffsetsLocked(gone)
	}
	g.unlock()
	if err != nil {
		return fmt.Errorf("commitlog: delete offsets of group %s: %w", groupID, err)
	}
	if err := a.wait(ctx); err != nil {
		return fmt.Errorf("commitlog: delete offsets of group %s: %w", groupID, err)
	}
	return failed.orNil()
}

// offsetTP names a committed offset of a group.
type offsetTP struct {
	topic     string
	partition int32
}

func (g *group) forgetOffsetsLocked(tps []offsetTP) {
	for _, tp := range tps {
		delete(g.offsets[tp.topic], tp.partition)
		if len(g.offsets[tp.topic]) == 0 {
			delete(g.offsets, tp.topic)
		}
	}
}

// scheduleExpiry arms the next offsets expiry pass.
func (gc *GroupCoordinator) scheduleExpiry() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.closed.Load() {
		return
	}
	gc.expiry = time.AfterFunc(gc.opts.OffsetsRetentionCheckInterval, func() {
		gc.fire(func() {
			gc.expireOffsets(time.Now())
			gc.scheduleExpiry()
		})
	})
}

// expireOffsets removes the offsets that Options.OffsetsRetention expired
// at now, writing tombstones for them, as Kafka does: every offset of a
// group that has had no members for the retention time; for a group that
// never had members (commits from outside group management), each offset
// the retention time after it was committed; for a stable consumer group,
// those of topics it no longer subscribes to, likewise. A group left
// without members or offsets is deleted. It returns how many offsets
// expired.
func (gc *GroupCoordinator) expireOffsets(now time.Time) int {
	expired := 0
	for _, g := range gc.snapshot() {
		g.mu.Lock()
		if g.state == GroupDead {
			g.unlock()
			continue
		}
		var gone []offsetTP
		total := 0
		base := g.expiryBaseLocked()
		for topic, parts := range g.offsets {
			total += len(parts)
			if base == nil || gc.opts.OffsetsRetention < 0 || g.state == GroupStable && g.subscribed[topic] {
				continue
			}
			for p, om := range parts {
				if now.Sub(base(om)) >= gc.opts.OffsetsRetention {
					gone = append(gone, offsetTP{topic, p})
				}
			}
		}
		dead := g.state == GroupEmpty && len(gone) == total && len(g.pending) == 0
		if len(gone) > 0 || dead {
			_, err := gc.appendLocked(g.id, func(w *recordWriter) {
				for _, tp := range gone {
					w.addOffsetTombstone(g.id, tp.topic, tp.partition)
				}
				if dead {
					w.addGroupTombstone(g.id)
				}
			})
			if err == nil {
				expired += len(gone)
				g.forgetOffsetsLocked(gone)
				if dead {
					gc.removeGroupLocked(g)
				}
			}
		}
		g.unlock()
	}
	return expired
}

// expiryBaseLocked returns the time from which a committed offset of g
// ages, or nil when g's offsets do not expire now.
func (g *group) expiryBaseLocked() func(OffsetAndMetadata) time.Time {
	commitTime := func(om OffsetAndMetadata) time.Time { return om.CommitTime }
	switch {
	case g.protocolType == "":
		return commitTime
	case g.state == GroupEmpty:
		emptied := g.stateTime
		return func(om OffsetAndMetadata) time.Time {
			if emptied.IsZero() {
				return om.CommitTime
			}
			return emptied
		}
	case g.state == GroupStable && g.protocolType == consumerProtocolType && g.subscribed != nil:
		return commitTime
	}
	return nil
}

// offsetsPartition returns the partition of __consumer_offsets that holds
// group's records, creating the topic on first use.
func (gc *GroupCoordinator) offsetsPartition(group string) (*Partition, error) {
	t := gc.topic.Load()
	if t == nil {
		var err error
		if t, err = gc.createOffsetsTopic(); err != nil {
			return nil, err
		}
	}
	return t.Partition(partitionFor(group, gc.numParts))
}

func (gc *GroupCoordinator) createOffsetsTopic() (*Topic, error) {
	gc.topicMu.Lock()
	defer gc.topicMu.Unlock()
	if t := gc.topic.Load(); t != nil {
		return t, nil
	}
	t, err := gc.b.CreateTopic(context.Background(), offsetsTopic, TopicConfig{
		Partitions:      gc.opts.OffsetsTopicPartitions,
		CleanupPolicy:   CleanupCompact,
		SegmentBytes:    offsetsSegmentBytes,
		MaxMessageBytes: offsetsMaxMessageBytes,
	})
	if errors.Is(err, ErrTopicExists) {
		t, err = gc.b.Topic(offsetsTopic)
	}
	switch {
	case errors.Is(err, ErrClosed):
		return nil, errCoordinatorClosed
	case err != nil:
		return nil, fmt.Errorf("create %s: %w", offsetsTopic, err)
	}
	gc.numParts = t.NumPartitions()
	gc.topic.Store(t)
	return t, nil
}

// partitionFor returns the partition of __consumer_offsets of a group:
// Kafka's Utils.abs(groupId.hashCode()) % n.
func partitionFor(group string, n int32) int32 {
	h := javaStringHash(group)
	switch {
	case h == math.MinInt32:
		h = 0
	case h < 0:
		h = -h
	}
	return h % n
}

// javaStringHash is Java's String.hashCode: s[0]*31^(n-1) + ... + s[n-1]
// over UTF-16 code units, in wrapping 32-bit arithmetic.
func javaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			h = 31*h + hi
			h = 31*h + lo
			continue
		}
		h = 31*h + r
	}
	return h
}

// recordWriter builds the batch of one write to __consumer_offsets. The
// coordinator pools them.
type recordWriter struct {
	b        batch.Builder
	now      int64 // record timestamp, ms
	key, val []byte
	out      []byte
}

func (w *recordWriter) addOffset(group, topic string, p int32, om OffsetAndMetadata, commitMs int64) {
	k := kmsg.OffsetCommitKey{Version: offsetCommitKeyVersion, Group: group, Topic: topic, Partition: p}
	w.key = k.AppendTo(w.key[:0])
	v := kmsg.OffsetCommitValue{Version: offsetCommitValueVersion, Offset: om.Offset, LeaderEpoch: om.LeaderEpoch, Metadata: om.Metadata, CommitTimestamp: commitMs}
	w.val = v.AppendTo(w.val[:0])
	w.b.Add(w.now, w.key, w.val, nil)
}

func (w *recordWriter) addOffsetTombstone(group, topic string, p int32) {
	k := kmsg.OffsetCommitKey{Version: offsetCommitKeyVersion, Group: group, Topic: topic, Partition: p}
	w.key = k.AppendTo(w.key[:0])
	w.b.Add(w.now, w.key, nil, nil)
}

// addGroup writes g's metadata; assignments, when not nil, replace the
// members' assignments.
func (w *recordWriter) addGroup(g *group, assignments map[string][]byte) {
	k := kmsg.GroupMetadataKey{Version: groupMetadataKeyVersion, Group: g.id}
	w.key = k.AppendTo(w.key[:0])
	v := kmsg.GroupMetadataValue{
		Version:               groupMetadataValueVersion,
		ProtocolType:          g.protocolType,
		Generation:            g.generation,
		Protocol:              nullable(g.protocol),
		Leader:                nullable(g.leader),
		CurrentStateTimestamp: g.stateTime.UnixMilli(),
		Members:               make([]kmsg.GroupMetadataValueMember, len(g.members)),
	}
	for i, m := range g.members {
		a := m.assignment
		if assignments != nil {
			a = assignments[m.id]
		}
		v.Members[i] = kmsg.GroupMetadataValueMember{
			MemberID:               m.id,
			InstanceID:             nullable(m.instanceID),
			ClientID:               m.clientID,
			ClientHost:             m.clientHost,
			RebalanceTimeoutMillis: int32(min(m.rebalance.Milliseconds(), math.MaxInt32)),
			SessionTimeoutMillis:   int32(min(m.session.Milliseconds(), math.MaxInt32)),
			Subscription:           m.metadataFor(g.protocol),
			Assignment:             a,
		}
	}
	w.val = v.AppendTo(w.val[:0])
	w.b.Add(w.now, w.key, w.val, nil)
}

func (w *recordWriter) addGroupTombstone(group string) {
	k := kmsg.GroupMetadataKey{Version: groupMetadataKeyVersion, Group: group}
	w.key = k.AppendTo(w.key[:0])
	w.b.Add(w.now, w.key, nil, nil)
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// appended is a write to __consumer_offsets whose durability can be waited
// for.
type appended struct {
	log  *Log
	next int64
}

// wait returns once the write is durable, under SyncGroupCommit; the other
// policies do not wait for writes.
func (a appended) wait(ctx context.Context) error {
	if a.log == nil || a.log.cfg.SyncPolicy != SyncGroupCommit {
		return nil
	}
	return a.log.WaitDurable(ctx, a.next)
}

// appendLocked writes, as one batch, the records fill adds, to group's
// partition of __consumer_offsets. The caller holds the group's lock, so
// that the log orders the group's writes as the group made them; it waits
// for durability after unlocking.
func (gc *GroupCoordinator) appendLocked(group string, fill func(w *recordWriter)) (appended, error) {
	p, err := gc.offsetsPartition(group)
	if err != nil {
		return appended{}, err
	}
	w := gc.writers.Get().(*recordWriter)
	defer func() {
		if cap(w.out) <= maxPooledBytes && w.b.Size() <= maxPooledBytes && cap(w.val) <= maxPooledBytes {
			gc.writers.Put(w)
		}
	}()
	w.b.Reset(batch.CodecNone)
	w.now = time.Now().UnixMilli()
	fill(w)
	if w.b.Len() == 0 {
		return appended{}, nil
	}
	out, err := w.b.Build(w.out[:0])
	if err != nil {
		return appended{}, err
	}
	w.out = out[:0]
	_, next, err := p.log.write(out)
	if err != nil {
		return appended{}, err
	}
	return appended{log: p.log, next: next}, nil
}

// storeGroupLocked writes g's metadata (with assignments, when not nil,
// in place of the members'). It does not wait for durability: a group
// whose metadata is lost in a crash comes back at its previous generation,
// whose members then fail their heartbeats and join again.
func (gc *GroupCoordinator) storeGroupLocked(g *group, assignments map[string][]byte) error {
	_, err := gc.appendLocked(g.id, func(w *recordWriter) { w.addGroup(g, assignments) })
	if err != nil {
		return fmt.Errorf("commitlog: store metadata of group %s: %w", g.id, err)
	}
	return nil
}

// loadedGroup is what load found of one group.
type loadedGroup struct {
	meta    *kmsg.GroupMetadataValue // nil: none, or deleted
	offsets map[string]map[int32]OffsetAndMetadata
}

// load reads __consumer_offsets back into memory: the latest offsets and
// metadata of every group. Members of stable groups get a full session to
// heartbeat again.
func (gc *GroupCoordinator) load(t *Topic) error {
	all := map[string]*loadedGroup{}
	get := func(id string) *loadedGroup {
		l := all[id]
		if l == nil {
			l = &loadedGroup{offsets: map[string]map[int32]OffsetAndMetadata{}}
			all[id] = l
		}
		return l
	}
	for _, p := range t.Partitions() {
		err := scanPartition(p, func(key, value []byte) error {
			if len(key) < 2 {
				return fmt.Errorf("key of %d bytes", len(key))
			}
			switch version := int16(binary.BigEndian.Uint16(key)); version {
			case 0, 1:
				var k kmsg.OffsetCommitKey
				if err := k.ReadFrom(key); err != nil {
					return fmt.Errorf("offset commit key: %w", err)
				}
				l := get(k.Group)
				if value == nil {
					delete(l.offsets[k.Topic], k.Partition)
					return nil
				}
				var v kmsg.OffsetCommitValue
				if err := v.ReadFrom(value); err != nil {
					return fmt.Errorf("offset commit value of group %s: %w", k.Group, err)
				}
				if v.Version < 3 {
					v.LeaderEpoch = -1
				}
				if l.offsets[k.Topic] == nil {
					l.offsets[k.Topic] = map[int32]OffsetAndMetadata{}
				}
				l.offsets[k.Topic][k.Partition] = OffsetAndMetadata{
					Offset:      v.Offset,
					LeaderEpoch: v.LeaderEpoch,
					Metadata:    v.Metadata,
					CommitTime:  time.UnixMilli(v.CommitTimestamp),
				}
			case 2:
				var k kmsg.GroupMetadataKey
				if err := k.ReadFrom(key); err != nil {
					return fmt.Errorf("group metadata key: %w", err)
				}
				l := get(k.Group)
				if value == nil {
					l.meta = nil
					return nil
				}
				v := new(kmsg.GroupMetadataValue)
				if err := v.ReadFrom(bytes.Clone(value)); err != nil {
					return fmt.Errorf("group metadata value of group %s: %w", k.Group, err)
				}
				l.meta = v
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("partition %d: %w", p.ID(), err)
		}
	}
	for id, l := range all {
		for topic, ps := range l.offsets {
			if len(ps) == 0 {
				delete(l.offsets, topic)
			}
		}
		if l.meta == nil && len(l.offsets) == 0 {
			continue
		}
		g := newGroup(id)
		g.offsets = l.offsets
		g.mu.Lock()
		if l.meta != nil {
			g.restoreLocked(l.meta, gc.opts.GroupMinSessionTimeout)
		}
		for _, m := range g.members {
			gc.armMemberLocked(g, m, m.session)
		}
		g.unlock()
		gc.groups[id] = g
	}
	return nil
}

// restoreLocked sets g from its stored metadata: Stable with its members
// and their assignments, or Empty.
func (g *group) restoreLocked(v *kmsg.GroupMetadataValue, minSession time.Duration) {
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.CurrentStateTimestamp >= 0 {
		g.stateTime = time.UnixMilli(v.CurrentStateTimestamp)
	}
	for _, vm := range v.Members {
		m := &member{
			id:           vm.MemberID,
			clientID:     vm.ClientID,
			clientHost:   vm.ClientHost,
			protocolType: v.ProtocolType,
			protocols:    []GroupProtocol{{Name: g.protocol, Metadata: vm.Subscription}},
			session:      max(time.Duration(vm.SessionTimeoutMillis)*time.Millisecond, minSession),
			assignment:   vm.Assignment,
		}
		m.rebalance = m.session
		if vm.RebalanceTimeoutMillis > 0 {
			m.rebalance = time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond
		}
		if vm.InstanceID != nil {
			m.instanceID = *vm.InstanceID
			g.static[m.instanceID] = m.id
		}
		g.members = append(g.members, m)
		g.byID[m.id] = m
	}
	g.state = GroupEmpty
	if len(g.members) > 0 {
		g.state = GroupStable
		g.leader = g.members[0].id
		if v.Leader != nil && g.byID[*v.Leader] != nil {
			g.leader = *v.Leader
		}
	} else {
		g.protocol = ""
	}
	g.prevState = g.state
	g.subscribed = g.computeSubscribedLocked()
}

// scanPartition calls fn with the key and value of every record of p, in
// order. The slices are valid only during the call.
func scanPartition(p *Partition, fn func(key, value []byte) error) error {
	for off := p.StartOffset(); off < p.EndOffset(); {
		s, err := p.Read(off, 1<<20)
		if err != nil {
			return err
		}
		if len(s.Bytes) == 0 {
			s.Release()
			return nil
		}
		for r, err := range Records(s) {
			if err != nil {
				s.Release()
				return err
			}
			if r.Offset < off {
				continue
			}
			if err := fn(r.Key, r.Value); err != nil {
				s.Release()
				return fmt.Errorf("%w: record at offset %d: %w", ErrCorruptLog, r.Offset, err)
			}
		}
		next := s.NextOffset
		s.Release()
		if next <= off {
			return nil
		}
		off = next
	}
	return nil
}

// forgetTopic removes every group's committed offsets of a deleted topic,
// writing their tombstones, as Kafka does when a topic is deleted: a topic
// created again under the name starts with no committed offsets.
func (gc *GroupCoordinator) forgetTopic(ctx context.Context, topic string) error {
	gc.mu.Lock()
	ids := make([]string, 0, len(gc.groups))
	for id := range gc.groups {
		ids = append(ids, id)
	}
	gc.mu.Unlock()
	var errs []error
	for _, id := range ids {
		g, err := gc.lockGroup(id, false)
		if err != nil || g == nil {
			continue // gone meanwhile, or the coordinator closed
		}
		var gone []offsetTP
		for p := range g.offsets[topic] {
			gone = append(gone, offsetTP{topic, p})
		}
		if len(gone) == 0 {
			g.unlock()
			continue
		}
		a, err := gc.appendLocked(g.id, func(w *recordWriter) {
			for _, tp := range gone {
				w.addOffsetTombstone(g.id, tp.topic, tp.partition)
			}
		})
		if err == nil {
			g.forgetOffsetsLocked(gone)
		}
		g.unlock()
		if err == nil {
			err = a.wait(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
