package cluster

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// createSpec creates topic name with one partition of rf replicas and
// min.insync.replicas minISR, and returns its leader and followers in
// replica order.
func (h *harness) createSpec(name string, rf int16, minISR int) (leader int32, followers []int32) {
	h.t.Helper()
	parts, err := h.c.CreateTopicSpec(h.ctx, name, TopicSpec{Partitions: 1, ReplicationFactor: rf, MinInsyncReplicas: minISR})
	require.NoError(h.t, err)
	h.check()
	require.Equal(h.t, int32(max(minISR, 1)), parts[0].MinISR)
	require.Empty(h.t, parts[0].ELR)
	return parts[0].Leader, parts[0].Replicas[1:]
}

// expire lets every broker but keep miss its heartbeats until its session
// expires, and ticks.
func (h *harness) expire(keep ...int32) {
	h.t.Helper()
	h.tick(time.Second)
	h.heartbeat(keep...)
	h.tick(time.Millisecond)
}

// changes returns the PartitionChanged events of tp up to the one at
// partitionEpoch, skipping the other kinds.
func changes(t *testing.T, events <-chan Event, tp TopicPartition, partitionEpoch int32) []PartitionState {
	t.Helper()
	var out []PartitionState
	for {
		e := next(t, events)
		if e.Kind != PartitionChanged || e.Topic != tp.Topic || e.Partition != tp.Partition {
			continue
		}
		out = append(out, e.State)
		if e.State.PartitionEpoch >= partitionEpoch {
			require.Equal(t, partitionEpoch, e.State.PartitionEpoch)
			return out
		}
	}
}

// TestELRCheckerScenario is the case the replication fault-injection
// checker found: with min.insync.replicas 2 of 3, faults one at a time
// shrink the ISR to the leader alone, then the leader restarts uncleanly.
// Without ELR the partition stayed offline although a replica held every
// acknowledged record.
func TestELRCheckerScenario(t *testing.T) {
	t.Run("shrink to the leader, leader restarts unclean", func(t *testing.T) {
		h := newHarness(t, LocalConfig{}, 1, 2, 3)
		leader, f := h.createSpec("t", 3, 2)
		tp := TopicPartition{"t", 0}
		events, cancel := h.c.Watch(1)
		defer cancel()

		st, err := h.alter("t", 0, leader)
		require.NoError(t, err)
		assert.Equal(t, []int32{leader}, st.ISR)
		assert.Equal(t, f, st.ELR, "both followers were in the ISR when it fell below 2")
		assert.Equal(t, int32(0), st.LeaderEpoch)
		assert.Equal(t, int32(1), st.PartitionEpoch)

		h.register(leader, false) // killed and back before its session expired
		st = h.state("t", 0)
		assert.Equal(t, f[0], st.Leader, "the first live ELR member is elected")
		assert.Equal(t, []int32{f[0]}, st.ISR)
		assert.Equal(t, f[1:], st.ELR, "the other ELR member stays eligible")
		assert.NotContains(t, st.ELR, leader, "an unclean restart is not eligible")
		assert.Equal(t, int32(1), st.LeaderEpoch)
		assert.Equal(t, int32(2), st.PartitionEpoch)

		got := changes(t, events, tp, 2)
		require.Len(t, got, 2)
		assert.Equal(t, f, got[0].ELR)
		assert.Equal(t, st, got[1])

		// The new leader takes the old one back once it caught up: the ISR
		// is at the minimum again and the ELR is cleared.
		st, err = h.alter("t", 0, f[0], leader)
		require.NoError(t, err)
		assert.Equal(t, []int32{leader, f[0]}, sortedCopy(st.ISR))
		assert.Empty(t, st.ELR)
	})

	t.Run("faults one at a time", func(t *testing.T) {
		h := newHarness(t, LocalConfig{}, 1, 2, 3)
		leader, f := h.createSpec("t", 3, 2)
		restarted, isolated := f[0], f[1]

		// A follower restarts uncleanly: it leaves the ISR, which stays at
		// the minimum (nobody becomes eligible).
		h.register(restarted, false)
		st := h.state("t", 0)
		assert.Equal(t, []int32{leader, isolated}, st.ISR)
		assert.Empty(t, st.ELR)
		// The other follower is cut off from the leader, which shrinks the
		// ISR to itself: the follower has every acknowledged record.
		st, err := h.alter("t", 0, leader)
		require.NoError(t, err)
		assert.Equal(t, []int32{isolated}, st.ELR)
		// The leader is killed: fenced, then back uncleanly.
		h.expire(restarted, isolated)
		st = h.state("t", 0)
		assert.Equal(t, isolated, st.Leader, "fencing the last ISR member elects the live ELR member")
		assert.Equal(t, []int32{isolated}, st.ISR)
		assert.Equal(t, []int32{leader}, st.ELR, "the fenced leader's data is intact")
		h.register(leader, false)
		st = h.state("t", 0)
		assert.Equal(t, isolated, st.Leader)
		assert.Empty(t, st.ELR, "back uncleanly: no longer eligible")
		assert.Equal(t, int32(1), st.LeaderEpoch)
	})

	t.Run("without ELR members the partition stays offline", func(t *testing.T) {
		h := newHarness(t, LocalConfig{}, 1, 2, 3)
		leader, f := h.createSpec("t", 3, 2)
		// The leader drops a follower while the ISR stays at the minimum:
		// that follower may miss acknowledged records.
		_, err := h.alter("t", 0, leader, f[0])
		require.NoError(t, err)
		h.register(f[0], false) // the other one restarts uncleanly
		st := h.state("t", 0)
		assert.Equal(t, []int32{leader}, st.ISR)
		assert.Empty(t, st.ELR)
		h.register(leader, false)
		st = h.state("t", 0)
		assert.Equal(t, NoLeader, st.Leader)
		assert.Empty(t, st.ISR)
		assert.Empty(t, st.ELR)
	})
}

func TestELRClearedOnExpansion(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 1, 2, 3, 4)
	leader, f := h.createSpec("t", 4, 3)
	st, err := h.alter("t", 0, leader)
	require.NoError(t, err)
	assert.Equal(t, f, st.ELR)

	// Growing below the minimum: the added broker leaves the ELR.
	st, err = h.alter("t", 0, leader, f[1])
	require.NoError(t, err)
	assert.Equal(t, []int32{f[0], f[2]}, st.ELR)
	// Shrinking while below: the removed broker joins again.
	st, err = h.alter("t", 0, leader)
	require.NoError(t, err)
	assert.Equal(t, f, st.ELR)
	// Back at the minimum: the ELR is cleared.
	st, err = h.alter("t", 0, leader, f[0], f[2])
	require.NoError(t, err)
	assert.Empty(t, st.ELR)
	assert.Equal(t, int32(0), st.LeaderEpoch)
	assert.Equal(t, int32(4), st.PartitionEpoch)
	// Leaving while at the minimum: the ISR becomes smaller, so the
	// leaver is eligible; the one left out earlier (f[1]) is not.
	st, err = h.alter("t", 0, leader, f[2])
	require.NoError(t, err)
	assert.Equal(t, []int32{f[0]}, st.ELR)
}

func TestELRUncleanRestartRemoves(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 1, 2, 3)
	leader, f := h.createSpec("t", 3, 2)
	tp := TopicPartition{"t", 0}
	_, err := h.alter("t", 0, leader)
	require.NoError(t, err)
	events, cancel := h.c.Watch(1)
	defer cancel()

	// A clean restart keeps the broker eligible; no state change.
	h.register(f[0], true)
	st := h.state("t", 0)
	assert.Equal(t, f, st.ELR)
	assert.Equal(t, int32(1), st.PartitionEpoch)

	// An unclean one takes it out: a change of the ELR alone bumps the
	// partition epoch, not the leader epoch, and watchers see it.
	h.register(f[0], false)
	st = h.state("t", 0)
	assert.Equal(t, leader, st.Leader)
	assert.Equal(t, f[1:], st.ELR)
	assert.Equal(t, int32(0), st.LeaderEpoch)
	assert.Equal(t, int32(2), st.PartitionEpoch)
	got := changes(t, events, tp, 2)
	assert.Equal(t, f[1:], got[len(got)-1].ELR)

	// The leader caught it up and adds it back: it is in sync again, and
	// the ISR at the minimum clears the ELR.
	st, err = h.alter("t", 0, leader, f[0])
	require.NoError(t, err)
	assert.Empty(t, st.ELR)
}

func TestFencedELRMemberNotElectedUntilCleanReturn(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 1, 2, 3)
	leader, f := h.createSpec("t", 3, 2)
	_, err := h.alter("t", 0, leader)
	require.NoError(t, err)

	h.expire(leader) // both ELR members are fenced: they stay eligible
	st := h.state("t", 0)
	assert.Equal(t, leader, st.Leader)
	assert.Equal(t, f, st.ELR)

	h.register(leader, false) // the leader restarts uncleanly
	st = h.state("t", 0)
	assert.Equal(t, NoLeader, st.Leader, "no ISR or ELR member is live")
	assert.Empty(t, st.ISR)
	assert.Equal(t, f, st.ELR)
	assert.Equal(t, int32(1), st.LeaderEpoch)

	h.register(f[0], false) // back uncleanly: not eligible any more
	st = h.state("t", 0)
	assert.Equal(t, NoLeader, st.Leader)
	assert.Equal(t, f[1:], st.ELR)

	h.register(f[1], true) // back cleanly: elected
	st = h.state("t", 0)
	assert.Equal(t, f[1], st.Leader)
	assert.Equal(t, []int32{f[1]}, st.ISR)
	assert.Empty(t, st.ELR)
	assert.Equal(t, int32(2), st.LeaderEpoch)
}

func TestELRLastMemberStopsCleanly(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 1, 2, 3)
	leader, f := h.createSpec("t", 3, 2)
	_, err := h.alter("t", 0, leader)
	require.NoError(t, err)

	// The last ISR member shuts down cleanly while an ELR member is live:
	// that member leads and the old leader becomes eligible.
	require.NoError(t, h.c.UnregisterBroker(h.ctx, leader, h.inc[leader]))
	h.check()
	st := h.state("t", 0)
	assert.Equal(t, f[0], st.Leader)
	assert.Equal(t, []int32{f[0]}, st.ISR)
	assert.Equal(t, []int32{leader, f[1]}, sortedCopy(st.ELR))

	// Everyone else stops cleanly too: the leadership passes to f[1],
	// the last to stop stays in the ISR, the others in the ELR, and the
	// first one back leads.
	require.NoError(t, h.c.UnregisterBroker(h.ctx, f[0], h.inc[f[0]]))
	assert.Equal(t, f[1], h.state("t", 0).Leader)
	require.NoError(t, h.c.UnregisterBroker(h.ctx, f[1], h.inc[f[1]]))
	h.check()
	st = h.state("t", 0)
	assert.Equal(t, NoLeader, st.Leader)
	assert.Equal(t, []int32{f[1]}, st.ISR)
	assert.Equal(t, []int32{leader, f[0]}, sortedCopy(st.ELR))
	h.register(leader, true)
	st = h.state("t", 0)
	assert.Equal(t, leader, st.Leader)
	assert.Equal(t, []int32{leader}, st.ISR)
	assert.Equal(t, []int32{f[0], f[1]}, sortedCopy(st.ELR))
}

func TestMinISROneHasNoELR(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 1, 2, 3)
	h.create("t", 1, 3) // CreateTopic: min ISR 1
	st := h.state("t", 0)
	assert.Equal(t, int32(1), st.MinISR)
	leader := st.Leader

	st, err := h.alter("t", 0, leader)
	require.NoError(t, err)
	assert.Empty(t, st.ELR)
	h.expire(st.Replicas[1:]...)
	st = h.state("t", 0)
	assert.Equal(t, NoLeader, st.Leader, "the live followers are not eligible")
	assert.Equal(t, []int32{leader}, st.ISR)
	assert.Empty(t, st.ELR)
	h.register(leader, false)
	st = h.state("t", 0)
	assert.Equal(t, NoLeader, st.Leader)
	assert.Empty(t, st.ISR)
	assert.Empty(t, st.ELR)
}

func TestUncleanElectionClearsELR(t *testing.T) {
	h := newHarness(t, LocalConfig{UncleanLeaderElection: true}, 1, 2, 3)
	leader, f := h.createSpec("t", 3, 2)
	_, err := h.alter("t", 0, leader)
	require.NoError(t, err)
	h.expire(leader)          // the ELR members are fenced
	h.register(leader, false) // nobody eligible is live
	st := h.state("t", 0)
	assert.Equal(t, leader, st.Leader, "unclean election of the only live replica")
	assert.Equal(t, []int32{leader}, st.ISR)
	assert.Empty(t, st.ELR)
	h.register(f[0], true)
	assert.Equal(t, leader, h.state("t", 0).Leader)
}

func TestCreateTopicSpec(t *testing.T) {
	h := newHarness(t, LocalConfig{}, 1, 2, 3)
	for _, bad := range []int{-1, 4} {
		_, err := h.c.CreateTopicSpec(h.ctx, "t", TopicSpec{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: bad})
		assert.ErrorIs(t, err, ErrInvalidMinISR, "%d", bad)
	}
	_, err := h.c.CreateTopicSpec(h.ctx, "t", TopicSpec{Partitions: 1, ReplicationFactor: 4, MinInsyncReplicas: 2})
	assert.ErrorIs(t, err, ErrInvalidReplication)
	assert.Empty(t, h.c.Topics())

	parts, err := h.c.CreateTopicSpec(h.ctx, "zero", TopicSpec{Partitions: 1, ReplicationFactor: 2})
	require.NoError(t, err)
	assert.Equal(t, int32(1), parts[0].MinISR, "0 means 1")
	_, err = h.c.CreateTopicSpec(h.ctx, "t", TopicSpec{Partitions: 2, ReplicationFactor: 3, MinInsyncReplicas: 3})
	require.NoError(t, err)
	h.check()
	parts, err = h.c.CreatePartitions(h.ctx, "t", 4)
	require.NoError(t, err)
	h.check()
	for p, st := range parts {
		assert.Equal(t, int32(3), st.MinISR, "partition %d", p)
	}
}

func TestValidateELR(t *testing.T) {
	base := PartitionState{Replicas: []int32{1, 2, 3}, ISR: []int32{1}, Leader: 1, MinISR: 2, ELR: []int32{2, 3}}
	require.NoError(t, base.Validate())
	c := base.Clone()
	c.ELR[0] = 9
	assert.Equal(t, []int32{2, 3}, base.ELR, "Clone copies the ELR")
	for name, mod := range map[string]func(*PartitionState){
		"not a replica":       func(s *PartitionState) { s.ELR = []int32{4} },
		"twice":               func(s *PartitionState) { s.ELR = []int32{2, 2} },
		"in the ISR":          func(s *PartitionState) { s.ELR = []int32{1, 2} },
		"ISR at the minimum":  func(s *PartitionState) { s.ISR = []int32{1, 2}; s.ELR = []int32{3} },
		"min ISR too large":   func(s *PartitionState) { s.MinISR = 4 },
		"min ISR negative":    func(s *PartitionState) { s.MinISR = -1 },
		"min ISR 0 is 1, ELR": func(s *PartitionState) { s.MinISR = 0 },
	} {
		s := base.Clone()
		mod(&s)
		assert.Error(t, s.Validate(), name)
	}
	empty := PartitionState{Replicas: []int32{1, 2}, Leader: NoLeader, MinISR: 2, ELR: []int32{2}}
	assert.NoError(t, empty.Validate(), "an empty ISR with an ELR")
}
