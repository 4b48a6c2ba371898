package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is the controller's clock in tests: time moves only when the
// test says so.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	return f.now
}

// harness is a controller on a fake clock with the incarnations of the
// brokers the test registered.
type harness struct {
	t     *testing.T
	ctx   context.Context
	c     *Local
	clock *fakeClock
	inc   map[int32]int64
}

func newHarness(t *testing.T, cfg LocalConfig, brokers ...int32) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background(), clock: newFakeClock(), inc: map[int32]int64{}}
	cfg.Now = h.clock.Now
	h.c = NewLocal(cfg)
	t.Cleanup(func() { require.NoError(t, h.c.Close()) })
	for _, id := range brokers {
		h.register(id, true)
	}
	return h
}

func (h *harness) register(id int32, clean bool) {
	h.t.Helper()
	inc, err := h.c.RegisterBroker(h.ctx, BrokerInfo{ID: id, Host: "localhost", Port: 9092 + id}, clean)
	require.NoError(h.t, err)
	require.Greater(h.t, inc, h.inc[id], "incarnations grow")
	h.inc[id] = inc
	h.check()
}

// heartbeat renews the sessions of ids.
func (h *harness) heartbeat(ids ...int32) {
	h.t.Helper()
	for _, id := range ids {
		require.NoError(h.t, h.c.Heartbeat(h.ctx, id, h.inc[id]), "broker %d", id)
	}
}

// tick advances the clock by d and ticks.
func (h *harness) tick(d time.Duration) {
	h.t.Helper()
	h.c.Tick(h.clock.Advance(d))
	h.check()
}

func (h *harness) create(name string, partitions int32, rf int16) []PartitionState {
	h.t.Helper()
	parts, err := h.c.CreateTopic(h.ctx, name, partitions, rf)
	require.NoError(h.t, err)
	h.check()
	return parts
}

func (h *harness) state(name string, p int32) PartitionState {
	h.t.Helper()
	st, ok := h.c.Partition(TopicPartition{name, p})
	require.True(h.t, ok, "%s-%d", name, p)
	return st
}

func (h *harness) alter(name string, p int32, isr ...int32) (PartitionState, error) {
	st := h.state(name, p)
	out, err := h.c.AlterISR(h.ctx, TopicPartition{name, p}, st.Leader, st.LeaderEpoch, st.PartitionEpoch, isr)
	h.check()
	return out, err
}

func (h *harness) check() {
	h.t.Helper()
	h.c.mu.Lock()
	err := h.c.checkInvariantsLocked()
	h.c.mu.Unlock()
	require.NoError(h.t, err)
}

func liveIDs(bs []BrokerInfo) []int32 {
	var ids []int32
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	return ids
}

func TestAssignReplicasMatchesKafka(t *testing.T) {
	// The example in Kafka's AdminUtils: 5 brokers, 10 partitions,
	// replication factor 3, start index 0, replica shift 0.
	got := assignReplicas([]int32{0, 1, 2, 3, 4}, 0, 10, 3, 0, 0)
	want := [][]int32{
		{0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 0}, {4, 0, 1},
		{0, 2, 3}, {1, 3, 4}, {2, 4, 0}, {3, 0, 1}, {4, 1, 2},
	}
	assert.Equal(t, want, got)
}

func TestPlacementSpread(t *testing.T) {
	for _, tc := range []struct {
		brokers    int
		partitions int32
		rf         int16
	}{
		{3, 3, 1}, {3, 6, 3}, {5, 7, 2}, {6, 12, 3}, {4, 100, 3}, {7, 30, 7},
	} {
		t.Run(fmt.Sprintf("%db-%dp-rf%d", tc.brokers, tc.partitions, tc.rf), func(t *testing.T) {
			var ids []int32
			for i := range tc.brokers {
				ids = append(ids, int32(10+i)) // ids need not start at 0
			}
			h := newHarness(t, LocalConfig{}, ids...)
			firstLeaders := map[int32]bool{}
			for topic := range tc.brokers {
				parts := h.create(fmt.Sprintf("t%d", topic), tc.partitions, tc.rf)
				require.Len(t, parts, int(tc.partitions))
				leads, holds := map[int32]int{}, map[int32]int{}
				for p, st := range parts {
					require.NoError(t, st.Validate())
					require.Len(t, st.Replicas, int(tc.rf), "partition %d", p)
					assert.Equal(t, st.Replicas, st.ISR)
					assert.Equal(t, st.Replicas[0], st.Leader)
					assert.Zero(t, st.LeaderEpoch)
					assert.Zero(t, st.PartitionEpoch)
					leads[st.Leader]++
					for _, r := range st.Replicas {
						require.Contains(t, ids, r)
						holds[r]++
					}
				}
				firstLeaders[parts[0].Leader] = true
				n := int32(tc.brokers)
				for _, id := range ids {
					assert.InDelta(t, float64(tc.partitions/n), leads[id], 1, "broker %d leads %d", id, leads[id])
					// Each round of n partitions places rf replicas on every broker.
					perRound := float64(tc.partitions) * float64(tc.rf) / float64(n)
					assert.InDelta(t, perRound, holds[id], float64(tc.rf), "broker %d holds %d", id, holds[id])
				}
			}
			assert.Len(t, firstLeaders, tc.brokers, "the start index varies per topic")
		})
	}
}

func TestCreateTopicErrors(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 1, 2)
	_, err := h.c.CreateTopic(h.ctx, "t", 1, 3)
	assert.ErrorIs(t, err, ErrInvalidReplication)
	_, err = h.c.CreateTopic(h.ctx, "t", 1, 0)
	assert.ErrorIs(t, err, ErrInvalidReplication)
	_, err = h.c.CreateTopic(h.ctx, "t", 0, 1)
	assert.ErrorIs(t, err, ErrInvalidPartitionNum)
	for _, bad := range []string{"", ".", "..", "a/b", "a b", string(make([]byte, 250))} {
		_, err = h.c.CreateTopic(h.ctx, bad, 1, 1)
		assert.ErrorIs(t, err, ErrInvalidTopic, "%q", bad)
	}
	h.create("t", 2, 2)
	_, err = h.c.CreateTopic(h.ctx, "t", 1, 1)
	assert.ErrorIs(t, err, ErrTopicExists)
	assert.Equal(t, []string{"t"}, h.c.Topics())

	_, err = h.c.CreatePartitions(h.ctx, "t", 2)
	assert.ErrorIs(t, err, ErrInvalidPartitionNum)
	_, err = h.c.CreatePartitions(h.ctx, "nope", 3)
	assert.ErrorIs(t, err, ErrUnknownTopic)
	assert.ErrorIs(t, h.c.DeleteTopic(h.ctx, "nope"), ErrUnknownTopic)
	_, err = h.c.RegisterBroker(h.ctx, BrokerInfo{ID: -1}, true)
	assert.ErrorIs(t, err, ErrInvalidBroker)
}

func TestCreatePartitions(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 0, 1, 2)
	before := h.create("t", 3, 2)
	parts, err := h.c.CreatePartitions(h.ctx, "t", 9)
	require.NoError(t, err)
	h.check()
	require.Len(t, parts, 9)
	assert.Equal(t, before, parts[:3], "existing partitions unchanged")
	leads := map[int32]int{}
	for _, st := range parts {
		assert.Len(t, st.Replicas, 2)
		leads[st.Leader]++
	}
	assert.Equal(t, map[int32]int{0: 3, 1: 3, 2: 3}, leads)

	h.tick(2 * time.Second) // every broker expires
	_, err = h.c.CreatePartitions(h.ctx, "t", 10)
	assert.ErrorIs(t, err, ErrInvalidReplication)
}

func TestTopicReturnsCopies(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 0, 1)
	h.create("t", 1, 2)
	parts, _ := h.c.Topic("t")
	parts[0].ISR[0] = 99
	st, _ := h.c.Partition(TopicPartition{"t", 0})
	st.Replicas[0] = 98
	assert.Equal(t, []int32{0, 1}, h.state("t", 0).ISR)
	assert.Equal(t, []int32{0, 1}, h.state("t", 0).Replicas)
	_, ok := h.c.Partition(TopicPartition{"t", 1})
	assert.False(t, ok)
	_, ok = h.c.Topic("nope")
	assert.False(t, ok)
}

func TestFailoverOnSessionExpiry(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 0, 1, 2)
	h.create("t", 1, 3)
	st := h.state("t", 0)
	old := st.Leader
	var others []int32
	for _, r := range st.Replicas {
		if r != old {
			others = append(others, r)
		}
	}

	h.tick(600 * time.Millisecond)
	h.heartbeat(others...)
	h.tick(400 * time.Millisecond) // exactly SessionTimeout since the old leader's last heartbeat: not yet
	assert.Equal(t, old, h.state("t", 0).Leader)
	h.heartbeat(others...)
	h.tick(time.Millisecond) // 1.001 s: fenced

	st = h.state("t", 0)
	assert.Equal(t, others[0], st.Leader, "the next ISR member in replica order")
	assert.Equal(t, others, st.ISR)
	assert.Equal(t, int32(1), st.LeaderEpoch)
	assert.Equal(t, int32(1), st.PartitionEpoch)
	assert.Equal(t, others, sortedCopy(liveIDs(h.c.Brokers())))
	assert.ErrorIs(t, h.c.Heartbeat(h.ctx, old, h.inc[old]), ErrUnknownBroker)

	// The fenced leader's proposals are stale.
	_, err := h.c.AlterISR(h.ctx, TopicPartition{"t", 0}, old, 0, 0, []int32{old})
	assert.ErrorIs(t, err, ErrStaleState)

	// The next leader dies too: the last one standing leads.
	h.tick(500 * time.Millisecond)
	h.heartbeat(others[1])
	h.tick(600 * time.Millisecond)
	st = h.state("t", 0)
	assert.Equal(t, others[1], st.Leader)
	assert.Equal(t, others[1:], st.ISR)
	assert.Equal(t, int32(2), st.LeaderEpoch)
	assert.Equal(t, int32(2), st.PartitionEpoch)

	// The old leader comes back cleanly: it is not in the ISR any more, so
	// it follows; the leader adds it back once it caught up.
	h.register(old, true)
	assert.Equal(t, others[1], h.state("t", 0).Leader)
	st, err = h.alter("t", 0, others[1], old)
	require.NoError(t, err)
	assert.Equal(t, int32(2), st.LeaderEpoch)
	assert.Equal(t, int32(3), st.PartitionEpoch)
	assert.ElementsMatch(t, []int32{old, others[1]}, st.ISR)
}

func sortedCopy(s []int32) []int32 {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// lastMember makes a two-replica partition whose ISR is only its leader,
// and returns the leader and the follower.
func lastMember(t *testing.T, h *harness) (leader, follower int32) {
	t.Helper()
	h.create("t", 1, 2)
	st := h.state("t", 0)
	leader, follower = st.Replicas[0], st.Replicas[1]
	_, err := h.alter("t", 0, leader)
	require.NoError(t, err)
	return leader, follower
}

func TestNoUncleanElectionByDefault(t *testing.T) {
	setup := func(t *testing.T) (h *harness, leader, follower int32) {
		h = newHarness(t, LocalConfig{}, 0, 1)
		leader, follower = lastMember(t, h)
		h.tick(time.Second)
		h.heartbeat(follower)
		h.tick(time.Millisecond) // the leader expires
		st := h.state("t", 0)
		assert.Equal(t, NoLeader, st.Leader, "the live follower is out of sync: no unclean election")
		assert.Equal(t, []int32{leader}, st.ISR, "the last member stays in the ISR")
		assert.Equal(t, int32(1), st.LeaderEpoch)
		assert.Equal(t, int32(2), st.PartitionEpoch)
		return h, leader, follower
	}

	t.Run("clean restart leads again", func(t *testing.T) {
		h, leader, _ := setup(t)
		h.register(leader, true)
		st := h.state("t", 0)
		assert.Equal(t, leader, st.Leader)
		assert.Equal(t, []int32{leader}, st.ISR)
		assert.Equal(t, int32(2), st.LeaderEpoch)
		assert.Equal(t, int32(3), st.PartitionEpoch)
	})
	t.Run("unclean restart does not", func(t *testing.T) {
		h, leader, follower := setup(t)
		h.register(leader, false)
		st := h.state("t", 0)
		assert.Equal(t, NoLeader, st.Leader)
		assert.Empty(t, st.ISR, "an unclean restart leaves even the last ISR")
		assert.Equal(t, int32(1), st.LeaderEpoch)
		assert.Equal(t, int32(3), st.PartitionEpoch)
		// Neither replica can ever lead without unclean election.
		h.heartbeat(leader, follower)
		h.tick(500 * time.Millisecond)
		assert.Equal(t, NoLeader, h.state("t", 0).Leader)
	})
	t.Run("clean shutdown keeps the last member", func(t *testing.T) {
		h := newHarness(t, LocalConfig{}, 0, 1)
		leader, _ := lastMember(t, h)
		require.NoError(t, h.c.UnregisterBroker(h.ctx, leader, h.inc[leader]))
		h.check()
		st := h.state("t", 0)
		assert.Equal(t, NoLeader, st.Leader)
		assert.Equal(t, []int32{leader}, st.ISR)
		assert.ErrorIs(t, h.c.Heartbeat(h.ctx, leader, h.inc[leader]), ErrUnknownBroker)
		assert.ErrorIs(t, h.c.UnregisterBroker(h.ctx, leader, h.inc[leader]), ErrUnknownBroker)
		h.register(leader, true)
		assert.Equal(t, leader, h.state("t", 0).Leader)
	})
}

func TestUncleanElection(t *testing.T) {
	h := newHarness(t, LocalConfig{UncleanLeaderElection: true}, 0, 1)
	leader, follower := lastMember(t, h)
	h.tick(time.Second)
	h.heartbeat(follower)
	h.tick(time.Millisecond)
	st := h.state("t", 0)
	assert.Equal(t, follower, st.Leader, "an out-of-sync replica is elected")
	assert.Equal(t, []int32{follower}, st.ISR)
	assert.Equal(t, int32(1), st.LeaderEpoch)
	assert.Equal(t, int32(2), st.PartitionEpoch)

	// The old leader comes back, uncleanly: it follows.
	h.register(leader, false)
	assert.Equal(t, follower, h.state("t", 0).Leader)

	// An unclean restart of the only live replica, itself the last ISR
	// member: it is elected again, uncleanly.
	h = newHarness(t, LocalConfig{UncleanLeaderElection: true}, 0, 1)
	leader, _ = lastMember(t, h)
	require.NoError(t, h.c.UnregisterBroker(h.ctx, leader, h.inc[leader]))
	h.check()
	assert.NotEqual(t, leader, h.state("t", 0).Leader)
}

func TestReregisterFencesOldIncarnation(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 0, 1, 2)
	h.create("t", 1, 3)
	st := h.state("t", 0)
	old := st.Leader
	oldInc := h.inc[old]
	h.register(old, true) // the broker restarted before its session expired
	assert.ErrorIs(t, h.c.Heartbeat(h.ctx, old, oldInc), ErrUnknownBroker)
	require.NoError(t, h.c.Heartbeat(h.ctx, old, h.inc[old]))
	st = h.state("t", 0)
	assert.NotEqual(t, old, st.Leader, "the old incarnation's leadership moved")
	assert.NotContains(t, st.ISR, old)
	assert.Equal(t, int32(1), st.LeaderEpoch)
	assert.Len(t, h.c.Brokers(), 3)
}

func TestAlterISR(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 0, 1, 2, 3)
	h.create("t", 1, 3)
	tp := TopicPartition{"t", 0}
	st := h.state("t", 0)
	leader, f1, f2 := st.Replicas[0], st.Replicas[1], st.Replicas[2]
	var outsider int32
	for _, b := range h.c.Brokers() {
		if !slices.Contains(st.Replicas, b.ID) {
			outsider = b.ID
		}
	}

	// Shrink.
	got, err := h.c.AlterISR(h.ctx, tp, leader, 0, 0, []int32{f1, leader})
	require.NoError(t, err)
	assert.Equal(t, []int32{leader, f1}, got.ISR, "stored in replica order")
	assert.Equal(t, int32(1), got.PartitionEpoch)
	assert.Equal(t, int32(0), got.LeaderEpoch)
	h.check()

	// The same proposal again is stale now.
	got, err = h.c.AlterISR(h.ctx, tp, leader, 0, 0, []int32{leader})
	assert.ErrorIs(t, err, ErrStaleState)
	assert.Equal(t, int32(1), got.PartitionEpoch, "the state in force comes back with ErrStaleState")

	for name, call := range map[string]struct {
		leader, le, pe int32
		isr            []int32
		want           error
	}{
		"stale leader epoch":    {leader, 1, 1, []int32{leader}, ErrStaleState},
		"stale partition epoch": {leader, 0, 0, []int32{leader}, ErrStaleState},
		"not the leader":        {f1, 0, 1, []int32{f1}, ErrStaleState},
		"no leader":             {NoLeader, 0, 1, nil, ErrStaleState},
		"lacks the leader":      {leader, 0, 1, []int32{f1}, ErrInvalidISR},
		"empty":                 {leader, 0, 1, nil, ErrInvalidISR},
		"not a replica":         {leader, 0, 1, []int32{leader, outsider}, ErrInvalidISR},
		"duplicate":             {leader, 0, 1, []int32{leader, f1, f1}, ErrInvalidISR},
	} {
		_, err := h.c.AlterISR(h.ctx, tp, call.leader, call.le, call.pe, call.isr)
		assert.ErrorIs(t, err, call.want, name)
	}
	_, err = h.c.AlterISR(h.ctx, TopicPartition{"t", 1}, leader, 0, 1, []int32{leader})
	assert.ErrorIs(t, err, ErrUnknownTopic)
	assert.Equal(t, int32(1), h.state("t", 0).PartitionEpoch, "refused proposals change nothing")

	// A proposal that changes nothing does not bump.
	got, err = h.c.AlterISR(h.ctx, tp, leader, 0, 1, []int32{leader, f1})
	require.NoError(t, err)
	assert.Equal(t, int32(1), got.PartitionEpoch)

	// A fenced broker cannot join; one already in the ISR may stay.
	h.tick(600 * time.Millisecond)
	h.heartbeat(leader, outsider)
	h.tick(600 * time.Millisecond) // f1 and f2 expire; f1 leaves the ISR
	got = h.state("t", 0)
	assert.Equal(t, []int32{leader}, got.ISR)
	_, err = h.c.AlterISR(h.ctx, tp, leader, got.LeaderEpoch, got.PartitionEpoch, []int32{leader, f2})
	assert.ErrorIs(t, err, ErrInvalidISR)
	h.register(f2, true)
	got, err = h.c.AlterISR(h.ctx, tp, leader, got.LeaderEpoch, got.PartitionEpoch, []int32{leader, f2})
	require.NoError(t, err)
	assert.Equal(t, []int32{leader, f2}, got.ISR)
}

// next receives one event or fails.
func next(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case e, ok := <-events:
		require.True(t, ok, "events closed")
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return Event{}
	}
}

func TestWatch(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 0, 1)
	h.create("b", 1, 2)
	h.create("a", 2, 1)
	events, cancel := h.c.Watch(0)

	// The snapshot, in name order.
	e := next(t, events)
	assert.Equal(t, TopicCreated, e.Kind)
	assert.Equal(t, "a", e.Topic)
	assert.Len(t, e.Partitions, 2)
	e = next(t, events)
	assert.Equal(t, TopicCreated, e.Kind)
	assert.Equal(t, "b", e.Topic)
	b0 := e.Partitions[0]

	h.create("c", 1, 1)
	_, err := h.c.CreatePartitions(h.ctx, "c", 3)
	require.NoError(t, err)
	_, err = h.alter("b", 0, b0.Leader)
	require.NoError(t, err)
	h.register(2, true)
	require.NoError(t, h.c.DeleteTopic(h.ctx, "a"))

	e = next(t, events)
	assert.Equal(t, TopicCreated, e.Kind)
	assert.Equal(t, "c", e.Topic)
	assert.Len(t, e.Partitions, 1)
	e = next(t, events)
	assert.Equal(t, PartitionsAdded, e.Kind)
	assert.Len(t, e.Partitions, 3)
	e = next(t, events)
	assert.Equal(t, PartitionChanged, e.Kind)
	assert.Equal(t, "b", e.Topic)
	assert.Equal(t, []int32{b0.Leader}, e.State.ISR)
	assert.Equal(t, int32(1), e.State.PartitionEpoch)
	e = next(t, events)
	assert.Equal(t, BrokersChanged, e.Kind)
	assert.Equal(t, []int32{0, 1, 2}, liveIDs(e.Brokers))
	e = next(t, events)
	assert.Equal(t, TopicDeleted, e.Kind)
	assert.Equal(t, "a", e.Topic)

	// A slow receiver loses nothing: a thousand changes queue up.
	for i := range 1000 {
		isr := b0.Replicas // the ISR is {leader} now: grow it, shrink it, ...
		if i%2 == 1 {
			isr = []int32{b0.Leader}
		}
		_, err := h.alter("b", 0, isr...)
		require.NoError(t, err)
	}
	for i := range 1000 {
		e := next(t, events)
		require.Equal(t, PartitionChanged, e.Kind)
		require.Equal(t, int32(i+2), e.State.PartitionEpoch)
	}

	cancel()
	cancel()
	_, ok := <-events
	assert.False(t, ok, "cancel closes the channel")

	// Close cancels the rest; a watch after Close is closed at once.
	other, _ := h.c.Watch(1)
	require.NoError(t, h.c.Close())
	for range other {
	}
	late, lateCancel := h.c.Watch(1)
	_, ok = <-late
	assert.False(t, ok)
	lateCancel()
}

func TestClosed(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 0)
	h.create("t", 1, 1)
	require.NoError(t, h.c.Close())
	require.NoError(t, h.c.Close())
	_, err := h.c.RegisterBroker(h.ctx, BrokerInfo{ID: 1}, true)
	assert.ErrorIs(t, err, ErrControllerClosed)
	assert.ErrorIs(t, h.c.Heartbeat(h.ctx, 0, h.inc[0]), ErrControllerClosed)
	_, err = h.c.CreateTopic(h.ctx, "u", 1, 1)
	assert.ErrorIs(t, err, ErrControllerClosed)
	_, err = h.alter("t", 0, 0)
	assert.ErrorIs(t, err, ErrControllerClosed)
	assert.Equal(t, []string{"t"}, h.c.Topics(), "reads still answer")
	h.c.Run(h.ctx) // returns at once
}

func TestRun(t *testing.T) {
	clock := newFakeClock()
	c := NewLocal(LocalConfig{SessionTimeout: 4 * time.Millisecond, Now: clock.Now})
	_, err := c.RegisterBroker(context.Background(), BrokerInfo{ID: 0}, true)
	require.NoError(t, err)
	events, cancel := c.Watch(0)
	defer cancel()
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		c.Run(context.Background())
	}()
	clock.Advance(time.Hour) // the next tick of Run fences the broker
	e := next(t, events)
	assert.Equal(t, BrokersChanged, e.Kind)
	assert.Empty(t, e.Brokers)
	require.NoError(t, c.Close())
	select {
	case <-ran:
	default:
		t.Fatal("Close returned before Run")
	}

	// Run also returns when its context ends.
	c = NewLocal(LocalConfig{})
	defer c.Close()
	ctx, stop := context.WithCancel(context.Background())
	stop()
	c.Run(ctx)
}

func TestCanceledContext(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.c.CreateTopic(ctx, "t", 1, 1)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = h.c.RegisterBroker(ctx, BrokerInfo{ID: 1}, true)
	assert.ErrorIs(t, err, context.Canceled)
}

// TestTopicConfig: a topic's opaque configuration travels with its
// creation, the watch snapshot and SetTopicConfig, and goes with the
// topic.
func TestTopicConfig(t *testing.T) {
	c := NewLocal(LocalConfig{})
	defer c.Close()
	ctx := context.Background()
	if _, err := c.RegisterBroker(ctx, BrokerInfo{ID: 1}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopicSpec(ctx, "t", TopicSpec{Partitions: 1, ReplicationFactor: 1, Config: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	events, cancel := c.Watch(1)
	defer cancel()
	if ev := <-events; ev.Kind != TopicCreated || string(ev.Config) != "v1" {
		t.Fatalf("snapshot %v with config %q, want TopicCreated with v1", ev.Kind, ev.Config)
	}
	if err := c.SetTopicConfig(ctx, "t", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Kind != TopicConfigChanged || string(ev.Config) != "v2" {
		t.Fatalf("event %v with config %q, want TopicConfigChanged with v2", ev.Kind, ev.Config)
	}
	if cfg, ok := c.TopicConfig("t"); !ok || string(cfg) != "v2" {
		t.Fatalf("TopicConfig: %q %v", cfg, ok)
	}
	if err := c.SetTopicConfig(ctx, "nope", nil); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	if err := c.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.TopicConfig("t"); ok {
		t.Fatal("the deleted topic's config remains")
	}
}

// TestSetMinISR changes a topic's min.insync.replicas on every partition,
// bumping the partition epochs, and refuses values outside [1, replicas].
func TestSetMinISR(t *testing.T) {
	c := NewLocal(LocalConfig{})
	defer c.Close()
	ctx := context.Background()
	for id := int32(1); id <= 3; id++ {
		if _, err := c.RegisterBroker(ctx, BrokerInfo{ID: id}, true); err != nil {
			t.Fatal(err)
		}
	}
	before, err := c.CreateTopicSpec(ctx, "t", TopicSpec{Partitions: 2, ReplicationFactor: 3, MinInsyncReplicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetMinISR(ctx, "t", 2); err != nil {
		t.Fatal(err)
	}
	after, _ := c.Topic("t")
	for p := range after {
		if after[p].MinISR != 2 || after[p].PartitionEpoch != before[p].PartitionEpoch+1 || after[p].LeaderEpoch != before[p].LeaderEpoch {
			t.Fatalf("partition %d: %+v after %+v", p, after[p], before[p])
		}
		if err := after[p].Validate(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{0, 4} {
		if err := c.SetMinISR(ctx, "t", n); !errors.Is(err, ErrInvalidMinISR) {
			t.Fatalf("SetMinISR(%d): %v", n, err)
		}
	}
	if err := c.SetMinISR(ctx, "nope", 1); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
}
