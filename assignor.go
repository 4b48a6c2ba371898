package commitlog

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Partition assignment for consumer groups, on the client side as in Kafka:
// the group's leader decodes every member's Subscription from
// JoinResult.Members, runs the Assignor the group chose (the JoinGroup
// protocol name) and sends each member's Assignment in its SyncRequest.
// Subscriptions and assignments use Kafka's consumer protocol encoding
// (ConsumerProtocolSubscription v3, ConsumerProtocolAssignment), so Java,
// franz-go and librdkafka consumers can share a group with ours.

// Assignor is a partition assignment strategy of Kafka's consumer protocol.
type Assignor interface {
	// Name is the protocol name members offer in JoinGroup: the same name
	// must mean the same strategy in every client of the group.
	Name() string
	// Cooperative reports whether members keep their partitions across a
	// rebalance and give up only those that move (incremental cooperative
	// rebalancing, KIP-429), rather than revoking everything first.
	Cooperative() bool
	// Assign maps every member's id to the partitions it gets, by topic.
	// partitions holds the partition count of each subscribed topic that
	// exists. Every member has an entry, perhaps empty.
	Assign(members []Subscription, partitions map[string]int32) map[string]map[string][]int32
}

// Subscription is a member's ConsumerProtocolSubscription: what it sends
// as its protocol metadata in JoinGroup.
type Subscription struct {
	// MemberID and InstanceID say whose it is; they are not encoded
	// (AssignGroup fills them from the JoinResult).
	MemberID, InstanceID string
	// Topics are the topics the member consumes.
	Topics []string
	// UserData is the assignor's own data (cooperative-sticky: the
	// generation, as Java writes it).
	UserData []byte
	// Owned are the partitions the member holds now (v1+), which
	// cooperative assignors keep where they can.
	Owned map[string][]int32
	// Generation is the generation Owned comes from (v2+), -1 when
	// unknown.
	Generation int32
	// Rack is the member's rack, "" for none (v3+).
	Rack string
}

// Assignment is a member's ConsumerProtocolAssignment: its partitions, by
// topic.
type Assignment struct {
	Partitions map[string][]int32
	UserData   []byte
}

// subscriptionVersion is the ConsumerProtocolSubscription version written:
// v3, with owned partitions, generation and rack, as Java 3.x clients
// write it.
const subscriptionVersion = 3

// EncodeSubscription encodes s as JoinGroup protocol metadata.
func EncodeSubscription(s Subscription) []byte {
	m := kmsg.ConsumerMemberMetadata{
		Version:    subscriptionVersion,
		Topics:     s.Topics,
		UserData:   s.UserData,
		Generation: s.Generation,
		Rack:       nullable(s.Rack),
	}
	for _, t := range slices.Sorted(maps.Keys(s.Owned)) {
		m.OwnedPartitions = append(m.OwnedPartitions, kmsg.ConsumerMemberMetadataOwnedPartition{Topic: t, Partitions: s.Owned[t]})
	}
	if m.Topics == nil {
		m.Topics = []string{}
	}
	return m.AppendTo(nil)
}

// DecodeSubscription decodes JoinGroup protocol metadata of any version
// (later versions' extra fields are skipped). Generation is -1 for versions
// before 2.
func DecodeSubscription(b []byte) (Subscription, error) {
	var m kmsg.ConsumerMemberMetadata
	if err := m.ReadFrom(b); err != nil {
		return Subscription{}, fmt.Errorf("commitlog: decode consumer subscription: %w", err)
	}
	s := Subscription{Topics: m.Topics, UserData: bytes.Clone(m.UserData), Generation: m.Generation}
	if m.Rack != nil {
		s.Rack = *m.Rack
	}
	for _, op := range m.OwnedPartitions {
		if s.Owned == nil {
			s.Owned = map[string][]int32{}
		}
		s.Owned[op.Topic] = append(s.Owned[op.Topic], op.Partitions...)
	}
	return s, nil
}

// EncodeAssignment encodes a as a SyncGroup assignment (version 0: the
// layout every version shares). Topics are sorted.
func EncodeAssignment(a Assignment) []byte {
	m := kmsg.ConsumerMemberAssignment{UserData: a.UserData}
	for _, t := range slices.Sorted(maps.Keys(a.Partitions)) {
		m.Topics = append(m.Topics, kmsg.ConsumerMemberAssignmentTopic{Topic: t, Partitions: a.Partitions[t]})
	}
	return m.AppendTo(nil)
}

// DecodeAssignment decodes a SyncGroup assignment. Zero bytes decode as an
// empty assignment, as the Java client reads them.
func DecodeAssignment(b []byte) (Assignment, error) {
	a := Assignment{Partitions: map[string][]int32{}}
	if len(b) == 0 {
		return a, nil
	}
	var m kmsg.ConsumerMemberAssignment
	if err := m.ReadFrom(b); err != nil {
		return Assignment{}, fmt.Errorf("commitlog: decode consumer assignment: %w", err)
	}
	for _, t := range m.Topics {
		a.Partitions[t.Topic] = append(a.Partitions[t.Topic], t.Partitions...)
	}
	a.UserData = bytes.Clone(m.UserData)
	return a, nil
}

// NewGroupProtocol returns the JoinGroup protocol for assignor a and
// subscription s, with the user data a expects (cooperative-sticky: the
// generation) when s has none.
func NewGroupProtocol(a Assignor, s Subscription) GroupProtocol {
	if u, ok := a.(interface{ userData(Subscription) []byte }); ok && s.UserData == nil {
		s.UserData = u.userData(s)
	}
	return GroupProtocol{Name: a.Name(), Metadata: EncodeSubscription(s)}
}

// AssignGroup does the leader's part of a rebalance: it decodes the
// members' subscriptions (JoinResult.Members), runs a over the partitions
// of the topics they subscribe to, and encodes every member's assignment,
// ready for SyncRequest.Assignments. partitions returns a topic's partition
// count, 0 when it does not exist.
func AssignGroup(a Assignor, members []GroupMember, partitions func(topic string) int32) (map[string][]byte, error) {
	subs := make([]Subscription, len(members))
	counts := map[string]int32{}
	for i, m := range members {
		s, err := DecodeSubscription(m.Metadata)
		if err != nil {
			return nil, fmt.Errorf("%w (member %s)", err, m.MemberID)
		}
		s.MemberID, s.InstanceID = m.MemberID, m.InstanceID
		subs[i] = s
		for _, t := range s.Topics {
			if _, ok := counts[t]; !ok {
				counts[t] = partitions(t)
			}
		}
	}
	maps.DeleteFunc(counts, func(_ string, n int32) bool { return n <= 0 })
	plan := a.Assign(subs, counts)
	out := make(map[string][]byte, len(members))
	for _, m := range members {
		out[m.MemberID] = EncodeAssignment(Assignment{Partitions: plan[m.MemberID]})
	}
	return out, nil
}

// sortedMembers returns the members in the order Java's assignors use:
// static members first by instance id, then dynamic ones by member id.
func sortedMembers(members []Subscription) []*Subscription {
	out := make([]*Subscription, len(members))
	for i := range members {
		out[i] = &members[i]
	}
	slices.SortStableFunc(out, func(a, b *Subscription) int {
		switch {
		case a.InstanceID != "" && b.InstanceID != "":
			return cmp.Or(cmp.Compare(a.InstanceID, b.InstanceID), cmp.Compare(a.MemberID, b.MemberID))
		case a.InstanceID != "":
			return -1
		case b.InstanceID != "":
			return 1
		}
		return cmp.Compare(a.MemberID, b.MemberID)
	})
	return out
}

// subscribes reports whether s consumes topic.
func (s *Subscription) subscribes(topic string) bool { return slices.Contains(s.Topics, topic) }

// emptyPlan gives every member an empty assignment.
func emptyPlan(members []Subscription) map[string]map[string][]int32 {
	plan := make(map[string]map[string][]int32, len(members))
	for _, m := range members {
		plan[m.MemberID] = map[string][]int32{}
	}
	return plan
}

// subscribedTopics returns the topics some member consumes that exist,
// sorted.
func subscribedTopics(members []Subscription, partitions map[string]int32) []string {
	set := map[string]bool{}
	for _, m := range members {
		for _, t := range m.Topics {
			if partitions[t] > 0 {
				set[t] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// RangeAssignor is Kafka's "range" strategy: topic by topic, the members
// that consume it, in order, get consecutive ranges of its partitions, the
// first ones one more when they do not divide evenly. Eager.
type RangeAssignor struct{}

// Name returns "range".
func (RangeAssignor) Name() string { return "range" }

// Cooperative returns false.
func (RangeAssignor) Cooperative() bool { return false }

// Assign implements Assignor.
func (RangeAssignor) Assign(members []Subscription, partitions map[string]int32) map[string]map[string][]int32 {
	plan := emptyPlan(members)
	sorted := sortedMembers(members)
	for _, topic := range subscribedTopics(members, partitions) {
		var consumers []*Subscription
		for _, m := range sorted {
			if m.subscribes(topic) {
				consumers = append(consumers, m)
			}
		}
		n, c := int(partitions[topic]), len(consumers)
		per, extra := n/c, n%c
		for i, m := range consumers {
			start, length := i*per+min(i, extra), per
			if i < extra {
				length++
			}
			for p := start; p < start+length; p++ {
				plan[m.MemberID][topic] = append(plan[m.MemberID][topic], int32(p))
			}
		}
	}
	return plan
}

// RoundRobinAssignor is Kafka's "roundrobin" strategy: every partition of
// every topic, in order, goes to the next member (in order, cycling) that
// consumes its topic. Eager.
type RoundRobinAssignor struct{}

// Name returns "roundrobin".
func (RoundRobinAssignor) Name() string { return "roundrobin" }

// Cooperative returns false.
func (RoundRobinAssignor) Cooperative() bool { return false }

// Assign implements Assignor.
func (RoundRobinAssignor) Assign(members []Subscription, partitions map[string]int32) map[string]map[string][]int32 {
	plan := emptyPlan(members)
	sorted := sortedMembers(members)
	next := 0
	for _, topic := range subscribedTopics(members, partitions) {
		for p := int32(0); p < partitions[topic]; p++ {
			for !sorted[next%len(sorted)].subscribes(topic) {
				next++
			}
			m := sorted[next%len(sorted)]
			next++
			plan[m.MemberID][topic] = append(plan[m.MemberID][topic], p)
		}
	}
	return plan
}

// CooperativeStickyAssignor is Kafka's "cooperative-sticky" strategy: the
// assignment is balanced (within one partition per member when the members
// consume the same topics), members keep the partitions they own wherever
// balance allows, and it is incremental (KIP-429): a partition that moves
// is left out of this round's assignment, its owner revokes it and joins
// again, and the next rebalance gives it to its new member. Members that
// claim the same partition keep it only if one claims it from a later
// generation.
type CooperativeStickyAssignor struct{}

// Name returns "cooperative-sticky".
func (CooperativeStickyAssignor) Name() string { return "cooperative-sticky" }

// Cooperative returns true.
func (CooperativeStickyAssignor) Cooperative() bool { return true }

// userData is the generation, as Java's CooperativeStickyAssignor writes
// it for readers of subscriptions older than v2.
func (CooperativeStickyAssignor) userData(s Subscription) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(s.Generation))
}

// Assign implements Assignor.
func (CooperativeStickyAssignor) Assign(members []Subscription, partitions map[string]int32) map[string]map[string][]int32 {
	plan := emptyPlan(members)
	target, prevOwner := stickyTarget(members, partitions)
	for id, tps := range target {
		for _, tp := range tps {
			if owner, ok := prevOwner[tp]; ok && owner != id {
				continue // moves: its owner revokes it first
			}
			plan[id][tp.topic] = append(plan[id][tp.topic], tp.partition)
		}
	}
	for _, byTopic := range plan {
		for _, ps := range byTopic {
			slices.Sort(ps)
		}
	}
	return plan
}

// ownership returns the partitions s claims and the generation of its
// claim, reading franz-go's and Java's older user data when the
// subscription predates owned partitions or generations.
func ownership(s *Subscription) (map[string][]int32, int32) {
	owned, gen := s.Owned, s.Generation
	switch {
	case gen >= 0:
	case len(s.UserData) == 4: // Java CooperativeStickyAssignor
		gen = int32(binary.BigEndian.Uint32(s.UserData))
	case len(s.UserData) > 4: // StickyMemberMetadata: Java's eager sticky, franz-go
		var md kmsg.StickyMemberMetadata
		if md.ReadFrom(s.UserData) == nil {
			gen = md.Generation
			if len(owned) == 0 {
				owned = map[string][]int32{}
				for _, t := range md.CurrentAssignment {
					owned[t.Topic] = append(owned[t.Topic], t.Partitions...)
				}
			}
		}
	}
	return owned, gen
}

// stickyTP is one partition of a topic.
type stickyTP struct {
	topic     string
	partition int32
}

// stickyTarget computes the balanced, sticky assignment: valid claims are
// kept, unclaimed partitions go to the least loaded member that consumes
// their topic (the least widely consumed topics first), then partitions
// move from the most to the least loaded members until no member that
// could take one has two fewer than its owner. It returns the assignment
// and the valid previous owner of each partition.
func stickyTarget(members []Subscription, partitions map[string]int32) (map[string][]stickyTP, map[stickyTP]string) {
	sorted := sortedMembers(members)
	topics := subscribedTopics(members, partitions)
	consumers := map[string][]int{} // topic -> indexes into sorted
	for i, m := range sorted {
		for _, t := range topics {
			if m.subscribes(t) {
				consumers[t] = append(consumers[t], i)
			}
		}
	}

	// Claims: a partition that exists, of a topic its claimant still
	// consumes; of several claims the latest generation's wins, and a tie
	// there voids them all.
	type claim struct {
		member int
		gen    int32
	}
	claims := map[stickyTP][]claim{}
	for i, m := range sorted {
		owned, gen := ownership(m)
		for t, ps := range owned {
			if !m.subscribes(t) {
				continue
			}
			for _, p := range ps {
				if p >= 0 && p < partitions[t] {
					tp := stickyTP{t, p}
					claims[tp] = append(claims[tp], claim{i, gen})
				}
			}
		}
	}
	owner := make(map[stickyTP]int, len(claims))
	for tp, cs := range claims {
		best, winner := cs[0].gen, cs[0].member
		for _, c := range cs[1:] {
			switch {
			case c.gen > best:
				best, winner = c.gen, c.member
			case c.gen == best && c.member != winner:
				winner = -1
			}
		}
		if winner >= 0 {
			owner[tp] = winner
		}
	}
	prevOwner := make(map[stickyTP]string, len(owner))
	for tp, i := range owner {
		prevOwner[tp] = sorted[i].MemberID
	}

	assigned := make([][]stickyTP, len(sorted))
	var free []stickyTP
	for _, t := range topics {
		for p := int32(0); p < partitions[t]; p++ {
			tp := stickyTP{t, p}
			if i, ok := owner[tp]; ok {
				assigned[i] = append(assigned[i], tp)
			} else {
				free = append(free, tp)
			}
		}
	}
	leastLoaded := func(topic string, below int) int {
		best := -1
		for _, i := range consumers[topic] {
			if len(assigned[i]) < below && (best < 0 || len(assigned[i]) < len(assigned[best])) {
				best = i
			}
		}
		return best
	}
	slices.SortStableFunc(free, func(a, b stickyTP) int { return cmp.Compare(len(consumers[a.topic]), len(consumers[b.topic])) })
	for _, tp := range free {
		i := leastLoaded(tp.topic, int(^uint(0)>>1))
		assigned[i] = append(assigned[i], tp)
	}

	// Balance: move a partition from a member to one with at least two
	// fewer that consumes its topic, the latest assigned first (kept
	// claims come first in each list), until no such move is left. Each
	// move lowers the sum of squared loads, so this ends.
	order := make([]int, len(sorted))
	for {
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(assigned[b]), len(assigned[a])) })
		moved := false
		for _, from := range order {
			for k := len(assigned[from]) - 1; k >= 0 && !moved; k-- {
				tp := assigned[from][k]
				if to := leastLoaded(tp.topic, len(assigned[from])-1); to >= 0 {
					assigned[from] = slices.Delete(assigned[from], k, k+1)
					assigned[to] = append(assigned[to], tp)
					moved = true
				}
			}
			if moved {
				break
			}
		}
		if !moved {
			break
		}
	}

	target := make(map[string][]stickyTP, len(sorted))
	for i, m := range sorted {
		target[m.MemberID] = assigned[i]
	}
	return target, prevOwner
}
