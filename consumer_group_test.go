package commitlog

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// The group tests run in testing/synctest bubbles: heartbeats, session and
// rebalance timeouts run on the bubble's clock, which moves only when
// every goroutine is blocked, so a test that waits for a rebalance waits
// no real time. They wait on channels fed by the consumers' callbacks and
// on synctest.Wait; a time.Sleep in a bubble only moves that clock.

// groupTestTimeout bounds, in the bubble's time, every wait of these tests
// for a group to settle: a hang fails instead.
const groupTestTimeout = time.Hour

// ownerTracker follows, through the callbacks of the consumers it configures,
// which consumer owns each partition, and fails the test when a partition
// is assigned to a consumer while another still owns it.
type ownerTracker struct {
	t       testing.TB
	mu      sync.Mutex
	owner   map[topicPartition]string
	owned   map[string]map[topicPartition]bool
	revoked map[string][]topicPartition // every revocation, per consumer
	lost    map[string][]topicPartition
	changed chan struct{} // buffered (1): a callback ran
}

func newOwnerTracker(t testing.TB) *ownerTracker {
	return &ownerTracker{
		t:       t,
		owner:   map[topicPartition]string{},
		owned:   map[string]map[topicPartition]bool{},
		revoked: map[string][]topicPartition{},
		lost:    map[string][]topicPartition{},
		changed: make(chan struct{}, 1),
	}
}

// config returns cfg with callbacks that record name's ownership.
func (o *ownerTracker) config(name string, cfg ConsumerConfig) ConsumerConfig {
	cfg.OnAssigned = func(_ context.Context, parts map[string][]int32) {
		o.update(func() {
			if o.owned[name] == nil {
				o.owned[name] = map[topicPartition]bool{}
			}
			for tp := range eachPartition(parts) {
				if prev, ok := o.owner[tp]; ok {
					o.t.Errorf("%s-%d assigned to %s while %s owns it", tp.topic, tp.partition, name, prev)
				}
				o.owner[tp] = name
				o.owned[name][tp] = true
			}
		})
	}
	give := func(record map[string][]topicPartition) func(context.Context, map[string][]int32) {
		return func(_ context.Context, parts map[string][]int32) {
			o.update(func() {
				for tp := range eachPartition(parts) {
					if o.owner[tp] != name {
						o.t.Errorf("%s-%d taken from %s, owned by %q", tp.topic, tp.partition, name, o.owner[tp])
					}
					delete(o.owner, tp)
					delete(o.owned[name], tp)
					record[name] = append(record[name], tp)
				}
			})
		}
	}
	cfg.OnRevoked = give(o.revoked)
	cfg.OnLost = give(o.lost)
	return cfg
}

func (o *ownerTracker) update(fn func()) {
	o.mu.Lock()
	fn()
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

func eachPartition(parts map[string][]int32) map[topicPartition]bool {
	out := map[topicPartition]bool{}
	for topic, ids := range parts {
		for _, id := range ids {
			out[topicPartition{topic, id}] = true
		}
	}
	return out
}

// balanced reports whether group is stable with exactly members, each
// holding, by its callbacks, what the coordinator assigned it, and the n
// partitions of the topic assigned once in all.
func (o *ownerTracker) balanced(b *Broker, group string, members map[string]*Consumer, n int) bool {
	d, err := b.Groups().DescribeGroup(group)
	if err != nil || d.State != GroupStable || len(d.Members) != len(members) {
		return false
	}
	byID := map[string]map[topicPartition]bool{}
	for _, dm := range d.Members {
		a, err := DecodeAssignment(dm.Assignment)
		require.NoError(o.t, err)
		byID[dm.MemberID] = eachPartition(a.Partitions)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	total := 0
	for name, c := range members {
		want, ok := byID[groupTestMemberID(c)]
		if !ok || !maps.Equal(want, o.owned[name]) {
			return false
		}
		total += len(want)
	}
	return total == n && len(o.owner) == n
}

// waitBalanced waits until balanced holds.
func (o *ownerTracker) waitBalanced(b *Broker, group string, members map[string]*Consumer, n int) {
	o.t.Helper()
	o.waitUntil(func() bool { return o.balanced(b, group, members, n) }, "group %s balanced over %d consumers", group, len(members))
}

// waitUntil waits, as long as callbacks run, until cond holds.
func (o *ownerTracker) waitUntil(cond func() bool, what string, args ...any) {
	o.t.Helper()
	timeout := time.After(groupTestTimeout)
	for !cond() {
		select {
		case <-o.changed:
		case <-timeout:
			o.mu.Lock()
			defer o.mu.Unlock()
			o.t.Fatalf("not %s after %v: ownerTracker %v", fmt.Sprintf(what, args...), groupTestTimeout, o.owner)
		}
	}
}

// ownedBy returns the partitions name owns, sorted.
func (o *ownerTracker) ownedBy(name string) []int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []int32
	for tp := range o.owned[name] {
		out = append(out, tp.partition)
	}
	slices.Sort(out)
	return out
}

func groupTestMemberID(c *Consumer) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.group.memberID
}

// seenRecords counts the records the readers processed, per partition and
// offset, checking their values.
type seenRecords struct {
	t       testing.TB
	mu      sync.Mutex
	count   map[topicPartition]map[int64]int
	changed chan struct{} // buffered (1)
}

func newSeenRecords(t testing.TB) *seenRecords {
	return &seenRecords{t: t, count: map[topicPartition]map[int64]int{}, changed: make(chan struct{}, 1)}
}

func (s *seenRecords) add(recs []Record) {
	s.mu.Lock()
	for _, r := range recs {
		if want := string(consumerTestValue(r.Partition, int(r.Offset))); string(r.Value) != want {
			s.t.Errorf("%s-%d@%d: value %q, want %q", r.Topic, r.Partition, r.Offset, r.Value, want)
		}
		tp := topicPartition{r.Topic, r.Partition}
		if s.count[tp] == nil {
			s.count[tp] = map[int64]int{}
		}
		s.count[tp][r.Offset]++
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// missing returns, per partition of topic, the first offset below end
// not seen, for the partitions that have one.
func (s *seenRecords) missing(topic string, end map[int32]int64) map[int32]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int32]int64{}
	for p, e := range end {
		for off := range e {
			if s.count[topicPartition{topic, p}][off] == 0 {
				out[p] = off
				break
			}
		}
	}
	return out
}

// waitAll waits until every record below end was seen.
func (s *seenRecords) waitAll(topic string, end map[int32]int64) {
	s.t.Helper()
	s.waitUntil(func() bool { return len(s.missing(topic, end)) == 0 }, func() string {
		return fmt.Sprintf("records never processed, first per partition: %v", s.missing(topic, end))
	})
}

// waitUntil waits, as long as records come, until cond holds.
func (s *seenRecords) waitUntil(cond func() bool, why func() string) {
	s.t.Helper()
	timeout := time.After(groupTestTimeout)
	for !cond() {
		select {
		case <-s.changed:
		case <-timeout:
			s.t.Fatal(why())
		}
	}
}

// seenOffsets returns the offsets of a partition seen, sorted.
func (s *seenRecords) seenOffsets(topic string, p int32) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.count[topicPartition{topic, p}]))
}

// duplicates counts the records processed more than once.
func (s *seenRecords) duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, offs := range s.count {
		for _, k := range offs {
			n += k - 1
		}
	}
	return n
}

// groupTestReader is an application's poll loop: it processes the records
// of each Poll (into seen), then commits them.
type groupTestReader struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startReader(c *Consumer, seen *seenRecords) *groupTestReader {
	ctx, cancel := context.WithCancel(context.Background())
	r := &groupTestReader{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			recs, err := c.Poll(ctx)
			if err != nil {
				return
			}
			seen.add(recs)
			// A commit refused during a rebalance leaves the records to
			// be consumed again: at least once.
			_ = c.Commit(ctx)
		}
	}()
	return r
}

// stop ends the loop between two Polls.
func (r *groupTestReader) stop() {
	r.cancel()
	<-r.done
}

// groupTestFill appends n records to every partition of topic.
func groupTestFill(t testing.TB, b *Broker, topic string, n int) map[int32]int64 {
	t.Helper()
	tp, err := b.Topic(topic)
	require.NoError(t, err)
	end := map[int32]int64{}
	for i := range tp.NumPartitions() {
		p := consumerTestPartition(t, tp, i)
		consumerTestFill(t, p, n, 7)
		end[i] = p.EndOffset()
	}
	return end
}

func groupTestConsumer(t testing.TB, b *Broker, cfg ConsumerConfig) *Consumer {
	t.Helper()
	if cfg.Group == "" {
		cfg.Group = "g"
	}
	if cfg.Topics == nil && cfg.Partitions == nil {
		cfg.Topics = []string{"events"}
	}
	c, err := b.NewConsumer(cfg)
	require.NoError(t, err)
	return c
}

func TestConsumerGroupConfig(t *testing.T) {
	b := groupTestBroker(t, t.TempDir(), Options{}, 2)
	defer b.Close()
	topics := []string{"events"}
	for _, tc := range []struct {
		name string
		cfg  ConsumerConfig
		msg  string
	}{
		{"instance without group", ConsumerConfig{Topics: topics, InstanceID: "a"}, "InstanceID is set without a Group"},
		{"callback without group", ConsumerConfig{Topics: topics, OnRevoked: func(context.Context, map[string][]int32) {}}, "OnRevoked is set without a Group"},
		{"auto-commit without group", ConsumerConfig{Topics: topics, AutoCommit: true}, "AutoCommit needs a Group"},
		{"membership with partitions", ConsumerConfig{Group: "g", Partitions: map[string][]int32{"events": {0}}, SessionTimeout: time.Minute}, "with Partitions the consumer does not join"},
		{"negative session", ConsumerConfig{Group: "g", Topics: topics, SessionTimeout: -1}, "SessionTimeout -1ns is negative"},
		{"negative rebalance", ConsumerConfig{Group: "g", Topics: topics, RebalanceTimeout: -1}, "RebalanceTimeout"},
		{"negative heartbeat", ConsumerConfig{Group: "g", Topics: topics, HeartbeatInterval: -1}, "HeartbeatInterval"},
		{"negative auto-commit", ConsumerConfig{Group: "g", Topics: topics, AutoCommitInterval: -1}, "AutoCommitInterval"},
		{"no assignor", ConsumerConfig{Group: "g", Topics: topics, Assignors: []Assignor{}}, "lists no assignor"},
		{"nil assignor", ConsumerConfig{Group: "g", Topics: topics, Assignors: []Assignor{nil}}, "Assignors[0] is nil"},
		{"assignor twice", ConsumerConfig{Group: "g", Topics: topics, Assignors: []Assignor{RangeAssignor{}, RangeAssignor{}}}, `names "range" twice`},
		{"session below broker's", ConsumerConfig{Group: "g", Topics: topics, SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond}, "outside the broker's"},
		{"heartbeat not below session", ConsumerConfig{Group: "g", Topics: topics, SessionTimeout: 10 * time.Second, HeartbeatInterval: 10 * time.Second}, "must be below SessionTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := b.NewConsumer(tc.cfg)
			require.Nil(t, c)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tc.msg)
		})
	}

	// Defaults, Kafka's; the caller's Assignors slice is not kept.
	assignors := []Assignor{CooperativeStickyAssignor{}}
	c, err := b.NewConsumer(ConsumerConfig{Group: "g", Topics: topics, Assignors: assignors})
	require.NoError(t, err)
	assignors[0] = RangeAssignor{}
	require.Equal(t, []Assignor{CooperativeStickyAssignor{}}, c.cfg.Assignors)
	require.True(t, c.group.cooperative)
	require.Equal(t, 45*time.Second, c.cfg.SessionTimeout)
	require.Equal(t, 5*time.Minute, c.cfg.RebalanceTimeout)
	require.Equal(t, 3*time.Second, c.cfg.HeartbeatInterval)
	require.Equal(t, 5*time.Second, c.cfg.AutoCommitInterval)
	require.False(t, c.cfg.AutoCommit)
	require.NoError(t, c.Close())
	c, err = b.NewConsumer(ConsumerConfig{Group: "g", Topics: topics})
	require.NoError(t, err)
	require.Equal(t, []Assignor{RangeAssignor{}, CooperativeStickyAssignor{}}, c.cfg.Assignors)
	require.False(t, c.group.cooperative, "range among the assignors: eager")
	require.NoError(t, c.Close())
}

// TestConsumerGroupTwoMembers checks that two consumers split a topic's
// partitions and, between them, read every record once.
func TestConsumerGroupTwoMembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 4)
		defer b.Close()
		end := groupTestFill(t, b, "events", 30)
		o := newOwnerTracker(t)
		members := map[string]*Consumer{
			"a": groupTestConsumer(t, b, o.config("a", ConsumerConfig{})),
			"b": groupTestConsumer(t, b, o.config("b", ConsumerConfig{})),
		}
		o.waitBalanced(b, "g", members, 4)
		require.Len(t, o.ownedBy("a"), 2)
		require.Len(t, o.ownedBy("b"), 2)
		for name, c := range members {
			require.Equal(t, map[string][]int32{"events": o.ownedBy(name)}, c.Assignment())
		}

		seen := newSeenRecords(t)
		for name, c := range members {
			recs := consumerTestPoll(t, c, 60)
			for _, r := range recs {
				require.Contains(t, o.ownedBy(name), r.Partition)
			}
			seen.add(recs)
			require.NoError(t, c.Commit(context.Background()))
		}
		require.Empty(t, seen.missing("events", end))
		require.Zero(t, seen.duplicates())
		committed, err := members["a"].Committed(context.Background(), nil)
		require.NoError(t, err)
		require.Len(t, committed["events"], 4)
		for p, om := range committed["events"] {
			require.Equal(t, end[p], om.Offset)
			require.Equal(t, int32(-1), om.LeaderEpoch)
		}
		for _, c := range members {
			require.NoError(t, c.Close())
		}
		d, err := b.Groups().DescribeGroup("g")
		require.NoError(t, err)
		require.Equal(t, GroupEmpty, d.State, "dynamic members leave on Close")
	})
}

// TestConsumerGroupScale grows a group from 1 to 4 consumers and shrinks
// it to 2 while records keep coming, each consumer committing after it
// processed a Poll's records. After every rebalance each partition has
// one owner, and in the end every record was processed at least once.
func TestConsumerGroupScale(t *testing.T) {
	for _, tc := range []struct {
		name      string
		assignors []Assignor
	}{
		{"eager", nil},
		{"cooperative", []Assignor{CooperativeStickyAssignor{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const parts = 8
				b := groupTestBroker(t, t.TempDir(), Options{}, parts)
				defer b.Close()
				o := newOwnerTracker(t)
				seen := newSeenRecords(t)
				members := map[string]*Consumer{}
				readers := map[string]*groupTestReader{}
				add := func(name string) {
					c := groupTestConsumer(t, b, o.config(name, ConsumerConfig{Assignors: tc.assignors, MaxPollRecords: 10}))
					members[name], readers[name] = c, startReader(c, seen)
				}
				remove := func(name string) {
					readers[name].stop()
					require.NoError(t, members[name].Close())
					delete(members, name)
				}

				groupTestFill(t, b, "events", 40)
				add("c0")
				o.waitBalanced(b, "g", members, parts)
				require.Len(t, o.ownedBy("c0"), parts)

				groupTestFill(t, b, "events", 40)
				for _, name := range []string{"c1", "c2", "c3"} {
					add(name)
				}
				groupTestFill(t, b, "events", 40)
				o.waitBalanced(b, "g", members, parts)
				for name := range members {
					require.Len(t, o.ownedBy(name), 2, name)
				}

				groupTestFill(t, b, "events", 40)
				remove("c3")
				remove("c1")
				end := groupTestFill(t, b, "events", 40)
				o.waitBalanced(b, "g", members, parts)
				for name := range members {
					require.Len(t, o.ownedBy(name), 4, name)
				}

				seen.waitAll("events", end)
				t.Logf("%d records processed twice", seen.duplicates())
				for name := range members {
					remove(name)
				}
			})
		})
	}
}

// TestConsumerGroupSessionExpiry checks that a member that stops
// heartbeating without leaving (a static member closing: its process
// died) is removed after its session timeout, and its partitions go to
// the others.
func TestConsumerGroupSessionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 4)
		defer b.Close()
		o := newOwnerTracker(t)
		const session = 10 * time.Second
		members := map[string]*Consumer{
			"static":  groupTestConsumer(t, b, o.config("static", ConsumerConfig{InstanceID: "static-1", SessionTimeout: session})),
			"dynamic": groupTestConsumer(t, b, o.config("dynamic", ConsumerConfig{SessionTimeout: session})),
		}
		o.waitBalanced(b, "g", members, 4)

		gone := time.Now()
		require.NoError(t, members["static"].Close())
		delete(members, "static")
		d, err := b.Groups().DescribeGroup("g")
		require.NoError(t, err)
		require.Len(t, d.Members, 2, "a static member does not leave")

		o.waitBalanced(b, "g", members, 4)
		require.GreaterOrEqual(t, time.Since(gone), session)
		require.Equal(t, []int32{0, 1, 2, 3}, o.ownedBy("dynamic"))
		require.NoError(t, members["dynamic"].Close())
	})
}

// TestConsumerGroupCooperativeSticky checks that with cooperative-sticky
// a new member gets its share from the others, who give up only what
// moves and keep consuming the rest.
func TestConsumerGroupCooperativeSticky(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 6)
		defer b.Close()
		o := newOwnerTracker(t)
		cfg := ConsumerConfig{Assignors: []Assignor{CooperativeStickyAssignor{}}}
		members := map[string]*Consumer{"a": groupTestConsumer(t, b, o.config("a", cfg))}
		o.waitBalanced(b, "g", members, 6)
		members["b"] = groupTestConsumer(t, b, o.config("b", cfg))
		o.waitBalanced(b, "g", members, 6)
		before := map[string][]int32{"a": o.ownedBy("a"), "b": o.ownedBy("b")}
		require.Len(t, before["a"], 3)
		require.Len(t, o.revoked["a"], 3, "the first member gave the second its three, no more")
		revoked := map[string]int{"a": 3, "b": 0}

		members["c"] = groupTestConsumer(t, b, o.config("c", cfg))
		o.waitBalanced(b, "g", members, 6)
		for _, name := range []string{"a", "b"} {
			require.Len(t, o.revoked[name], revoked[name]+1, "%s gives up one partition, no more", name)
			require.Subset(t, before[name], o.ownedBy(name), "%s keeps the rest", name)
			require.Len(t, o.ownedBy(name), 2)
		}
		require.Len(t, o.ownedBy("c"), 2)
		require.Empty(t, o.lost)
		for _, c := range members {
			require.NoError(t, c.Close())
		}
	})
}

// TestConsumerGroupEagerRevokesAll is the eager counterpart: every member
// gives up everything at each rebalance.
func TestConsumerGroupEagerRevokesAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 6)
		defer b.Close()
		o := newOwnerTracker(t)
		members := map[string]*Consumer{"a": groupTestConsumer(t, b, o.config("a", ConsumerConfig{}))}
		o.waitBalanced(b, "g", members, 6)
		members["b"] = groupTestConsumer(t, b, o.config("b", ConsumerConfig{}))
		o.waitBalanced(b, "g", members, 6)
		require.Len(t, o.revoked["a"], 6)
		for _, c := range members {
			require.NoError(t, c.Close())
		}
	})
}

// TestConsumerGroupRestart checks that committed offsets survive a broker
// restart and that a new consumer of the group resumes from them.
func TestConsumerGroupRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		b := groupTestBroker(t, dir, Options{}, 2)
		groupTestFill(t, b, "events", 10)
		c := groupTestConsumer(t, b, ConsumerConfig{MaxPollRecords: 3})
		recs := consumerTestPoll(t, c, 3)
		require.NoError(t, c.Commit(context.Background()))
		committed, err := c.Committed(context.Background(), map[string][]int32{"events": {0, 1}})
		require.NoError(t, err)
		require.Len(t, committed["events"], 2)
		require.NoError(t, c.Close())
		require.NoError(t, b.Close())

		b = groupTestBroker(t, dir, Options{}, 0)
		defer b.Close()
		c = groupTestConsumer(t, b, ConsumerConfig{})
		again, err := c.Committed(context.Background(), nil)
		require.NoError(t, err)
		for p, om := range committed["events"] {
			require.Equal(t, om.Offset, again["events"][p].Offset, "partition %d", p)
		}
		want := map[int32]int64{0: committed["events"][0].Offset, 1: committed["events"][1].Offset}
		require.Equal(t, int64(3), want[recs[0].Partition], "the three records polled came from one partition")
		consumerTestCheck(t, "events", consumerTestPoll(t, c, 20-3), want)
		require.NoError(t, c.Close())
	})
}

// TestConsumerGroupManyGroups checks that groups reading one topic are
// independent: each gets every record.
func TestConsumerGroupManyGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 3)
		defer b.Close()
		end := groupTestFill(t, b, "events", 20)
		var consumers []*Consumer
		var seen []*seenRecords
		var readers []*groupTestReader
		for g := range 3 {
			s := newSeenRecords(t)
			seen = append(seen, s)
			for range 2 {
				c := groupTestConsumer(t, b, ConsumerConfig{Group: fmt.Sprintf("group-%d", g), MaxPollRecords: 7})
				consumers = append(consumers, c)
				readers = append(readers, startReader(c, s))
			}
		}
		for _, s := range seen {
			s.waitAll("events", end)
		}
		for i, r := range readers {
			r.stop()
			require.NoError(t, consumers[i].Close())
		}
		for g := range 3 {
			committed, err := b.Groups().FetchOffsets(context.Background(), fmt.Sprintf("group-%d", g), nil)
			require.NoError(t, err)
			for p, off := range end {
				require.LessOrEqual(t, committed["events"][p].Offset, off)
			}
		}
		listed := b.Groups().ListGroups()
		require.Len(t, listed, 3)
	})
}

// TestConsumerGroupIdleMember checks that a fifth consumer on four
// partitions gets none, and waits.
func TestConsumerGroupIdleMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 4)
		defer b.Close()
		groupTestFill(t, b, "events", 5)
		o := newOwnerTracker(t)
		members := map[string]*Consumer{}
		for i := range 5 {
			name := fmt.Sprintf("c%d", i)
			members[name] = groupTestConsumer(t, b, o.config(name, ConsumerConfig{}))
		}
		o.waitBalanced(b, "g", members, 4)
		idle := 0
		for name, c := range members {
			switch len(o.ownedBy(name)) {
			case 0:
				idle++
				require.Empty(t, c.Assignment())
				consumerTestNothing(t, c)
				require.NoError(t, c.Commit(context.Background()), "nothing to commit")
			case 1:
			default:
				t.Fatalf("%s owns %v", name, o.ownedBy(name))
			}
		}
		require.Equal(t, 1, idle)
		for _, c := range members {
			require.NoError(t, c.Close())
		}
	})
}

// TestConsumerGroupRevocationWaitsForPoll checks the delivery promise of a
// rebalance in the middle of a batch. The first consumer holds a Poll's
// records when a second one joins: its partitions are revoked once it
// calls Poll again, after AutoCommit committed everything it was given,
// so that nothing is delivered twice.
func TestConsumerGroupRevocationWaitsForPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 1)
		defer b.Close()
		end := groupTestFill(t, b, "events", 10)
		o := newOwnerTracker(t)
		// Static members sort by instance id: the newcomer "a" gets the
		// only partition.
		cfg := ConsumerConfig{InstanceID: "z", AutoCommit: true, AutoCommitInterval: time.Hour, MaxPollRecords: 5}
		members := map[string]*Consumer{"old": groupTestConsumer(t, b, o.config("old", cfg))}
		o.waitBalanced(b, "g", members, 1)
		old := members["old"]
		consumerTestPoll(t, old, 5)
		require.NoError(t, old.Commit(context.Background()))
		held := consumerTestPoll(t, old, 5) // offsets 5 to 9, processing

		cfg.InstanceID = "a"
		members["new"] = groupTestConsumer(t, b, o.config("new", cfg))
		time.Sleep(time.Minute) // the old member's heartbeat reports the rebalance
		synctest.Wait()
		require.Empty(t, o.revoked, "the revocation waits for the records held")
		pos, err := old.Position("events", 0)
		require.NoError(t, err)
		require.Equal(t, end[0], pos)

		// Done with them: the next Poll lets the rebalance go on.
		polled := make(chan error, 1)
		go func() {
			_, err := old.Poll(context.Background())
			polled <- err
		}()
		o.waitBalanced(b, "g", members, 1)
		require.Equal(t, []int32{0}, o.ownedBy("new"))
		committed, err := old.Committed(context.Background(), nil)
		require.NoError(t, err)
		require.Equal(t, end[0], committed["events"][0].Offset, "what the old member got was committed")

		groupTestFill(t, b, "events", 1)
		recs := consumerTestPoll(t, members["new"], 1)
		require.Equal(t, held[4].Offset+1, recs[0].Offset, "nothing delivered twice")
		require.NoError(t, old.Close())
		require.ErrorIs(t, <-polled, ErrClosed)
		require.NoError(t, members["new"].Close())
	})
}

// TestConsumerGroupRedeliveryAfterPollTimeout is the other side: a member
// that holds a Poll's records and does not call Poll again within
// RebalanceTimeout loses its partitions without committing, and the next
// owner gets those records again, from the last commit.
func TestConsumerGroupRedeliveryAfterPollTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 1)
		defer b.Close()
		end := groupTestFill(t, b, "events", 10)
		o := newOwnerTracker(t)
		const rebalance = time.Minute
		cfg := ConsumerConfig{InstanceID: "z", AutoCommit: true, RebalanceTimeout: rebalance, SessionTimeout: 10 * time.Second, MaxPollRecords: 5}
		members := map[string]*Consumer{"stuck": groupTestConsumer(t, b, o.config("stuck", cfg))}
		o.waitBalanced(b, "g", members, 1)
		stuck := members["stuck"]
		consumerTestPoll(t, stuck, 5)
		require.NoError(t, stuck.Commit(context.Background()))
		lastPoll := time.Now()
		consumerTestPoll(t, stuck, 5) // offsets 5 to 9, and then it hangs
		time.Sleep(10 * time.Second)

		cfg.InstanceID = "a"
		fresh := groupTestConsumer(t, b, o.config("fresh", cfg))
		seen := newSeenRecords(t)
		reader := startReader(fresh, seen)
		delete(members, "stuck")
		members["fresh"] = fresh
		o.waitBalanced(b, "g", members, 1)
		require.GreaterOrEqual(t, time.Since(lastPoll), rebalance)
		require.Equal(t, []topicPartition{{"events", 0}}, o.lost["stuck"])
		require.Empty(t, o.revoked["stuck"])
		want := []int64{5, 6, 7, 8, 9} // held by the stuck member, not committed
		seen.waitUntil(func() bool { return len(seen.seenOffsets("events", 0)) >= len(want) }, func() string { return "records not delivered again" })
		require.Equal(t, want, seen.seenOffsets("events", 0), "delivered again from the last commit, and no earlier")
		require.Equal(t, end[0], want[len(want)-1]+1)

		// At its next Poll the stuck member joins again, and gets nothing:
		// there is one partition.
		members["stuck"] = stuck
		polled := make(chan error, 1)
		go func() {
			_, err := stuck.Poll(context.Background())
			polled <- err
		}()
		o.waitBalanced(b, "g", members, 1)
		require.Empty(t, o.ownedBy("stuck"))
		require.NoError(t, stuck.Close())
		require.ErrorIs(t, <-polled, ErrClosed)
		reader.stop()
		require.NoError(t, fresh.Close())
	})
}

// TestConsumerGroupStaticRestart checks that a static member that comes
// back within its session gets its assignment back without a rebalance,
// and fences the instance it replaced.
func TestConsumerGroupStaticRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 2)
		defer b.Close()
		assigned := make(chan map[string][]int32, 10)
		cfg := ConsumerConfig{InstanceID: "i", OnAssigned: func(_ context.Context, p map[string][]int32) { assigned <- p }}
		first := groupTestConsumer(t, b, cfg)
		require.Equal(t, map[string][]int32{"events": {0, 1}}, <-assigned)
		d, err := b.Groups().DescribeGroup("g")
		require.NoError(t, err)

		second := groupTestConsumer(t, b, cfg) // the same instance, restarted elsewhere
		require.Equal(t, map[string][]int32{"events": {0, 1}}, <-assigned)
		again, err := b.Groups().DescribeGroup("g")
		require.NoError(t, err)
		require.Equal(t, d.Generation, again.Generation, "no rebalance")

		time.Sleep(time.Minute) // the first one's heartbeat finds it fenced
		_, err = first.Poll(context.Background())
		require.ErrorIs(t, err, ErrFencedInstanceID)
		require.Empty(t, first.Assignment())
		require.ErrorIs(t, first.Commit(context.Background()), ErrFencedInstanceID)
		require.NoError(t, first.Close())
		require.NoError(t, second.Close())
	})
}

// TestConsumerGroupPollTimeout checks that a member whose application
// stops calling Poll leaves the group after RebalanceTimeout, and joins
// again at its next Poll.
func TestConsumerGroupPollTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 2)
		defer b.Close()
		o := newOwnerTracker(t)
		members := map[string]*Consumer{
			"busy": groupTestConsumer(t, b, o.config("busy", ConsumerConfig{})),
			"idle": groupTestConsumer(t, b, o.config("idle", ConsumerConfig{})),
		}
		o.waitBalanced(b, "g", members, 2)
		busy := startReader(members["busy"], newSeenRecords(t))
		idle := members["idle"]
		delete(members, "idle")
		o.waitBalanced(b, "g", members, 2) // the idle one left after 5 minutes
		require.Len(t, o.lost["idle"], 1)

		members["idle"] = idle
		polled := make(chan error, 1)
		go func() {
			_, err := idle.Poll(context.Background())
			polled <- err
		}()
		o.waitBalanced(b, "g", members, 2)
		require.Len(t, o.ownedBy("idle"), 1)
		require.NoError(t, idle.Close())
		require.ErrorIs(t, <-polled, ErrClosed)
		busy.stop()
		require.NoError(t, members["busy"].Close())
	})
}

// TestConsumerGroupCommits checks the commit calls: Commit, CommitAsync,
// CommitOffsets with metadata, Committed, and what AutoCommit commits.
func TestConsumerGroupCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{}, 2)
		defer b.Close()
		groupTestFill(t, b, "events", 20)
		assigned := make(chan struct{}, 1)
		c := groupTestConsumer(t, b, ConsumerConfig{
			MaxPollRecords:     4,
			AutoCommit:         true,
			AutoCommitInterval: time.Second,
			OnAssigned:         func(context.Context, map[string][]int32) { assigned <- struct{}{} },
		})
		<-assigned
		committed := func() map[int32]int64 {
			got, err := c.Committed(ctx, map[string][]int32{"events": {0, 1}})
			require.NoError(t, err)
			out := map[int32]int64{}
			for p, om := range got["events"] {
				out[p] = om.Offset
			}
			return out
		}
		require.Empty(t, committed())

		// AutoCommit commits what the Polls before the latest returned.
		first := consumerTestPoll(t, c, 4)
		time.Sleep(2 * time.Second)
		require.Equal(t, map[int32]int64{0: 0, 1: 0}, committed(), "the reset positions, nothing polled before the latest Poll")
		consumerTestPoll(t, c, 4)
		time.Sleep(2 * time.Second)
		require.Equal(t, first[3].Offset+1, committed()[first[0].Partition])

		// Commit commits everything polled; CommitAsync likewise, in
		// order.
		require.NoError(t, c.Commit(ctx))
		pos0, err := c.Position("events", 0)
		require.NoError(t, err)
		pos1, err := c.Position("events", 1)
		require.NoError(t, err)
		require.Equal(t, map[int32]int64{0: pos0, 1: pos1}, committed())
		var order []int
		done := make(chan struct{})
		for i := range 3 {
			_, err := c.Poll(ctx)
			require.NoError(t, err)
			c.CommitAsync(func(offsets map[string]map[int32]OffsetAndMetadata, err error) {
				if err != nil || len(offsets["events"]) != 2 {
					t.Errorf("async commit %d: %v %v", i, offsets, err)
				}
				order = append(order, i)
				if i == 2 {
					close(done)
				}
			})
		}
		<-done
		require.Equal(t, []int{0, 1, 2}, order)

		// Explicit offsets, with metadata.
		require.NoError(t, c.CommitOffsets(ctx, map[string]map[int32]OffsetAndMetadata{"events": {1: {Offset: 2, LeaderEpoch: -1, Metadata: "checkpoint"}}}))
		got, err := c.Committed(ctx, map[string][]int32{"events": {1}})
		require.NoError(t, err)
		require.Equal(t, int64(2), got["events"][1].Offset)
		require.Equal(t, "checkpoint", got["events"][1].Metadata)
		require.WithinDuration(t, time.Now(), got["events"][1].CommitTime, time.Millisecond)

		// Close commits everything Poll returned, after a manual commit
		// that auto-commit must not undo.
		_, err = c.Poll(ctx)
		require.NoError(t, err)
		require.NoError(t, c.Commit(ctx))
		time.Sleep(2 * time.Second)
		pos0, _ = c.Position("events", 0)
		pos1, _ = c.Position("events", 1)
		require.Equal(t, map[int32]int64{0: pos0, 1: pos1}, committed())
		_, err = c.Poll(ctx)
		require.NoError(t, err)
		pos0, _ = c.Position("events", 0)
		pos1, _ = c.Position("events", 1)
		require.NoError(t, c.Close())
		c2 := groupTestConsumer(t, b, ConsumerConfig{Partitions: map[string][]int32{"events": {0, 1}}})
		got, err = c2.Committed(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, pos0, got["events"][0].Offset)
		require.Equal(t, pos1, got["events"][1].Offset)
		require.NoError(t, c2.Close())
	})
}

// TestConsumerGroupCommitInRecords checks that Commit inside a Records
// loop commits the records yielded so far, not the rest of the Poll behind
// the loop.
func TestConsumerGroupCommitInRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{}, 1)
		defer b.Close()
		groupTestFill(t, b, "events", 10)
		assigned := make(chan struct{}, 1)
		c := groupTestConsumer(t, b, ConsumerConfig{OnAssigned: func(context.Context, map[string][]int32) { assigned <- struct{}{} }})
		<-assigned
		committed := func() int64 {
			got, err := c.Committed(ctx, nil)
			require.NoError(t, err)
			return got["events"][0].Offset
		}
		for r, err := range c.Records(ctx) {
			require.NoError(t, err)
			if r.Offset == 3 {
				require.NoError(t, c.Commit(ctx))
				require.Equal(t, int64(4), committed(), "records 0 to 3 were yielded")
			}
			if r.Offset == 5 {
				break
			}
		}
		require.NoError(t, c.Commit(ctx))
		require.Equal(t, int64(6), committed())
		require.NoError(t, c.Close())
	})
}

// TestConsumerGroupAssignMode checks a consumer with a Group and explicit
// Partitions: it starts from the group's committed offsets and commits
// without joining, which the coordinator allows while the group has no
// members.
func TestConsumerGroupAssignMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{}, 2)
		defer b.Close()
		end := groupTestFill(t, b, "events", 10)
		cfg := ConsumerConfig{Group: "g", Partitions: map[string][]int32{"events": {1}}, MaxPollRecords: 4}
		c := groupTestConsumer(t, b, cfg)
		consumerTestCheck(t, "events", consumerTestPoll(t, c, 4), map[int32]int64{1: 0})
		require.NoError(t, c.CommitOffsets(ctx, map[string]map[int32]OffsetAndMetadata{"events": {1: {Offset: 3}}}))
		require.ErrorContains(t, c.Rebalance(), "no member")
		require.NoError(t, c.Close())

		cfg.AutoCommit = true
		c = groupTestConsumer(t, b, cfg)
		pos, err := c.Position("events", 1)
		require.NoError(t, err)
		require.Equal(t, int64(3), pos, "where the group committed")
		consumerTestCheck(t, "events", consumerTestPoll(t, c, 4), map[int32]int64{1: 3})
		consumerTestCheck(t, "events", consumerTestPoll(t, c, 3), map[int32]int64{1: 7})

		// Members in the group: a commit from outside is refused.
		assigned := make(chan struct{}, 1)
		m := groupTestConsumer(t, b, ConsumerConfig{OnAssigned: func(context.Context, map[string][]int32) { assigned <- struct{}{} }})
		<-assigned
		require.ErrorIs(t, c.Commit(ctx), ErrUnknownMemberID)
		require.NoError(t, m.Close())
		require.NoError(t, c.Close(), "AutoCommit on Close: the group is empty again")
		got, err := b.Groups().FetchOffsets(ctx, "g", nil)
		require.NoError(t, err)
		require.Equal(t, end[1], got["events"][1].Offset)
	})
}

// TestConsumerGroupBadInput checks the commit calls' refusals.
func TestConsumerGroupBadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{}, 2)
		defer b.Close()
		_, err := b.CreateTopic(ctx, "other", TopicConfig{})
		require.NoError(t, err)
		o := newOwnerTracker(t)
		members := map[string]*Consumer{
			"a": groupTestConsumer(t, b, o.config("a", ConsumerConfig{})),
			"b": groupTestConsumer(t, b, o.config("b", ConsumerConfig{})),
		}
		o.waitBalanced(b, "g", members, 2)
		a := members["a"]
		mine, theirs := o.ownedBy("a")[0], o.ownedBy("b")[0]
		commit := func(topic string, p int32, off int64) error {
			return a.CommitOffsets(ctx, map[string]map[int32]OffsetAndMetadata{topic: {p: {Offset: off}}})
		}

		err = commit("events", mine, -1)
		require.ErrorIs(t, err, ErrOffsetOutOfRange)
		var oor *OffsetOutOfRangeError
		require.ErrorAs(t, err, &oor)
		require.Equal(t, int64(-1), oor.Offset)
		require.ErrorIs(t, commit("events", theirs, 1), ErrNotAssigned)
		require.ErrorIs(t, commit("other", 0, 1), ErrNotAssigned)
		require.ErrorIs(t, commit("nope", 0, 1), ErrNotAssigned)
		err = a.CommitOffsets(ctx, map[string]map[int32]OffsetAndMetadata{"events": {mine: {Offset: 1}, theirs: {Offset: 1}}})
		require.ErrorIs(t, err, ErrNotAssigned, "all or nothing")
		got, err := a.Committed(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, got, "nothing was committed")
		require.NoError(t, commit("events", mine, 1000), "an offset past the end is the caller's business, as in Kafka")

		// No group.
		plain, err := b.NewConsumer(ConsumerConfig{Topics: []string{"events"}})
		require.NoError(t, err)
		require.ErrorIs(t, plain.Commit(ctx), ErrInvalidGroupID)
		require.ErrorIs(t, plain.CommitOffsets(ctx, nil), ErrInvalidGroupID)
		_, err = plain.Committed(ctx, nil)
		require.ErrorIs(t, err, ErrInvalidGroupID)
		var asyncErr error
		plain.CommitAsync(func(_ map[string]map[int32]OffsetAndMetadata, err error) { asyncErr = err })
		require.ErrorIs(t, asyncErr, ErrInvalidGroupID, "at once")
		require.ErrorIs(t, plain.Rebalance(), ErrInvalidConfig)
		require.NoError(t, plain.Close())

		// Closed.
		require.NoError(t, a.Close())
		require.ErrorIs(t, a.Commit(ctx), ErrClosed)
		require.ErrorIs(t, commit("events", mine, 1), ErrClosed)
		_, err = a.Committed(ctx, nil)
		require.ErrorIs(t, err, ErrClosed)
		asyncErr = nil
		a.CommitAsync(func(_ map[string]map[int32]OffsetAndMetadata, err error) { asyncErr = err })
		require.ErrorIs(t, asyncErr, ErrClosed, "at once")
		require.ErrorIs(t, a.Rebalance(), ErrClosed)
		require.NoError(t, a.Close(), "idempotent")
		require.NoError(t, members["b"].Close())
	})
}

// TestConsumerGroupCommitFenced checks that a member removed from its
// generation loses its partitions and cannot commit them.
func TestConsumerGroupCommitFenced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{}, 1)
		defer b.Close()
		groupTestFill(t, b, "events", 5)
		lost := make(chan struct{}, 1)
		assigned := make(chan struct{}, 1)
		var c *Consumer
		c = groupTestConsumer(t, b, ConsumerConfig{
			SessionTimeout: 10 * time.Second,
			OnAssigned:     func(context.Context, map[string][]int32) { assigned <- struct{}{} },
			OnLost: func(ctx context.Context, _ map[string][]int32) {
				// Too late to commit: another member may own them.
				if err := c.Commit(ctx); !errors.Is(err, ErrIllegalGeneration) {
					t.Errorf("commit of lost partitions: %v", err)
				}
				lost <- struct{}{}
			},
		})
		<-assigned
		consumerTestPoll(t, c, 5)
		// The coordinator removes the member behind its back.
		errs, err := b.Groups().Leave(ctx, "g", MemberIdentity{MemberID: groupTestMemberID(c)})
		require.NoError(t, err)
		require.NoError(t, errs[0])
		<-lost
		<-assigned // it joined again, as a new member
		got, err := c.Committed(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, got)
		require.NoError(t, c.Close())
	})
}

// TestConsumerGroupNewPartitions checks that the leader notices partitions
// added to a subscribed topic and rebalances to assign them.
func TestConsumerGroupNewPartitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{}, 2)
		defer b.Close()
		o := newOwnerTracker(t)
		members := map[string]*Consumer{
			"a": groupTestConsumer(t, b, o.config("a", ConsumerConfig{})),
			"b": groupTestConsumer(t, b, o.config("b", ConsumerConfig{})),
		}
		o.waitBalanced(b, "g", members, 2)
		require.NoError(t, b.AddPartitions(context.Background(), "events", 4))
		o.waitBalanced(b, "g", members, 4)

		generation := func() int32 {
			d, err := b.Groups().DescribeGroup("g")
			require.NoError(t, err)
			return d.Generation
		}
		before := generation()
		require.NoError(t, members["b"].Rebalance())
		o.waitUntil(func() bool { return generation() > before && o.balanced(b, "g", members, 4) }, "rebalanced")
		for _, c := range members {
			require.NoError(t, c.Close())
		}
	})
}

// TestConsumerGroupBrokerShutdown checks that Broker.Shutdown commits a
// group consumer's positions under AutoCommit, and Broker.Close ends its
// goroutines.
func TestConsumerGroupBrokerShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		b := groupTestBroker(t, dir, Options{}, 1)
		end := groupTestFill(t, b, "events", 5)
		c := groupTestConsumer(t, b, ConsumerConfig{AutoCommit: true})
		consumerTestPoll(t, c, 5)
		require.NoError(t, b.Shutdown(context.Background()))
		_, err := c.Poll(context.Background())
		require.ErrorIs(t, err, ErrClosed)

		b = groupTestBroker(t, dir, Options{}, 0)
		defer b.Close()
		got, err := b.Groups().FetchOffsets(context.Background(), "g", nil)
		require.NoError(t, err)
		require.Equal(t, end[0], got["events"][0].Offset)

		// Broker.Close closes a member, and its goroutines end (the bubble
		// checks that none is left).
		c = groupTestConsumer(t, b, ConsumerConfig{})
		synctest.Wait()
		require.NoError(t, b.Close())
		_, err = c.Poll(context.Background())
		require.ErrorIs(t, err, ErrClosed)
	})
}

// A consumer group shares a topic's partitions among its consumers and
// remembers, in committed offsets, how far it got: a consumer of the group
// started later resumes there. Committing after processing makes delivery
// at least once.
func ExampleConsumer_Commit() {
	dir, err := os.MkdirTemp("", "commitlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx := context.Background()
	b, err := Open(dir, Options{SyncPolicy: SyncNone})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := b.CreateTopic(ctx, "invoices", TopicConfig{}); err != nil {
		log.Fatal(err)
	}
	p, err := b.NewProducer(ProducerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 4 {
		if _, err := p.Send(ctx, Record{Topic: "invoices", Value: fmt.Appendf(nil, "invoice %d", i)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	cfg := ConsumerConfig{Group: "billing", Topics: []string{"invoices"}, MaxPollRecords: 2}
	for _, name := range []string{"first", "second"} {
		c, err := b.NewConsumer(cfg)
		if err != nil {
			log.Fatal(err)
		}
		recs, err := c.Poll(ctx) // waits until the group assigned the partition
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range recs {
			fmt.Printf("%s consumer: %s\n", name, r.Value)
		}
		if err := c.Commit(ctx); err != nil { // once the records are processed
			log.Fatal(err)
		}
		if err := c.Close(); err != nil { // leaves the group
			log.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// first consumer: invoice 0
	// first consumer: invoice 1
	// second consumer: invoice 2
	// second consumer: invoice 3
}
