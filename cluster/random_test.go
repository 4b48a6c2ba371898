package cluster

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var seedFlag = flag.Uint64("seed", 0, "seed of TestRandomized (0: from the environment variable CLUSTER_SEED, else the clock)")

func randomSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if s := os.Getenv("CLUSTER_SEED"); seed == 0 && s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "CLUSTER_SEED")
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d: replay with go test ./cluster -run 'TestRandomized' -seed %d", seed, seed)
	return seed
}

// TestRandomized drives a controller through random registrations (clean
// and unclean), heartbeats, session expiries, clean shutdowns, topic
// changes (with random min.insync.replicas) and ISR proposals (some
// stale), checking after every step the controller's invariants (ELR
// included), the epoch rules against the previous step, the live brokers
// against a model of the sessions, a model of which replicas hold every
// acknowledged record (the leader, the ISR and the ELR must), and at the
// end that a watcher's events rebuild the final state.
func TestRandomized(t *testing.T) {
	seed := randomSeed(t)
	for _, unclean := range []bool{false, true} {
		t.Run(fmt.Sprintf("unclean=%v", unclean), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, map[bool]uint64{false: 1, true: 2}[unclean]))
			runRandom(t, rng, unclean, 3000)
		})
	}
}

// sessionModel is what the test expects of broker sessions.
type sessionModel struct {
	live   map[int32]bool
	lastHB map[int32]time.Time
}

func runRandom(t *testing.T, rng *rand.Rand, unclean bool, steps int) {
	h := newHarness(t, LocalConfig{UncleanLeaderElection: unclean})
	const maxBroker = 6
	m := sessionModel{live: map[int32]bool{}, lastHB: map[int32]time.Time{}}
	events, cancel := h.c.Watch(0)
	defer cancel()
	topicSeq := 0
	prev := snapshot(h.c)
	complete := map[TopicPartition]map[int32]bool{}

	anyLive := func() (int32, bool) {
		var ids []int32
		for id, ok := range m.live {
			if ok {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return 0, false
		}
		slices.Sort(ids)
		return ids[rng.IntN(len(ids))], true
	}
	liveCount := func() int {
		n := 0
		for _, ok := range m.live {
			if ok {
				n++
			}
		}
		return n
	}

	for step := range steps {
		var what string
		uncleanID, altered := int32(-1), TopicPartition{}
		switch r := rng.IntN(100); {
		case r < 25:
			d := time.Duration(rng.IntN(700)) * time.Millisecond
			what = fmt.Sprintf("tick +%v", d)
			now := h.clock.Advance(d)
			for id, ok := range m.live {
				if ok && now.Sub(m.lastHB[id]) > time.Second {
					m.live[id] = false
				}
			}
			h.c.Tick(now)
		case r < 50:
			what = "heartbeat"
			for id := range int32(maxBroker) {
				if rng.IntN(3) == 0 {
					continue
				}
				err := h.c.Heartbeat(h.ctx, id, h.inc[id])
				if m.live[id] {
					require.NoError(t, err, "step %d: heartbeat of live broker %d", step, id)
					m.lastHB[id] = h.clock.Now()
				} else {
					require.ErrorIs(t, err, ErrUnknownBroker, "step %d: heartbeat of dead broker %d", step, id)
				}
			}
		case r < 62:
			id := rng.Int32N(maxBroker)
			clean := rng.IntN(2) == 0
			what = fmt.Sprintf("register %d clean=%v", id, clean)
			before := snapshot(h.c)
			h.register(id, clean)
			m.live[id], m.lastHB[id] = true, h.clock.Now()
			if !clean {
				uncleanID = id
			}
			after := snapshot(h.c)
			for tp, st := range after {
				old := before[tp]
				if !clean && st.InSync(id) {
					require.True(t, unclean && st.Leader == id && slices.Equal(st.ISR, []int32{id}),
						"step %d: %s-%d %+v: broker %d after an unclean restart is in sync", step, tp.Topic, tp.Partition, st, id)
				}
				if !clean {
					require.NotContains(t, st.ELR, id, "step %d: %s-%d: eligible after an unclean restart", step, tp.Topic, tp.Partition)
				}
				if clean && old.Leader == NoLeader && slices.Equal(old.ISR, []int32{id}) {
					require.Equal(t, id, st.Leader, "step %d: %s-%d: the last ISR member came back cleanly", step, tp.Topic, tp.Partition)
				}
			}
		case r < 67:
			id, ok := anyLive()
			if !ok {
				continue
			}
			what = fmt.Sprintf("unregister %d", id)
			require.NoError(t, h.c.UnregisterBroker(h.ctx, id, h.inc[id]))
			m.live[id] = false
			for tp, st := range snapshot(h.c) {
				require.NotEqual(t, id, st.Leader, "step %d: %s-%d", step, tp.Topic, tp.Partition)
				if st.InSync(id) {
					require.Equal(t, []int32{id}, st.ISR, "step %d: %s-%d: only the last member stays", step, tp.Topic, tp.Partition)
				}
			}
		case r < 73:
			if len(h.c.Topics()) >= 12 {
				continue // keep the per-step checks cheap
			}
			name := fmt.Sprintf("t%d", topicSeq)
			partitions, rf := rng.Int32N(6)+1, int16(rng.IntN(4)+1)
			minISR := rng.IntN(int(rf) + 1) // 0 means 1
			if rng.IntN(20) == 0 {
				minISR = int(rf) + 1
			}
			what = fmt.Sprintf("create %s %d rf %d min ISR %d", name, partitions, rf, minISR)
			var err error
			if minISR == 1 && rng.IntN(2) == 0 {
				_, err = h.c.CreateTopic(h.ctx, name, partitions, rf)
			} else {
				_, err = h.c.CreateTopicSpec(h.ctx, name, TopicSpec{Partitions: partitions, ReplicationFactor: rf, MinInsyncReplicas: minISR})
			}
			if minISR > int(rf) {
				require.ErrorIs(t, err, ErrInvalidMinISR, "step %d", step)
			} else if int(rf) > liveCount() {
				require.ErrorIs(t, err, ErrInvalidReplication, "step %d", step)
			} else {
				require.NoError(t, err, "step %d", step)
				topicSeq++
			}
		case r < 76:
			topics := h.c.Topics()
			if len(topics) == 0 {
				continue
			}
			name := topics[rng.IntN(len(topics))]
			parts, _ := h.c.Topic(name)
			total := int32(len(parts) + rng.IntN(3) + 1)
			what = fmt.Sprintf("grow %s to %d", name, total)
			_, err := h.c.CreatePartitions(h.ctx, name, total)
			if len(parts[0].Replicas) > liveCount() {
				require.ErrorIs(t, err, ErrInvalidReplication, "step %d", step)
			} else {
				require.NoError(t, err, "step %d", step)
			}
		case r < 78:
			topics := h.c.Topics()
			if len(topics) == 0 {
				continue
			}
			name := topics[rng.IntN(len(topics))]
			what = "delete " + name
			require.NoError(t, h.c.DeleteTopic(h.ctx, name))
		default:
			var led []TopicPartition
			for tp, st := range snapshot(h.c) {
				if st.Leader != NoLeader {
					led = append(led, tp)
				}
			}
			if len(led) == 0 {
				continue
			}
			slices.SortFunc(led, func(a, b TopicPartition) int {
				if a.Topic != b.Topic {
					return strings.Compare(a.Topic, b.Topic)
				}
				return int(a.Partition - b.Partition)
			})
			tp := led[rng.IntN(len(led))]
			st := h.state(tp.Topic, tp.Partition)
			isr := []int32{st.Leader}
			for _, r := range st.Replicas {
				if r != st.Leader && (st.InSync(r) || m.live[r]) && rng.IntN(2) == 0 {
					isr = append(isr, r)
				}
			}
			rng.Shuffle(len(isr), func(i, j int) { isr[i], isr[j] = isr[j], isr[i] })
			le, pe := st.LeaderEpoch, st.PartitionEpoch
			stale := rng.IntN(6) == 0
			if stale {
				if rng.IntN(2) == 0 && le > 0 {
					le--
				} else {
					pe = max(pe-1-rng.Int32N(2), 0)
					if pe == st.PartitionEpoch {
						pe++
					}
				}
			}
			what = fmt.Sprintf("alter %s-%d %v at %d/%d stale=%v", tp.Topic, tp.Partition, isr, le, pe, stale)
			got, err := h.c.AlterISR(h.ctx, tp, st.Leader, le, pe, isr)
			if stale {
				require.ErrorIs(t, err, ErrStaleState, "step %d: %s", step, what)
				require.Equal(t, st, got)
			} else {
				require.NoError(t, err, "step %d: %s", step, what)
				require.ElementsMatch(t, isr, got.ISR)
				altered = tp
			}
		}

		h.check()
		require.Equal(t, liveOf(m), sortedCopy(liveIDs(h.c.Brokers())), "step %d (%s): live brokers", step, what)
		cur := snapshot(h.c)
		for tp, st := range cur {
			old, ok := prev[tp]
			if !ok {
				continue
			}
			leaderMoved := st.Leader != old.Leader
			changed := leaderMoved || !slices.Equal(st.ISR, old.ISR) || !slices.Equal(st.ELR, old.ELR)
			if !slices.Equal(old.Replicas, st.Replicas) || st.MinISR != old.MinISR ||
				st.LeaderEpoch < old.LeaderEpoch || st.PartitionEpoch < old.PartitionEpoch ||
				leaderMoved && st.LeaderEpoch == old.LeaderEpoch ||
				changed && st.PartitionEpoch == old.PartitionEpoch {
				t.Fatalf("step %d (%s): %s-%d %+v -> %+v breaks the epoch rules", step, what, tp.Topic, tp.Partition, old, st)
			}
		}
		prev = cur
		checkComplete(t, complete, cur, uncleanID, altered, unclean, !strings.HasPrefix(what, "tick"), fmt.Sprintf("step %d (%s)", step, what))
	}

	// The watcher's events rebuild the final state, each partition's
	// PartitionEpoch growing from event to event.
	want := snapshot(h.c)
	got := map[TopicPartition]PartitionState{}
	wantBrokers := liveIDs(h.c.Brokers())
	var gotBrokers []int32
	for n := 0; ; n++ {
		if mapsEqual(got, want) && slices.Equal(gotBrokers, wantBrokers) {
			t.Logf("%d events", n)
			break
		}
		e := next(t, events)
		switch e.Kind {
		case TopicCreated, PartitionsAdded:
			for tp := range got {
				if tp.Topic == e.Topic {
					delete(got, tp)
				}
			}
			for p, st := range e.Partitions {
				got[TopicPartition{e.Topic, int32(p)}] = st
			}
		case PartitionChanged:
			tp := TopicPartition{e.Topic, e.Partition}
			old, ok := got[tp]
			require.True(t, ok, "event %d: change of an unknown partition %v", n, tp)
			require.Greater(t, e.State.PartitionEpoch, old.PartitionEpoch, "event %d", n)
			got[tp] = e.State
		case TopicDeleted:
			for tp := range got {
				if tp.Topic == e.Topic {
					delete(got, tp)
				}
			}
		case BrokersChanged:
			gotBrokers = liveIDs(e.Brokers)
		}
	}
}

// checkComplete maintains, for every partition, the replicas known to hold
// every acknowledged record, on the replication layer's contract: the high
// watermark advances only while a partition has a leader and at least
// MinISR replicas in sync, and then every ISR member has it. A replica
// stops being complete when it restarts uncleanly or when records may be
// acknowledged without it; it becomes complete when a leader adds it to
// the ISR (having caught up). It checks that the leader (but for an
// unclean election), the ISR and the ELR are complete and, if exact, that
// no other replica is: the ELR misses nobody eligible. Exactness holds for
// steps that change one broker; a Tick fencing several takes them out of
// the ISRs one at a time (each a state brokers see): the first ones to
// leave while the ISR still had MinISR members are left out of the ELR,
// and with UncleanLeaderElection a leader may be elected uncleanly and
// fenced within the same Tick.
func checkComplete(t *testing.T, complete map[TopicPartition]map[int32]bool, cur map[TopicPartition]PartitionState, uncleanID int32, altered TopicPartition, uncleanElection, exact bool, where string) {
	t.Helper()
	for tp := range complete {
		if _, ok := cur[tp]; !ok {
			delete(complete, tp)
		}
	}
	for tp, st := range cur {
		comp, ok := complete[tp]
		if !ok {
			require.Equal(t, st.Replicas, st.ISR, "%s: %s-%d: new partition", where, tp.Topic, tp.Partition)
			comp = map[int32]bool{}
			for _, r := range st.ISR {
				comp[r] = true
			}
		}
		delete(comp, uncleanID)
		if tp == altered {
			for _, r := range st.ISR {
				comp[r] = true
			}
		}
		eligible := slices.Concat(st.ISR, st.ELR)
		if !exact && uncleanElection && slices.ContainsFunc(eligible, func(r int32) bool { return !comp[r] }) {
			// An unclean election in the middle of a Tick, whose leader
			// was fenced by the same Tick.
			comp = map[int32]bool{}
			for _, r := range eligible {
				comp[r] = true
			}
		}
		if st.Leader != NoLeader && !comp[st.Leader] {
			require.True(t, uncleanElection && slices.Equal(st.ISR, []int32{st.Leader}) && len(st.ELR) == 0,
				"%s: %s-%d %+v: leader %d may lack acknowledged records (complete %v)", where, tp.Topic, tp.Partition, st, st.Leader, comp)
			comp = map[int32]bool{st.Leader: true}
		}
		for _, r := range eligible {
			require.True(t, comp[r], "%s: %s-%d %+v: ISR or ELR member %d may lack acknowledged records (complete %v)", where, tp.Topic, tp.Partition, st, r, comp)
		}
		if len(st.ISR) >= int(st.MinISR) {
			comp = map[int32]bool{}
			for _, r := range st.ISR {
				comp[r] = true
			}
		}
		if !exact {
			// Forget what the controller conservatively forgot.
			maps.DeleteFunc(comp, func(r int32, _ bool) bool { return !slices.Contains(eligible, r) })
		}
		complete[tp] = comp
		if exact {
			var want []int32
			for _, r := range st.Replicas {
				if comp[r] {
					want = append(want, r)
				}
			}
			require.ElementsMatch(t, want, slices.Concat(st.ISR, st.ELR), "%s: %s-%d %+v: a replica holding every acknowledged record is not eligible", where, tp.Topic, tp.Partition, st)
		}
	}
}

func liveOf(m sessionModel) []int32 {
	var ids []int32
	for id, ok := range m.live {
		if ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func snapshot(c *Local) map[TopicPartition]PartitionState {
	out := map[TopicPartition]PartitionState{}
	for _, name := range c.Topics() {
		parts, _ := c.Topic(name)
		for p, st := range parts {
			out[TopicPartition{name, int32(p)}] = st
		}
	}
	return out
}

func mapsEqual(a, b map[TopicPartition]PartitionState) bool {
	if len(a) != len(b) {
		return false
	}
	for tp, x := range a {
		y, ok := b[tp]
		if !ok || x.Leader != y.Leader || x.LeaderEpoch != y.LeaderEpoch || x.PartitionEpoch != y.PartitionEpoch ||
			!slices.Equal(x.ISR, y.ISR) || !slices.Equal(x.ELR, y.ELR) || !slices.Equal(x.Replicas, y.Replicas) || x.MinISR != y.MinISR {
			return false
		}
	}
	return true
}
