package commitlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// groupTestBroker opens a broker for group tests, with SyncNone, 3 offsets
// partitions and no initial rebalance delay unless opts says otherwise, and
// a topic "events" of the given partition count.
func groupTestBroker(t testing.TB, dir string, opts Options, partitions int32) *Broker {
	t.Helper()
	opts.SyncPolicy = SyncNone
	if opts.OffsetsTopicPartitions == 0 {
		opts.OffsetsTopicPartitions = 3
	}
	if opts.GroupInitialRebalanceDelay == 0 {
		opts.GroupInitialRebalanceDelay = -1
	}
	b, err := Open(dir, opts)
	require.NoError(t, err)
	if partitions > 0 {
		_, err = b.CreateTopic(context.Background(), "events", TopicConfig{Partitions: partitions})
		require.NoError(t, err)
	}
	return b
}

// consumerJoin is a consumer's JoinGroup for topics with the range
// assignor.
func consumerJoin(group, memberID, instanceID string, topics ...string) JoinRequest {
	return JoinRequest{
		Group:            group,
		MemberID:         memberID,
		InstanceID:       instanceID,
		ClientID:         "test",
		ProtocolType:     consumerProtocolType,
		Protocols:        []GroupProtocol{NewGroupProtocol(RangeAssignor{}, Subscription{Topics: topics, Generation: -1})},
		SessionTimeout:   10 * time.Second,
		RebalanceTimeout: 20 * time.Second,
	}
}

// joinAll runs the joins at once and returns their results in order.
func joinAll(t testing.TB, gc *GroupCoordinator, reqs ...JoinRequest) []JoinResult {
	t.Helper()
	results := make([]JoinResult, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { results[i], errs[i] = gc.Join(context.Background(), reqs[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "join %d", i)
	}
	return results
}

// syncAll has the leader among results assign with the range assignor
// and every member sync at once; it returns each member's assignment.
func syncAll(t testing.TB, b *Broker, group string, results []JoinResult) map[string]Assignment {
	t.Helper()
	gc := b.Groups()
	var assignments map[string][]byte
	for _, r := range results {
		if r.LeaderID == r.MemberID {
			require.Len(t, r.Members, len(results), "the leader lists every member")
			var err error
			assignments, err = AssignGroup(RangeAssignor{}, r.Members, brokerPartitions(b))
			require.NoError(t, err)
		} else {
			require.Empty(t, r.Members, "only the leader gets the members")
		}
	}
	require.NotNil(t, assignments, "a leader among the results")
	out := make([]Assignment, len(results))
	errs := make([]error, len(results))
	var wg sync.WaitGroup
	for i, r := range results {
		wg.Go(func() {
			req := SyncRequest{Group: group, Generation: r.Generation, MemberID: r.MemberID, ProtocolType: r.ProtocolType, Protocol: r.Protocol}
			if r.LeaderID == r.MemberID {
				req.Assignments = assignments
			}
			var raw []byte
			if raw, errs[i] = gc.Sync(context.Background(), req); errs[i] == nil {
				out[i], errs[i] = DecodeAssignment(raw)
			}
		})
	}
	wg.Wait()
	byMember := map[string]Assignment{}
	for i, r := range results {
		require.NoError(t, errs[i], "sync of %s", r.MemberID)
		byMember[r.MemberID] = out[i]
	}
	return byMember
}

func brokerPartitions(b *Broker) func(string) int32 {
	return func(topic string) int32 {
		t, err := b.Topic(topic)
		if err != nil {
			return 0
		}
		return t.NumPartitions()
	}
}

// ownedPartitions returns the sorted partitions of topic across
// assignments, failing on a partition owned twice.
func ownedPartitions(t testing.TB, assignments map[string]Assignment, topic string) []int32 {
	t.Helper()
	var all []int32
	for id, a := range assignments {
		for _, p := range a.Partitions[topic] {
			require.NotContains(t, all, p, "partition %d owned twice (again by %s)", p, id)
			all = append(all, p)
		}
	}
	slices.Sort(all)
	return all
}

func seq(n int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

// TestGroupJoinSyncHeartbeatLeave walks a group through its life: three
// members join one generation, get disjoint assignments covering the
// topic, heartbeat; one leaves and the others rebalance to cover its
// partitions; the last ones leave and the group is Empty.
func TestGroupJoinSyncHeartbeatLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{GroupInitialRebalanceDelay: 100 * time.Millisecond}, 6)
		defer b.Close()
		gc := b.Groups()
		start := time.Now()
		res := joinAll(t, gc, consumerJoin("g", "", "", "events"), consumerJoin("g", "", "", "events"), consumerJoin("g", "", "", "events"))
		require.Equal(t, 200*time.Millisecond, time.Since(start), "the initial delay, extended once for those that joined during it, gathered all three")
		for _, r := range res {
			require.Equal(t, int32(1), r.Generation)
			require.Equal(t, "range", r.Protocol)
			require.Equal(t, consumerProtocolType, r.ProtocolType)
			require.Equal(t, res[0].LeaderID, r.LeaderID)
			require.NotEmpty(t, r.MemberID)
		}
		asg := syncAll(t, b, "g", res)
		require.Equal(t, seq(6), ownedPartitions(t, asg, "events"))
		for _, a := range asg {
			require.Len(t, a.Partitions["events"], 2)
		}
		for _, r := range res {
			require.NoError(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: r.Generation, MemberID: r.MemberID}))
		}
		d, err := gc.DescribeGroup("g")
		require.NoError(t, err)
		require.Equal(t, GroupStable, d.State)
		require.Len(t, d.Members, 3)
		require.Equal(t, "test", d.Members[0].ClientID)
		require.Equal(t, []GroupListing{{Group: "g", ProtocolType: "consumer", State: GroupStable}}, gc.ListGroups())
		require.Empty(t, gc.ListGroups(GroupEmpty))

		// A follower rejoining with the same metadata changes nothing.
		var follower JoinResult
		for _, r := range res {
			if r.MemberID != r.LeaderID {
				follower = r
			}
		}
		again, err := gc.Join(ctx, consumerJoin("g", follower.MemberID, "", "events"))
		require.NoError(t, err)
		require.Equal(t, follower.Generation, again.Generation)
		require.Empty(t, again.Members)

		// One leaves: the others learn it from their heartbeats.
		errs, err := gc.Leave(ctx, "g", MemberIdentity{MemberID: res[2].MemberID})
		require.NoError(t, err)
		require.Equal(t, []error{nil}, errs)
		err = gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID})
		require.ErrorIs(t, err, ErrRebalanceInProgress)
		res2 := joinAll(t, gc, consumerJoin("g", res[0].MemberID, "", "events"), consumerJoin("g", res[1].MemberID, "", "events"))
		require.Equal(t, int32(2), res2[0].Generation)
		asg2 := syncAll(t, b, "g", res2)
		require.Equal(t, seq(6), ownedPartitions(t, asg2, "events"))

		errs, err = gc.Leave(ctx, "g", MemberIdentity{MemberID: res[0].MemberID}, MemberIdentity{MemberID: res[1].MemberID}, MemberIdentity{MemberID: "nobody"})
		require.NoError(t, err)
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.ErrorIs(t, errs[2], ErrUnknownMemberID)
		d, err = gc.DescribeGroup("g")
		require.NoError(t, err)
		require.Equal(t, GroupEmpty, d.State)
		require.Equal(t, int32(3), d.Generation, "the last leave ended a generation")
		require.Empty(t, d.Members)
	})
}

// TestGroupFollowerWaitsForLeader checks that a follower's Sync blocks
// until the leader's arrives.
func TestGroupFollowerWaitsForLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{}, 2)
		defer b.Close()
		gc := b.Groups()
		leader, err := gc.Join(ctx, consumerJoin("g", "", "", "events"))
		require.NoError(t, err)
		_, err = gc.Sync(ctx, SyncRequest{Group: "g", Generation: leader.Generation, MemberID: leader.MemberID})
		require.NoError(t, err)
		// A second member: the leader rejoins on its next heartbeat.
		var follower JoinResult
		var wg sync.WaitGroup
		wg.Go(func() { follower, err = gc.Join(ctx, consumerJoin("g", "", "", "events")) })
		synctest.Wait()
		require.ErrorIs(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: leader.Generation, MemberID: leader.MemberID}), ErrRebalanceInProgress)
		leader, lerr := gc.Join(ctx, consumerJoin("g", leader.MemberID, "", "events"))
		require.NoError(t, lerr)
		wg.Wait()
		require.NoError(t, err)
		require.Equal(t, leader.MemberID, leader.LeaderID)
		require.Equal(t, leader.Generation, follower.Generation)

		var got []byte
		var serr error
		wg.Go(func() {
			got, serr = gc.Sync(ctx, SyncRequest{Group: "g", Generation: follower.Generation, MemberID: follower.MemberID})
		})
		synctest.Wait()
		d, _ := gc.DescribeGroup("g")
		require.Equal(t, GroupCompletingRebalance, d.State, "the follower waits for the leader")
		_, err = gc.Sync(ctx, SyncRequest{Group: "g", Generation: leader.Generation, MemberID: leader.MemberID,
			Assignments: map[string][]byte{follower.MemberID: []byte("for you")}})
		require.NoError(t, err)
		wg.Wait()
		require.NoError(t, serr)
		require.Equal(t, []byte("for you"), got)
	})
}

// TestGroupSessionTimeout checks that a member that stops heartbeating is
// removed after its session timeout, and that the group reassigns its
// partitions.
func TestGroupSessionTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{GroupInitialRebalanceDelay: 100 * time.Millisecond}, 6)
		defer b.Close()
		gc := b.Groups()
		res := joinAll(t, gc, consumerJoin("g", "", "", "events"), consumerJoin("g", "", "", "events"))
		syncAll(t, b, "g", res)
		alive, crashed := res[0], res[1]
		synced := time.Now()
		var rebalancedAt time.Duration
		for range 10 {
			time.Sleep(3 * time.Second)
			err := gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: alive.Generation, MemberID: alive.MemberID})
			if errors.Is(err, ErrRebalanceInProgress) {
				rebalancedAt = time.Since(synced)
				break
			}
			require.NoError(t, err)
		}
		require.Equal(t, 12*time.Second, rebalancedAt, "noticed at the first heartbeat (every 3 s) after the 10 s session timeout")
		res2 := joinAll(t, gc, consumerJoin("g", alive.MemberID, "", "events"))
		require.Equal(t, alive.Generation+1, res2[0].Generation)
		asg := syncAll(t, b, "g", res2)
		require.Equal(t, seq(6), asg[alive.MemberID].Partitions["events"], "the survivor took over every partition")
		err := gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: crashed.Generation, MemberID: crashed.MemberID})
		require.ErrorIs(t, err, ErrUnknownMemberID)
	})
}

// TestGroupRebalanceTimeout checks that a rebalance waits for members at
// most the rebalance timeout, then goes on without those that did not
// join again.
func TestGroupRebalanceTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{GroupInitialRebalanceDelay: 100 * time.Millisecond}, 4)
		defer b.Close()
		gc := b.Groups()
		res := joinAll(t, gc, consumerJoin("g", "", "", "events"), consumerJoin("g", "", "", "events"))
		syncAll(t, b, "g", res)
		var leader, slow JoinResult
		for _, r := range res {
			if r.MemberID == r.LeaderID {
				leader = r
			} else {
				slow = r
			}
		}
		// The leader asks for a rebalance; the other member keeps
		// heartbeating (so its session lives) but never joins again.
		start := time.Now()
		done := make(chan JoinResult)
		go func() {
			r, err := gc.Join(ctx, consumerJoin("g", leader.MemberID, "", "events"))
			noErrorInGoroutine(t, err)
			done <- r
		}()
		var r JoinResult
	wait:
		for {
			select {
			case r = <-done:
				break wait
			case <-time.After(1500 * time.Millisecond):
				err := gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: slow.Generation, MemberID: slow.MemberID})
				require.ErrorIs(t, err, ErrRebalanceInProgress)
			}
		}
		require.Equal(t, 20*time.Second, time.Since(start), "the rebalance timeout")
		require.Len(t, r.Members, 1, "the slow member was dropped")
		require.ErrorIs(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: slow.Generation, MemberID: slow.MemberID}), ErrUnknownMemberID)
	})
}

// noErrorInGoroutine fails t from a goroutine other than the test's.
func noErrorInGoroutine(t testing.TB, err error) {
	if err != nil {
		t.Error(err)
	}
}

// TestGroupZombieFenced checks that commits are fenced by generation and
// membership, as Kafka fences them: a commit from the current generation
// while a rebalance is being prepared is taken, one from a member that
// joined the next generation but has not synced is refused with
// ErrRebalanceInProgress, one from the old generation after that with
// ErrIllegalGeneration, and one from a removed member with
// ErrUnknownMemberID.
func TestGroupZombieFenced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{GroupInitialRebalanceDelay: 100 * time.Millisecond}, 4)
		defer b.Close()
		gc := b.Groups()
		res := joinAll(t, gc, consumerJoin("g", "", "", "events"), consumerJoin("g", "", "", "events"), consumerJoin("g", "", "", "events"))
		syncAll(t, b, "g", res)
		a, c, gone := res[0], res[1], res[2]
		commit := func(r JoinResult, gen int32, offset int64) error {
			return gc.CommitOffsets(ctx, CommitRequest{Group: "g", Generation: gen, MemberID: r.MemberID,
				Offsets: map[string]map[int32]OffsetAndMetadata{"events": {0: {Offset: offset, LeaderEpoch: -1}}}})
		}
		require.NoError(t, commit(a, a.Generation, 1))

		_, errs := gc.Leave(ctx, "g", MemberIdentity{MemberID: gone.MemberID})
		require.NoError(t, errs)
		require.NoError(t, commit(a, a.Generation, 2), "PreparingRebalance: the generation still holds")

		var cRes JoinResult
		var wg sync.WaitGroup
		wg.Go(func() {
			var err error
			cRes, err = gc.Join(ctx, consumerJoin("g", c.MemberID, "", "events"))
			noErrorInGoroutine(t, err)
		})
		aRes, err := gc.Join(ctx, consumerJoin("g", a.MemberID, "", "events"))
		require.NoError(t, err)
		wg.Wait()
		require.Equal(t, a.Generation+1, aRes.Generation)
		require.ErrorIs(t, commit(a, aRes.Generation, 3), ErrRebalanceInProgress, "joined, not synced")
		require.ErrorIs(t, commit(a, a.Generation, 3), ErrIllegalGeneration, "a zombie of the old generation")
		require.ErrorIs(t, commit(gone, gone.Generation, 3), ErrUnknownMemberID, "a removed member")
		require.ErrorIs(t, gc.CommitOffsets(ctx, CommitRequest{Group: "g", Generation: -1,
			Offsets: map[string]map[int32]OffsetAndMetadata{"events": {0: {Offset: 9}}}}), ErrUnknownMemberID,
			"a commit from outside the group while it has members")
		syncAll(t, b, "g", []JoinResult{aRes, cRes})
		require.NoError(t, commit(a, aRes.Generation, 4))
		got, err := gc.FetchOffsets(ctx, "g", nil)
		require.NoError(t, err)
		require.Equal(t, int64(4), got["events"][0].Offset, "no refused commit got through")
	})
}

// TestGroupStaticMemberRestart checks KIP-345: a static member that
// restarts (joins with its instance id and no member id) takes over its
// old place and assignment without a rebalance; its old incarnation is
// fenced.
func TestGroupStaticMemberRestart(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("skipAssignment=%v", skip), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				b := groupTestBroker(t, t.TempDir(), Options{GroupInitialRebalanceDelay: 100 * time.Millisecond}, 4)
				defer b.Close()
				gc := b.Groups()
				res := joinAll(t, gc, consumerJoin("g", "", "a", "events"), consumerJoin("g", "", "b", "events"))
				asg := syncAll(t, b, "g", res)
				var leader, other JoinResult
				for _, r := range res {
					if r.LeaderID == r.MemberID {
						leader = r
					} else {
						other = r
					}
				}
				instance := map[string]string{res[0].MemberID: "a", res[1].MemberID: "b"}

				// The leader's process restarts.
				req := consumerJoin("g", "", instance[leader.MemberID], "events")
				req.SupportsSkipAssignment = skip
				back, err := gc.Join(ctx, req)
				require.NoError(t, err)
				require.NotEqual(t, leader.MemberID, back.MemberID)
				require.Equal(t, leader.Generation, back.Generation, "no rebalance")
				if skip {
					require.Equal(t, back.MemberID, back.LeaderID)
					require.True(t, back.SkipAssignment)
					require.Len(t, back.Members, 2)
				} else {
					require.Equal(t, leader.MemberID, back.LeaderID, "told of the old leader id, so it does not assign")
					require.Empty(t, back.Members)
				}
				raw, err := gc.Sync(ctx, SyncRequest{Group: "g", Generation: back.Generation, MemberID: back.MemberID, InstanceID: instance[leader.MemberID]})
				require.NoError(t, err)
				got, err := DecodeAssignment(raw)
				require.NoError(t, err)
				require.Equal(t, asg[leader.MemberID], got, "its old assignment")
				require.NoError(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: other.Generation, MemberID: other.MemberID, InstanceID: instance[other.MemberID]}),
					"the other member did not notice")
				err = gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: leader.Generation, MemberID: leader.MemberID, InstanceID: instance[leader.MemberID]})
				require.ErrorIs(t, err, ErrFencedInstanceID)
				err = gc.CommitOffsets(ctx, CommitRequest{Group: "g", Generation: leader.Generation, MemberID: leader.MemberID, InstanceID: instance[leader.MemberID],
					Offsets: map[string]map[int32]OffsetAndMetadata{"events": {0: {Offset: 1}}}})
				require.ErrorIs(t, err, ErrFencedInstanceID)
				d, err := gc.DescribeGroup("g")
				require.NoError(t, err)
				require.Equal(t, GroupStable, d.State)

				// A restart during a rebalance takes the old member's place in
				// it.
				var otherRes JoinResult
				var wg sync.WaitGroup
				wg.Go(func() {
					var err error
					otherRes, err = gc.Join(ctx, consumerJoin("g", other.MemberID, instance[other.MemberID], "events", "other"))
					noErrorInGoroutine(t, err)
				})
				synctest.Wait()
				again, err := gc.Join(ctx, consumerJoin("g", "", instance[leader.MemberID], "events"))
				require.NoError(t, err)
				wg.Wait()
				require.Equal(t, leader.Generation+1, again.Generation)
				require.Equal(t, again.Generation, otherRes.Generation)
				require.NotEqual(t, back.MemberID, again.MemberID)
				require.ErrorIs(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: again.Generation, MemberID: back.MemberID, InstanceID: instance[leader.MemberID]}),
					ErrFencedInstanceID)
				syncAll(t, b, "g", []JoinResult{again, otherRes})
			})
		})
	}
}

// TestGroupMemberIDRequired checks KIP-394: a new member is handed an id
// to join with; an id not used within the session timeout expires.
func TestGroupMemberIDRequired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{}, 2)
		defer b.Close()
		gc := b.Groups()
		req := consumerJoin("g", "", "", "events")
		req.RequireKnownMemberID = true
		first, err := gc.Join(ctx, req)
		require.ErrorIs(t, err, ErrMemberIDRequired)
		require.NotEmpty(t, first.MemberID)
		req.MemberID = first.MemberID
		r, err := gc.Join(ctx, req)
		require.NoError(t, err)
		require.Equal(t, first.MemberID, r.MemberID)
		require.Equal(t, r.MemberID, r.LeaderID)

		req.MemberID = ""
		second, err := gc.Join(ctx, req)
		require.ErrorIs(t, err, ErrMemberIDRequired)
		time.Sleep(req.SessionTimeout + time.Second)
		req.MemberID = second.MemberID
		_, err = gc.Join(ctx, req)
		require.ErrorIs(t, err, ErrUnknownMemberID, "the pending id expired")
	})
}

// TestGroupJoinCanceled checks that a new member whose first Join is
// canceled does not stay in the group.
func TestGroupJoinCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := groupTestBroker(t, t.TempDir(), Options{GroupInitialRebalanceDelay: time.Second}, 2)
		defer b.Close()
		gc := b.Groups()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := gc.Join(ctx, consumerJoin("g", "", "", "events"))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		d, err := gc.DescribeGroup("g")
		require.NoError(t, err)
		require.Empty(t, d.Members)
		require.Equal(t, GroupEmpty, d.State)
	})
}

// TestGroupBrokerClose checks that a Join waiting for a rebalance returns
// when the broker closes, and that calls fail afterwards.
func TestGroupBrokerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := groupTestBroker(t, t.TempDir(), Options{GroupInitialRebalanceDelay: time.Minute}, 2)
		gc := b.Groups()
		var err error
		var wg sync.WaitGroup
		wg.Go(func() { _, err = gc.Join(ctx, consumerJoin("g", "", "", "events")) })
		synctest.Wait()
		require.NoError(t, b.Close())
		wg.Wait()
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, err, ErrCoordinatorNotAvailable)
		_, err = gc.Join(ctx, consumerJoin("g", "", "", "events"))
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, gc.CommitOffsets(ctx, CommitRequest{Group: "g", Generation: -1}), ErrClosed)
	})
}

// TestGroupBadInput checks the errors of requests the coordinator
// refuses.
func TestGroupBadInput(t *testing.T) {
	ctx := context.Background()
	b := groupTestBroker(t, t.TempDir(), Options{}, 2)
	defer b.Close()
	gc := b.Groups()

	_, err := gc.Join(ctx, consumerJoin("", "", "", "events"))
	require.ErrorIs(t, err, ErrInvalidGroupID)
	req := consumerJoin("g", "", "", "events")
	req.SessionTimeout = time.Second
	_, err = gc.Join(ctx, req)
	require.ErrorIs(t, err, ErrInvalidSessionTimeout)
	req.SessionTimeout = time.Hour
	_, err = gc.Join(ctx, req)
	require.ErrorIs(t, err, ErrInvalidSessionTimeout)
	req = consumerJoin("g", "", "", "events")
	req.Protocols = nil
	_, err = gc.Join(ctx, req)
	require.ErrorIs(t, err, ErrInconsistentGroupProtocol)

	// Unknown group: members are unknown, the group is not found.
	_, err = gc.Join(ctx, consumerJoin("nope", "m-1", "", "events"))
	require.ErrorIs(t, err, ErrUnknownMemberID)
	_, err = gc.Sync(ctx, SyncRequest{Group: "nope", MemberID: "m-1"})
	require.ErrorIs(t, err, ErrUnknownMemberID)
	require.ErrorIs(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "nope", MemberID: "m-1"}), ErrUnknownMemberID)
	errs, err := gc.Leave(ctx, "nope", MemberIdentity{MemberID: "m-1"})
	require.NoError(t, err)
	require.ErrorIs(t, errs[0], ErrUnknownMemberID)
	_, err = gc.DescribeGroup("nope")
	require.ErrorIs(t, err, ErrGroupIDNotFound)
	require.ErrorIs(t, gc.DeleteGroups(ctx, "nope")[0], ErrGroupIDNotFound)
	require.ErrorIs(t, gc.DeleteOffsets(ctx, "nope", nil), ErrGroupIDNotFound)
	err = gc.CommitOffsets(ctx, CommitRequest{Group: "nope", Generation: 1, MemberID: "m-1",
		Offsets: map[string]map[int32]OffsetAndMetadata{"events": {0: {Offset: 1}}}})
	require.ErrorIs(t, err, ErrIllegalGeneration)
	got, err := gc.FetchOffsets(ctx, "nope", nil)
	require.NoError(t, err)
	require.Empty(t, got)
	require.Empty(t, gc.ListGroups(), "no request above created a group")

	// A real group, and requests that do not fit it.
	r, err := gc.Join(ctx, consumerJoin("g", "", "", "events"))
	require.NoError(t, err)
	other := consumerJoin("g", r.MemberID, "", "events")
	other.ProtocolType = "connect"
	_, err = gc.Join(ctx, other)
	require.ErrorIs(t, err, ErrInconsistentGroupProtocol)
	other = consumerJoin("g", r.MemberID, "", "events")
	other.Protocols = []GroupProtocol{{Name: "roundrobin"}}
	_, err = gc.Join(ctx, other)
	require.ErrorIs(t, err, ErrInconsistentGroupProtocol, "no protocol in common")
	_, err = gc.Join(ctx, consumerJoin("g", "m-unknown", "", "events"))
	require.ErrorIs(t, err, ErrUnknownMemberID)
	_, err = gc.Sync(ctx, SyncRequest{Group: "g", Generation: r.Generation + 1, MemberID: r.MemberID})
	require.ErrorIs(t, err, ErrIllegalGeneration)
	_, err = gc.Sync(ctx, SyncRequest{Group: "g", Generation: r.Generation, MemberID: "m-unknown"})
	require.ErrorIs(t, err, ErrUnknownMemberID)
	_, err = gc.Sync(ctx, SyncRequest{Group: "g", Generation: r.Generation, MemberID: r.MemberID, Protocol: "roundrobin"})
	require.ErrorIs(t, err, ErrInconsistentGroupProtocol)
	require.ErrorIs(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: r.Generation - 1, MemberID: r.MemberID}), ErrIllegalGeneration)
	require.ErrorIs(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: r.Generation, MemberID: r.MemberID, InstanceID: "x"}), ErrUnknownMemberID)
	require.ErrorIs(t, gc.DeleteGroups(ctx, "g")[0], ErrNonEmptyGroup)
	_, err = gc.Sync(ctx, SyncRequest{Group: "g", Generation: r.Generation, MemberID: r.MemberID})
	require.NoError(t, err, "nothing refused above broke the group")
	require.NoError(t, gc.Heartbeat(ctx, HeartbeatRequest{Group: "g", Generation: r.Generation, MemberID: r.MemberID}))
}

// TestGroupMaxSize checks Options.GroupMaxSize.
func TestGroupMaxSize(t *testing.T) {
	ctx := context.Background()
	b := groupTestBroker(t, t.TempDir(), Options{GroupMaxSize: 1}, 2)
	defer b.Close()
	gc := b.Groups()
	r, err := gc.Join(ctx, consumerJoin("g", "", "", "events"))
	require.NoError(t, err)
	_, err = gc.Join(ctx, consumerJoin("g", "", "", "events"))
	require.ErrorIs(t, err, ErrGroupMaxSizeReached)
	again, err := gc.Join(ctx, consumerJoin("g", r.MemberID, "", "events"))
	require.NoError(t, err, "a member already in is not turned away")
	require.Equal(t, r.Generation, again.Generation)
}

// TestOptionsGroupValidation checks that bad group options name their
// field.
func TestOptionsGroupValidation(t *testing.T) {
	for _, o := range []Options{
		{OffsetsTopicPartitions: -1},
		{OffsetsRetention: -2},
		{GroupInitialRebalanceDelay: -2},
		{GroupMinSessionTimeout: time.Minute, GroupMaxSessionTimeout: time.Second},
		{GroupMaxSize: -1},
		{OffsetMetadataMaxBytes: -1},
	} {
		_, err := Open(t.TempDir(), o)
		require.ErrorIs(t, err, ErrInvalidConfig)
	}
}

// BenchmarkGroupRebalance measures the coordinator's side of a rebalance
// of 8 members over 64 partitions: all join (with new metadata, which
// forces the rebalance), the leader sends a precomputed assignment, all
// sync.
func BenchmarkGroupRebalance(b *testing.B) {
	ctx := context.Background()
	br := groupTestBroker(b, b.TempDir(), Options{GroupInitialRebalanceDelay: 100 * time.Millisecond}, 64)
	defer br.Close()
	gc := br.Groups()
	const members = 8
	ids := make([]string, members)
	reqs := make([]JoinRequest, members)
	for i := range reqs {
		reqs[i] = consumerJoin("bench", "", "", "events")
	}
	res := joinAll(b, gc, reqs...)
	var assignments map[string][]byte
	for i, r := range res {
		ids[i] = r.MemberID
		if r.LeaderID == r.MemberID {
			var err error
			assignments, err = AssignGroup(RangeAssignor{}, r.Members, brokerPartitions(br))
			require.NoError(b, err)
		}
	}
	protocols := make([][]GroupProtocol, 2)
	for k := range protocols {
		protocols[k] = []GroupProtocol{NewGroupProtocol(RangeAssignor{}, Subscription{Topics: []string{"events"}, Generation: int32(k)})}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		var wg sync.WaitGroup
		for i := range members {
			wg.Go(func() {
				req := reqs[i]
				req.MemberID = ids[i]
				req.Protocols = protocols[n%2]
				r, err := gc.Join(ctx, req)
				if err != nil {
					b.Error(err)
					return
				}
				sreq := SyncRequest{Group: "bench", Generation: r.Generation, MemberID: r.MemberID}
				if r.LeaderID == r.MemberID {
					sreq.Assignments = assignments
				}
				if _, err := gc.Sync(ctx, sreq); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
}
