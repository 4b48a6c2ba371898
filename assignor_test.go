package commitlog

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var allAssignors = []Assignor{RangeAssignor{}, RoundRobinAssignor{}, CooperativeStickyAssignor{}}

func TestSubscriptionRoundTrip(t *testing.T) {
	s := Subscription{
		Topics:     []string{"a", "b"},
		UserData:   []byte{1, 2},
		Owned:      map[string][]int32{"b": {3}, "a": {0, 1}},
		Generation: 7,
		Rack:       "r1",
	}
	got, err := DecodeSubscription(EncodeSubscription(s))
	require.NoError(t, err)
	require.Equal(t, s, got)

	// What an old client sends: version 0, topics and user data only.
	old := kmsg.ConsumerMemberMetadata{Version: 0, Topics: []string{"a"}, UserData: []byte{9}}
	got, err = DecodeSubscription(old.AppendTo(nil))
	require.NoError(t, err)
	require.Equal(t, Subscription{Topics: []string{"a"}, UserData: []byte{9}, Generation: -1}, got)

	_, err = DecodeSubscription([]byte{0, 3, 0})
	require.Error(t, err)

	p := NewGroupProtocol(CooperativeStickyAssignor{}, Subscription{Topics: []string{"a"}, Generation: 5})
	require.Equal(t, "cooperative-sticky", p.Name)
	got, err = DecodeSubscription(p.Metadata)
	require.NoError(t, err)
	require.Equal(t, []byte{0, 0, 0, 5}, got.UserData, "the generation, as Java's cooperative-sticky writes it")
}

func TestAssignmentRoundTrip(t *testing.T) {
	a := Assignment{Partitions: map[string][]int32{"b": {2}, "a": {0, 1}}, UserData: []byte("u")}
	got, err := DecodeAssignment(EncodeAssignment(a))
	require.NoError(t, err)
	require.Equal(t, a, got)
	for _, empty := range [][]byte{nil, emptyConsumerAssignment} {
		got, err = DecodeAssignment(empty)
		require.NoError(t, err)
		require.Empty(t, got.Partitions)
	}
	_, err = DecodeAssignment([]byte{0, 0, 0, 0, 0, 9})
	require.Error(t, err)
}

func subs(ids []string, topics ...string) []Subscription {
	out := make([]Subscription, len(ids))
	for i, id := range ids {
		out[i] = Subscription{MemberID: id, Topics: topics, Generation: -1}
	}
	return out
}

// TestRangeAndRoundRobinKafkaExamples checks the examples of Kafka's
// RangeAssignor and RoundRobinAssignor documentation: two consumers, two
// topics of three partitions.
func TestRangeAndRoundRobinKafkaExamples(t *testing.T) {
	members := subs([]string{"C0", "C1"}, "t0", "t1")
	parts := map[string]int32{"t0": 3, "t1": 3}
	require.Equal(t, map[string]map[string][]int32{
		"C0": {"t0": {0, 1}, "t1": {0, 1}},
		"C1": {"t0": {2}, "t1": {2}},
	}, RangeAssignor{}.Assign(members, parts))
	require.Equal(t, map[string]map[string][]int32{
		"C0": {"t0": {0, 2}, "t1": {1}},
		"C1": {"t0": {1}, "t1": {0, 2}},
	}, RoundRobinAssignor{}.Assign(members, parts))

	// Static members come first, by instance id.
	members = []Subscription{{MemberID: "a", Topics: []string{"t"}}, {MemberID: "z", InstanceID: "i1", Topics: []string{"t"}}}
	require.Equal(t, map[string]map[string][]int32{"z": {"t": {0}}, "a": {"t": {1}}}, RangeAssignor{}.Assign(members, map[string]int32{"t": 2}))
}

// TestAssignorsIdleMember checks that a fifth member on four partitions
// gets nothing and the others one each.
func TestAssignorsIdleMember(t *testing.T) {
	for _, a := range allAssignors {
		t.Run(a.Name(), func(t *testing.T) {
			plan := a.Assign(subs([]string{"m1", "m2", "m3", "m4", "m5"}, "t"), map[string]int32{"t": 4})
			require.Len(t, plan, 5)
			var counts []int
			for _, byTopic := range plan {
				counts = append(counts, len(byTopic["t"]))
			}
			slices.Sort(counts)
			require.Equal(t, []int{0, 1, 1, 1, 1}, counts)
			require.Equal(t, seq(4), owners(t, plan, "t"))
		})
	}
}

// owners returns the sorted partitions of topic assigned in plan, failing
// on a partition assigned twice.
func owners(t testing.TB, plan map[string]map[string][]int32, topic string) []int32 {
	t.Helper()
	seen := map[int32]string{}
	for id, byTopic := range plan {
		for _, p := range byTopic[topic] {
			require.NotContains(t, seen, p, "partition %s/%d assigned to %s and %s", topic, p, seen[p], id)
			seen[p] = id
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// converge runs the cooperative protocol's rebalances, from each member
// owning owned[member], until a round revokes nothing, and returns the
// final assignment. Eager assignors converge in one round.
func converge(t testing.TB, a Assignor, members []Subscription, parts map[string]int32, owned map[string]map[string][]int32) (map[string]map[string][]int32, int) {
	t.Helper()
	gen := int32(1)
	for round := 1; ; round++ {
		require.LessOrEqual(t, round, 3, "cooperative rebalancing converges in two rounds")
		for i := range members {
			members[i].Owned = owned[members[i].MemberID]
			members[i].Generation = gen
		}
		plan := a.Assign(members, parts)
		revoked := false
		for _, m := range members {
			for topic, ps := range owned[m.MemberID] {
				for _, p := range ps {
					if !slices.Contains(plan[m.MemberID][topic], p) {
						revoked = true
					}
				}
			}
		}
		owned = plan
		gen++
		if !revoked || !a.Cooperative() {
			return plan, round
		}
	}
}

// TestAssignorsInvariants checks random groups: every partition of a
// consumed topic has exactly one owner, members get only topics they
// consume, and when members consume the same topics the load is balanced
// within one partition (per topic for range).
func TestAssignorsInvariants(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for iter := range 300 {
		a := allAssignors[iter%len(allAssignors)]
		parts := map[string]int32{}
		var topics []string
		for i := range 1 + rng.IntN(4) {
			name := fmt.Sprintf("t%d", i)
			parts[name] = int32(1 + rng.IntN(16))
			topics = append(topics, name)
		}
		homogeneous := rng.IntN(2) == 0
		var members []Subscription
		for i := range 1 + rng.IntN(9) {
			m := Subscription{MemberID: fmt.Sprintf("m%d", i), Topics: topics}
			if !homogeneous {
				m.Topics = nil
				for _, tp := range topics {
					if rng.IntN(2) == 0 {
						m.Topics = append(m.Topics, tp)
					}
				}
			}
			if rng.IntN(4) == 0 {
				m.InstanceID = fmt.Sprintf("i%d", rng.IntN(100))
			}
			members = append(members, m)
		}
		// Start from a random previous ownership, as after members came
		// and went.
		owned := map[string]map[string][]int32{}
		for _, tp := range topics {
			for p := range parts[tp] {
				m := members[rng.IntN(len(members))]
				if rng.IntN(3) > 0 && m.subscribes(tp) {
					if owned[m.MemberID] == nil {
						owned[m.MemberID] = map[string][]int32{}
					}
					owned[m.MemberID][tp] = append(owned[m.MemberID][tp], p)
				}
			}
		}
		plan, _ := converge(t, a, members, parts, owned)
		desc := fmt.Sprintf("iter %d %s homogeneous=%v members=%d parts=%v", iter, a.Name(), homogeneous, len(members), parts)
		require.Len(t, plan, len(members), desc)
		for _, tp := range topics {
			consumed := slices.ContainsFunc(members, func(m Subscription) bool { return m.subscribes(tp) })
			if consumed {
				require.Equal(t, seq(parts[tp]), owners(t, plan, tp), desc)
			} else {
				require.Empty(t, owners(t, plan, tp), desc)
			}
		}
		for _, m := range members {
			for tp := range plan[m.MemberID] {
				require.True(t, m.subscribes(tp), "%s: %s got %s", desc, m.MemberID, tp)
			}
		}
		if !homogeneous {
			continue
		}
		if _, ok := a.(RangeAssignor); ok {
			for _, tp := range topics {
				lo, hi := loadRange(plan, func(byTopic map[string][]int32) int { return len(byTopic[tp]) })
				require.LessOrEqual(t, hi-lo, 1, desc)
			}
			continue
		}
		lo, hi := loadRange(plan, func(byTopic map[string][]int32) int {
			n := 0
			for _, ps := range byTopic {
				n += len(ps)
			}
			return n
		})
		require.LessOrEqual(t, hi-lo, 1, desc)
	}
}

func loadRange(plan map[string]map[string][]int32, load func(map[string][]int32) int) (lo, hi int) {
	first := true
	for _, byTopic := range plan {
		n := load(byTopic)
		if first || n < lo {
			lo = n
		}
		if first || n > hi {
			hi = n
		}
		first = false
	}
	return lo, hi
}

// TestCooperativeStickyScale scales a group 1 -> 4 -> 2 and checks that
// only partitions that must move do, and that they move in two phases:
// revoked first, then assigned.
func TestCooperativeStickyScale(t *testing.T) {
	a := CooperativeStickyAssignor{}
	parts := map[string]int32{"a": 6, "b": 6}
	total := 12

	one, rounds := converge(t, a, subs([]string{"m0"}, "a", "b"), parts, nil)
	require.Equal(t, 1, rounds)
	require.Equal(t, total, count(one["m0"]))

	four := subs([]string{"m0", "m1", "m2", "m3"}, "a", "b")
	for i := range four {
		four[i].Owned = nil
	}
	first := a.Assign(withOwned(four, one, 2), parts)
	require.Equal(t, 3, count(first["m0"]), "m0 keeps its share")
	require.True(t, subset(first["m0"], one["m0"]))
	for _, id := range []string{"m1", "m2", "m3"} {
		require.Zero(t, count(first[id]), "nothing moves to %s before m0 revoked it", id)
	}
	scaled, rounds := converge(t, a, four, parts, one)
	require.Equal(t, 2, rounds, "revoke, then assign")
	require.True(t, subset(scaled["m0"], one["m0"]), "m0 kept what it did not have to give")
	for id, byTopic := range scaled {
		require.Equal(t, 3, count(byTopic), id)
	}
	require.Equal(t, 9, moved(one, scaled), "only the 9 partitions m0 had to give moved")

	two := subs([]string{"m0", "m1"}, "a", "b")
	shrunk, rounds := converge(t, a, two, parts, map[string]map[string][]int32{"m0": scaled["m0"], "m1": scaled["m1"]})
	require.Equal(t, 1, rounds, "nothing to revoke: the leavers' partitions are free")
	for _, id := range []string{"m0", "m1"} {
		require.Equal(t, 6, count(shrunk[id]))
		require.True(t, subset(scaled[id], shrunk[id]), "%s kept all it had", id)
	}
	require.Equal(t, 6, moved(scaled, shrunk), "only the leavers' partitions moved")
}

func withOwned(members []Subscription, owned map[string]map[string][]int32, gen int32) []Subscription {
	out := slices.Clone(members)
	for i := range out {
		out[i].Owned = owned[out[i].MemberID]
		out[i].Generation = gen
	}
	return out
}

func count(byTopic map[string][]int32) int {
	n := 0
	for _, ps := range byTopic {
		n += len(ps)
	}
	return n
}

// subset reports whether every partition of a is in b.
func subset(a, b map[string][]int32) bool {
	for topic, ps := range a {
		for _, p := range ps {
			if !slices.Contains(b[topic], p) {
				return false
			}
		}
	}
	return true
}

// moved counts the partitions whose owner differs between two plans.
func moved(before, after map[string]map[string][]int32) int {
	owner := map[stickyTP]string{}
	for id, byTopic := range before {
		for topic, ps := range byTopic {
			for _, p := range ps {
				owner[stickyTP{topic, p}] = id
			}
		}
	}
	n := 0
	for id, byTopic := range after {
		for topic, ps := range byTopic {
			for _, p := range ps {
				if owner[stickyTP{topic, p}] != id {
					n++
				}
			}
		}
	}
	return n
}

// TestCooperativeStickyClaims checks conflicting claims: the later
// generation wins; equal generations void the claim. It also reads the
// generation from Java's user data when the subscription has none.
func TestCooperativeStickyClaims(t *testing.T) {
	a := CooperativeStickyAssignor{}
	parts := map[string]int32{"t": 2}
	members := []Subscription{
		{MemberID: "m1", Topics: []string{"t"}, Owned: map[string][]int32{"t": {0, 1}}, Generation: 4},
		{MemberID: "m2", Topics: []string{"t"}, Owned: map[string][]int32{"t": {0}}, Generation: 3},
	}
	plan := a.Assign(members, parts)
	require.Equal(t, []int32{0}, plan["m1"]["t"], "m1's later claim on 0 wins; 1 moves, so it is held back")
	require.Empty(t, plan["m2"]["t"])

	// Equal generations: nobody keeps 0; it is free to go anywhere.
	members[1].Generation = 4
	members[0].Owned = map[string][]int32{"t": {0}}
	_, prev := stickyTarget(members, parts)
	require.NotContains(t, prev, stickyTP{"t", 0})

	// Java's cooperative-sticky user data carries the generation.
	members[1].Generation = -1
	members[1].UserData = []byte{0, 0, 0, 9}
	_, prev = stickyTarget(members, parts)
	require.Equal(t, "m2", prev[stickyTP{"t", 0}])
}

// TestAssignGroup checks the leader's helper on metadata as members send
// it, with a topic that does not exist.
func TestAssignGroup(t *testing.T) {
	members := []GroupMember{
		{MemberID: "m1", Metadata: EncodeSubscription(Subscription{Topics: []string{"t", "gone"}, Generation: -1})},
		{MemberID: "m2", Metadata: EncodeSubscription(Subscription{Topics: []string{"t"}, Generation: -1})},
	}
	out, err := AssignGroup(RoundRobinAssignor{}, members, func(topic string) int32 {
		if topic == "t" {
			return 3
		}
		return 0
	})
	require.NoError(t, err)
	got := map[string]map[string][]int32{}
	for id, raw := range out {
		a, err := DecodeAssignment(raw)
		require.NoError(t, err)
		got[id] = a.Partitions
	}
	require.Equal(t, map[string]map[string][]int32{"m1": {"t": {0, 2}}, "m2": {"t": {1}}}, got)
	_, err = AssignGroup(RangeAssignor{}, []GroupMember{{MemberID: "bad", Metadata: []byte{1}}}, nil)
	require.ErrorContains(t, err, "bad")
}
