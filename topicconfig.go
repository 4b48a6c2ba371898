package commitlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/streamkit/commitlog/internal/vfs"
)

// AlterTopicConfig changes the configuration of a topic in use, as Kafka's
// AlterConfigs does for a topic. fn edits a copy of the current
// configuration (defaults filled in); a field it sets to zero takes the
// broker's default again. The result is validated, written to topics.json
// (so it survives restarts) and then applied; AlterTopicConfig returns it.
// An error from fn is returned as it is, and nothing changes.
//
// What changes, and when:
//   - RetentionTime, RetentionBytes: at the next retention run
//     (Options.RetentionCheckInterval, or EnforceRetention).
//   - CleanupPolicy, MinCleanableDirtyRatio, DeleteRetention: at the next
//     cleaner run (Options.CleanerBackoff, or CompactTopics).
//   - SegmentBytes, SegmentAge: at the next append, which rolls the active
//     segment if it is now too large or too old.
//   - MaxMessageBytes: at the next append. In-process Producers created
//     before the change keep the batch size limit they started with.
//   - TimestampType: at the next append.
//
// Partitions and ReplicationFactor cannot change here (see AddPartitions),
// and MinInsyncReplicas cannot exceed the replication factor; these fail
// with ErrInvalidConfig. On a broker of a cluster the change goes through
// the controller to every broker.
func (b *Broker) AlterTopicConfig(ctx context.Context, name string, fn func(*TopicConfig) error) (TopicConfig, error) {
	return b.alterTopicConfig(ctx, name, fn, alterEverywhere)
}

// alterMode says how far alterTopicConfig goes.
type alterMode int

const (
	alterEverywhere alterMode = iota // here, and through the controller on every broker of a cluster
	alterHere                        // here only: the controller's change reaching this broker
	alterValidate                    // nowhere: validate only
)

// ValidateTopicConfigChange checks a change as AlterTopicConfig would and
// returns the configuration it would set, without changing anything
// (Kafka's validateOnly).
func (b *Broker) ValidateTopicConfigChange(ctx context.Context, name string, fn func(*TopicConfig) error) (TopicConfig, error) {
	return b.alterTopicConfig(ctx, name, fn, alterValidate)
}

func (b *Broker) alterTopicConfig(ctx context.Context, name string, fn func(*TopicConfig) error, mode alterMode) (TopicConfig, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.topicForAdminLocked(ctx, name)
	if err != nil {
		return TopicConfig{}, err
	}
	cur := t.Config()
	next := cur
	if err := fn(&next); err != nil {
		return TopicConfig{}, err
	}
	next = next.withDefaults(&b.opts)
	if err := next.validate(); err != nil {
		return TopicConfig{}, err
	}
	if err := t.checkLiveChange(&cur, &next); err != nil {
		return TopicConfig{}, err
	}
	if mode == alterValidate || next == cur {
		return next, nil
	}
	if mode == alterEverywhere && b.cluster != nil && !IsInternalTopic(name) {
		// Every broker of the cluster gets it from the controller (this
		// one too, again, as a no-op); it applies here at once.
		if err := b.cluster.alterTopicConfig(ctx, name, cur, next); err != nil {
			return TopicConfig{}, fmt.Errorf("commitlog: alter config of topic %s: %w", name, err)
		}
	}
	if err := b.saveTopicsWithLocked(t, &next); err != nil {
		return TopicConfig{}, fmt.Errorf("commitlog: alter config of topic %s: %w", name, err)
	}
	t.live.Store(&next)
	var errs []error
	for _, p := range t.held() {
		if err := p.log.setConfig(next.logConfig(&b.opts)); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return next, fmt.Errorf("commitlog: alter config of topic %s: %w", name, err)
	}
	return next, nil
}

// checkLiveChange refuses the changes of an open topic's configuration
// that AlterTopicConfig does not make.
func (t *Topic) checkLiveChange(cur, next *TopicConfig) error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: TopicConfig.%s %v: %s", ErrInvalidConfig, field, v, why)
	}
	switch {
	case next.Partitions != cur.Partitions:
		return bad("Partitions", next.Partitions, fmt.Sprintf("the topic has %d; AddPartitions adds partitions", cur.Partitions))
	case next.ReplicationFactor != cur.ReplicationFactor:
		return bad("ReplicationFactor", next.ReplicationFactor, "cannot change")
	}
	return nil
}

// saveTopicsWithLocked writes topics.json atomically, with cfg as the
// configuration of t.
func (b *Broker) saveTopicsWithLocked(t *Topic, cfg *TopicConfig) error {
	records := make([]topicRecord, 0, len(b.topics))
	for _, x := range b.topics {
		r := topicRecord{Name: x.name, Config: x.Config()}
		if x == t {
			r.Config = *cfg
		}
		records = append(records, r)
	}
	slices.SortFunc(records, func(a, b topicRecord) int { return strings.Compare(a.Name, b.Name) })
	data, err := json.MarshalIndent(records, "", "  ")
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(b.fs, filepath.Join(b.dir, topicsFile), data, 0o644)
}
