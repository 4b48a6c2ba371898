package kafka

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// eventually waits until cond holds; it fails the test with cond's last
// explanation after testTimeout.
func eventually(t *testing.T, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// assignments returns the partitions of topic each member of a described
// "consumer" group is assigned.
func assignments(g kadm.DescribedGroup, topic string) map[string][]int32 {
	out := map[string][]int32{}
	for _, m := range g.Members {
		out[m.MemberID] = nil
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				if t.Topic == topic {
					out[m.MemberID] = append(out[m.MemberID], t.Partitions...)
				}
			}
		}
	}
	return out
}

// waitBalanced waits until group is Stable with members members that
// share topic's partitions evenly, and returns the described group.
func waitBalanced(t *testing.T, adm *kadm.Client, group, topic string, members, partitions int) kadm.DescribedGroup {
	t.Helper()
	var g kadm.DescribedGroup
	ctx := testContext(t)
	eventually(t, func() (bool, string) {
		described, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		g = described[group]
		as := assignments(g, topic)
		seen := map[int32]bool{}
		for _, ps := range as {
			if len(ps) != partitions/members {
				return false, fmt.Sprintf("group %s is %s with assignments %v", group, g.State, as)
			}
			for _, p := range ps {
				seen[p] = true
			}
		}
		return g.State == "Stable" && len(as) == members && len(seen) == partitions,
			fmt.Sprintf("group %s is %s with assignments %v", group, g.State, as)
	})
	return g
}

// consumed is a record and the member that consumed it.
type consumed struct {
	member int
	rec    *kgo.Record
}

// pollAll polls each client until ctx ends, sending what they consume to
// the returned channel. The returned function stops the polling and waits
// for it.
func pollAll(clients ...*kgo.Client) (chan consumed, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan consumed, 1024)
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Go(func() {
			for {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil || fs.IsClientClosed() {
					return
				}
				fs.EachRecord(func(r *kgo.Record) {
					select {
					case ch <- consumed{i, r}:
					case <-ctx.Done():
					}
				})
			}
		})
	}
	return ch, func() { cancel(); wg.Wait() }
}

// appendValues appends records with the given values to a partition.
func appendValues(t *testing.T, e *testEnv, topic string, p int32, values ...string) {
	t.Helper()
	recs := make([]commitlog.Record, len(values))
	for i, v := range values {
		recs[i] = commitlog.Record{Value: []byte(v)}
	}
	if _, err := partition(t, e, topic, p).Append(recs...); err != nil {
		t.Fatal(err)
	}
}

// TestGroupSplitsPartitions runs three franz-go consumers with default
// settings in one group: they split the six partitions two each, and every
// record produced is consumed once, by the member assigned its partition.
func TestGroupSplitsPartitions(t *testing.T) {
	e := newEnv(t, envOptions{})
	const topic, group, partitions, members, n = "split", "split-group", 6, 3, 300
	e.createTopic(topic, commitlog.TopicConfig{Partitions: partitions})
	ctx := testContext(t)

	var clients []*kgo.Client
	for range members {
		clients = append(clients, e.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic)))
	}
	recs, stop := pollAll(clients...)
	defer stop()
	adm := kadm.NewClient(e.client())
	g := waitBalanced(t, adm, group, topic, members, partitions)
	if g.ProtocolType != "consumer" || g.Protocol != "cooperative-sticky" {
		t.Fatalf("group protocol %q/%q", g.ProtocolType, g.Protocol)
	}
	owner := map[int32]string{}
	for id, ps := range assignments(g, topic) {
		for _, p := range ps {
			owner[p] = id
		}
	}

	producer := e.client()
	var batch []*kgo.Record
	for i := range n {
		batch = append(batch, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	if err := producer.ProduceSync(ctx, batch...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	type at struct {
		p int32
		o int64
	}
	seen := map[at]bool{}
	consumerOf := map[int32]int{}
	for len(seen) < n {
		select {
		case c := <-recs:
			k := at{c.rec.Partition, c.rec.Offset}
			if seen[k] {
				t.Fatalf("partition %d offset %d consumed twice", k.p, k.o)
			}
			seen[k] = true
			if m, ok := consumerOf[k.p]; ok && m != c.member {
				t.Fatalf("partition %d consumed by members %d and %d", k.p, m, c.member)
			}
			consumerOf[k.p] = c.member
		case <-ctx.Done():
			t.Fatalf("consumed %d of %d records", len(seen), n)
		}
	}
	// Each member consumed the partitions the group assigned it.
	memberIDs := make([]string, members)
	for i, cl := range clients {
		memberIDs[i], _ = cl.GroupMetadata()
	}
	for p, m := range consumerOf {
		if owner[p] != memberIDs[m] {
			t.Fatalf("partition %d consumed by %s, assigned to %s", p, memberIDs[m], owner[p])
		}
	}
	if len(consumerOf) != partitions {
		t.Fatalf("records consumed from %d partitions, want %d", len(consumerOf), partitions)
	}
}

// TestGroupCommitResume consumes with a default (autocommitting) client,
// closes it, and checks that a new client in the same group resumes from
// the committed offsets: it gets only what was produced since.
func TestGroupCommitResume(t *testing.T) {
	e := newEnv(t, envOptions{})
	const topic, group = "resume", "resume-group"
	e.createTopic(topic, commitlog.TopicConfig{Partitions: 3})
	ctx := testContext(t)
	producer := e.client()
	produce := func(from, to int) {
		t.Helper()
		var batch []*kgo.Record
		for i := from; i < to; i++ {
			batch = append(batch, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))})
		}
		if err := producer.ProduceSync(ctx, batch...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consume := func(cl *kgo.Client, want int) map[string]bool {
		t.Helper()
		got := map[string]bool{}
		recs, stop := pollAll(cl)
		defer stop()
		for len(got) < want {
			select {
			case c := <-recs:
				if got[string(c.rec.Value)] {
					t.Fatalf("record %s consumed twice", c.rec.Value)
				}
				got[string(c.rec.Value)] = true
			case <-ctx.Done():
				t.Fatalf("consumed %d of %d records", len(got), want)
			}
		}
		return got
	}

	produce(0, 30)
	first := e.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic))
	consume(first, 30)
	first.Close() // commits what was polled, then leaves the group

	adm := kadm.NewClient(e.client())
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for p := range int32(3) {
		o, ok := offsets.Lookup(topic, p)
		if ok && o.Err != nil {
			t.Fatal(o.Err)
		}
		if want := partition(t, e, topic, p).EndOffset(); want > 0 && (!ok || o.At != want) {
			t.Fatalf("partition %d: committed %+v, want %d", p, o, want)
		}
		total += o.At
	}
	if total != 30 {
		t.Fatalf("committed %d records in all, want 30", total)
	}
	if g, _ := adm.DescribeGroups(ctx, group); g[group].State != "Empty" {
		t.Fatalf("after the member left the group is %q", g[group].State)
	}

	produce(30, 50)
	second := e.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic))
	got := consume(second, 20)
	for i := 30; i < 50; i++ {
		if !got[strconv.Itoa(i)] {
			t.Fatalf("record %d not consumed after the restart; got %v", i, got)
		}
	}
}

// TestGroupMemberLeaves checks that a member that leaves (a client that
// closes) makes the group rebalance: the one left consumes every partition.
func TestGroupMemberLeaves(t *testing.T) {
	e := newEnv(t, envOptions{})
	const topic, group, partitions = "leave", "leave-group", 4
	e.createTopic(topic, commitlog.TopicConfig{Partitions: partitions})
	stays := e.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic))
	leaves := e.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic))
	recs, stop := pollAll(stays, leaves)
	defer stop()
	adm := kadm.NewClient(e.client())
	before := waitBalanced(t, adm, group, topic, 2, partitions)
	leaverID, _ := leaves.GroupMetadata()
	if len(assignments(before, topic)[leaverID]) != partitions/2 {
		t.Fatalf("the leaving member has %v", assignments(before, topic))
	}

	leaves.Close()
	after := waitBalanced(t, adm, group, topic, 1, partitions)
	stayerID, _ := stays.GroupMetadata()
	if _, ok := assignments(after, topic)[stayerID]; !ok {
		t.Fatalf("the member left is not %s: %v", stayerID, assignments(after, topic))
	}

	ctx := testContext(t)
	for p := range int32(partitions) {
		appendValues(t, e, topic, p, "after-"+strconv.Itoa(int(p)))
	}
	got := map[int32]bool{}
	for len(got) < partitions {
		select {
		case c := <-recs:
			if c.member != 0 {
				t.Fatalf("a record reached the member that left: %s", c.rec.Value)
			}
			if string(c.rec.Value) == "after-"+strconv.Itoa(int(c.rec.Partition)) {
				got[c.rec.Partition] = true
			}
		case <-ctx.Done():
			t.Fatalf("the remaining member consumed from partitions %v of %d", got, partitions)
		}
	}
}

// TestGroupAdmin drives the group admin APIs through kadm: ListGroups with
// and without a state filter, DescribeGroups of a live and an unknown
// group, FetchOffsets, OffsetDelete (refused for the subscribed topic) and
// DeleteGroups (refused while the group has members).
func TestGroupAdmin(t *testing.T) {
	e := newEnv(t, envOptions{})
	const topic, other, group = "adm", "adm-other", "adm-group"
	e.createTopic(topic, commitlog.TopicConfig{Partitions: 2})
	e.createTopic(other, commitlog.TopicConfig{})
	ctx := testContext(t)
	adm := kadm.NewClient(e.client())

	member := e.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit())
	appendValues(t, e, topic, 0, "a", "b", "c", "d", "e")
	recs, stop := pollAll(member)
	for range 5 {
		select {
		case <-recs:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	stop()
	if err := member.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	// A member may commit any partition, subscribed or not.
	var commitErr error
	member.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{other: {0: {Epoch: -1, Offset: 3}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			commitErr = err
			if err != nil {
				return
			}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					commitErr = cmp.Or(commitErr, kerr.ErrorForCode(rp.ErrorCode))
				}
			}
		})
	if commitErr != nil {
		t.Fatal(commitErr)
	}
	waitBalanced(t, adm, group, topic, 1, 2)

	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l := listed[group]; l.State != "Stable" || l.ProtocolType != "consumer" || l.Coordinator != 1 {
		t.Fatalf("listed %+v", listed)
	}
	if listed, err = adm.ListGroups(ctx, "Empty", "Dead"); err != nil || len(listed) != 0 {
		t.Fatalf("groups Empty or Dead: %v, %v", listed, err)
	}
	if listed, err = adm.ListGroups(ctx, "stable"); err != nil || len(listed) != 1 {
		t.Fatalf("groups stable: %v, %v", listed, err)
	}

	described, err := adm.DescribeGroups(ctx, group, "no-such-group")
	if err != nil {
		t.Fatal(err)
	}
	g := described[group]
	memberID, _ := member.GroupMetadata()
	if g.Err != nil || g.State != "Stable" || g.Protocol != "cooperative-sticky" || len(g.Members) != 1 ||
		g.Members[0].MemberID != memberID || g.Members[0].ClientHost != "/127.0.0.1" || g.Members[0].ClientID != "kgo" {
		t.Fatalf("described %+v", g)
	}
	if meta, ok := g.Members[0].Join.AsConsumer(); !ok || !slices.Equal(meta.Topics, []string{topic}) {
		t.Fatalf("member metadata %+v", g.Members[0].Join)
	}
	if len(g.AuthorizedOperations) != 3 {
		t.Fatalf("authorized operations %v", g.AuthorizedOperations)
	}
	if d := described["no-such-group"]; d.Err != nil || d.State != "Dead" || len(d.Members) != 0 {
		t.Fatalf("unknown group described %+v", d)
	}

	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offsets.Lookup(topic, 0); o.At != 5 || o.Err != nil {
		t.Fatalf("committed %s/0: %+v", topic, o)
	}
	if o, _ := offsets.Lookup(other, 0); o.At != 3 || o.Err != nil {
		t.Fatalf("committed %s/0: %+v", other, o)
	}

	deleted, err := adm.DeleteOffsets(ctx, group, kadm.TopicsSet{topic: {0: {}}, other: {0: {}}, "no-such-topic": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if err, _ := deleted.Lookup(topic, 0); !errors.Is(err, kerr.GroupSubscribedToTopic) {
		t.Fatalf("deleting the offset of a subscribed topic: %v", err)
	}
	if err, ok := deleted.Lookup(other, 0); !ok || err != nil {
		t.Fatalf("deleting the offset of an unsubscribed topic: %v", err)
	}
	if err, _ := deleted.Lookup("no-such-topic", 0); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("deleting the offset of an unknown topic: %v", err)
	}
	if offsets, err = adm.FetchOffsets(ctx, group); err != nil {
		t.Fatal(err)
	}
	if _, ok := offsets.Lookup(other, 0); ok {
		t.Fatalf("offset of %s/0 still committed: %v", other, offsets)
	}
	if _, err := adm.DeleteOffsets(ctx, "no-such-group", kadm.TopicsSet{topic: {0: {}}}); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Fatalf("deleting offsets of an unknown group: %v", err)
	}

	dels, err := adm.DeleteGroups(ctx, group, "no-such-group")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(dels[group].Err, kerr.NonEmptyGroup) || !errors.Is(dels["no-such-group"].Err, kerr.GroupIDNotFound) {
		t.Fatalf("deleting groups: %+v", dels)
	}

	member.Close()
	if _, err := adm.DeleteGroup(ctx, group); err != nil {
		t.Fatal(err)
	}
	if listed, err = adm.ListGroups(ctx); err != nil || len(listed) != 0 {
		t.Fatalf("groups after the deletion: %v, %v", listed, err)
	}
	if offsets, err = adm.FetchOffsets(ctx, group); err != nil || len(offsets) != 0 {
		t.Fatalf("offsets after the deletion: %v, %v", offsets, err)
	}
}

// consumerMetadata is a "consumer" protocol subscription to topics.
func consumerMetadata(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Topics = topics
	return m.AppendTo(nil)
}

// joinRequest is a JoinGroup of the "consumer" type with the range
// protocol, a session timeout of 30s and a rebalance timeout of 60s.
func joinRequest(version int16, group, memberID string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = version
	req.Group = group
	req.MemberID = memberID
	req.SessionTimeoutMillis = 30000
	req.RebalanceTimeoutMillis = 60000
	req.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	p.Metadata = consumerMetadata("t")
	req.Protocols = append(req.Protocols, p)
	return req
}

func syncRequest(version int16, group string, generation int32, memberID string, assignments map[string][]byte) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = version
	req.Group = group
	req.Generation = generation
	req.MemberID = memberID
	if version >= 5 {
		req.ProtocolType, req.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
	}
	for id, a := range assignments {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = id, a
		req.GroupAssignment = append(req.GroupAssignment, ga)
	}
	return req
}

func commitRequest(version int16, group string, generation int32, memberID string, offsets map[string]map[int32]int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = version
	req.Group = group
	req.Generation = generation
	req.MemberID = memberID
	for _, topic := range slices.Sorted(maps.Keys(offsets)) {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		for _, p := range slices.Sorted(maps.Keys(offsets[topic])) {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, offsets[topic][p]
			rp.Metadata = kmsg.StringPtr("m" + strconv.Itoa(int(p)))
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// commitCodes flattens an OffsetCommit response to topic/partition -> code.
func commitCodes(resp *kmsg.OffsetCommitResponse) map[string]int16 {
	out := map[string]int16{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out[rt.Topic+"/"+strconv.Itoa(int(rp.Partition))] = rp.ErrorCode
		}
	}
	return out
}

// formGroup makes a one-member group with raw JoinGroup and SyncGroup v3,
// and returns the member id and generation.
func formGroup(t *testing.T, c *rawConn, group string) (string, int32) {
	t.Helper()
	join := roundTrip[*kmsg.JoinGroupResponse](c, joinRequest(3, group, ""), 1)
	if join.ErrorCode != errNone || join.LeaderID != join.MemberID || len(join.Members) != 1 {
		t.Fatalf("join: %+v", join)
	}
	sync := roundTrip[*kmsg.SyncGroupResponse](c, syncRequest(3, group, join.Generation, join.MemberID,
		map[string][]byte{join.MemberID: []byte("assignment")}), 2)
	if sync.ErrorCode != errNone || string(sync.MemberAssignment) != "assignment" {
		t.Fatalf("sync: %+v", sync)
	}
	return join.MemberID, join.Generation
}

// TestGroupProtocolVersions checks version-dependent behaviour and error
// codes of the group APIs on a raw connection.
func TestGroupProtocolVersions(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createTopic("t", commitlog.TopicConfig{Partitions: 3})
	t.Run("FindCoordinator", func(t *testing.T) {
		c := dialTo(t, e.addr)
		for v := int16(0); v <= 3; v++ {
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.Version = v
			req.CoordinatorKey = "g"
			resp := roundTrip[*kmsg.FindCoordinatorResponse](c, req, 1)
			if resp.ErrorCode != errNone || resp.NodeID != 1 || hostPort(resp.Host, resp.Port) != e.addr {
				t.Fatalf("v%d: %+v, want node 1 at %s", v, resp, e.addr)
			}
			if v == 0 {
				continue
			}
			req.CoordinatorType = coordinatorTransaction
			resp = roundTrip[*kmsg.FindCoordinatorResponse](c, req, 2)
			if resp.ErrorCode != errTransactionalIDAuthz || resp.NodeID != -1 {
				t.Fatalf("v%d transactional id: %+v", v, resp)
			}
		}
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version = 4
		req.CoordinatorKeys = []string{"g1", "g2"}
		resp := roundTrip[*kmsg.FindCoordinatorResponse](c, req, 3)
		if len(resp.Coordinators) != 2 || resp.Coordinators[1].Key != "g2" || resp.Coordinators[1].ErrorCode != errNone ||
			hostPort(resp.Coordinators[0].Host, resp.Coordinators[0].Port) != e.addr {
			t.Fatalf("v4: %+v", resp)
		}
		req.CoordinatorType = 7
		resp = roundTrip[*kmsg.FindCoordinatorResponse](c, req, 4)
		if resp.Coordinators[0].ErrorCode != errInvalidRequest {
			t.Fatalf("v4 key type 7: %+v", resp)
		}
	})

	t.Run("JoinGroup", func(t *testing.T) {
		c := dialTo(t, e.addr)
		// Before version 4 a new member joins at once.
		for _, v := range []int16{0, 1, 2, 3} {
			group := "join-v" + strconv.Itoa(int(v))
			resp := roundTrip[*kmsg.JoinGroupResponse](c, joinRequest(v, group, ""), 1)
			if resp.ErrorCode != errNone || resp.Generation != 1 || resp.MemberID == "" || resp.LeaderID != resp.MemberID ||
				resp.Protocol == nil || *resp.Protocol != "range" || len(resp.Members) != 1 {
				t.Fatalf("v%d: %+v", v, resp)
			}
		}
		// From version 4 it is asked to come back with the id it is given.
		resp := roundTrip[*kmsg.JoinGroupResponse](c, joinRequest(4, "join-v4", ""), 1)
		if resp.ErrorCode != errMemberIDRequired || resp.MemberID == "" || resp.Generation != -1 {
			t.Fatalf("v4 first join: %+v", resp)
		}
		resp = roundTrip[*kmsg.JoinGroupResponse](c, joinRequest(9, "join-v4", resp.MemberID), 2)
		if resp.ErrorCode != errNone || resp.Generation != 1 || *resp.ProtocolType != "consumer" || resp.SkipAssignment {
			t.Fatalf("v9 second join: %+v", resp)
		}
		// Bad requests.
		bad := joinRequest(5, "join-bad", "")
		bad.SessionTimeoutMillis = 10
		if resp := roundTrip[*kmsg.JoinGroupResponse](c, bad, 3); resp.ErrorCode != errInvalidSessionTimeout {
			t.Fatalf("session timeout 10ms: %+v", resp)
		}
		if resp := roundTrip[*kmsg.JoinGroupResponse](c, joinRequest(5, "", ""), 4); resp.ErrorCode != errInvalidGroupID {
			t.Fatalf("empty group id: %+v", resp)
		}
		if resp := roundTrip[*kmsg.JoinGroupResponse](c, joinRequest(7, "join-v3", "nobody"), 5); resp.ErrorCode != errUnknownMemberID ||
			resp.MemberID != "nobody" || resp.Protocol != nil {
			t.Fatalf("unknown member: %+v", resp)
		}
		other := joinRequest(5, "join-v3", "")
		other.ProtocolType = "connect"
		if resp := roundTrip[*kmsg.JoinGroupResponse](c, other, 6); resp.ErrorCode != errInconsistentGroupProtocol {
			t.Fatalf("other protocol type: %+v", resp)
		}
	})

	t.Run("SyncHeartbeatLeave", func(t *testing.T) {
		c := dialTo(t, e.addr)
		const group = "shl"
		id, gen := formGroup(t, c, group)
		if resp := roundTrip[*kmsg.SyncGroupResponse](c, syncRequest(5, group, gen, id, nil), 1); resp.ErrorCode != errNone ||
			string(resp.MemberAssignment) != "assignment" || *resp.ProtocolType != "consumer" || *resp.Protocol != "range" {
			t.Fatalf("sync v5 again: %+v", resp)
		}
		noProtocol := syncRequest(5, group, gen, id, nil)
		noProtocol.Protocol = nil
		if resp := roundTrip[*kmsg.SyncGroupResponse](c, noProtocol, 1); resp.ErrorCode != errInconsistentGroupProtocol {
			t.Fatalf("sync v5 without protocol: %+v", resp)
		}
		for _, g := range []string{group, "no-such-group"} {
			if resp := roundTrip[*kmsg.SyncGroupResponse](c, syncRequest(0, g, gen, "nobody", nil), 1); resp.ErrorCode != errUnknownMemberID {
				t.Fatalf("sync of an unknown member of %s: %+v", g, resp)
			}
		}
		if resp := roundTrip[*kmsg.SyncGroupResponse](c, syncRequest(4, group, gen+1, id, nil), 1); resp.ErrorCode != errIllegalGeneration {
			t.Fatalf("sync of another generation: %+v", resp)
		}

		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Group, hb.Generation, hb.MemberID = group, gen, id
		for v := int16(0); v <= 4; v++ {
			hb.Version = v
			if resp := roundTrip[*kmsg.HeartbeatResponse](c, hb, 1); resp.ErrorCode != errNone {
				t.Fatalf("heartbeat v%d: %+v", v, resp)
			}
		}
		hb.Generation = gen - 1
		if resp := roundTrip[*kmsg.HeartbeatResponse](c, hb, 1); resp.ErrorCode != errIllegalGeneration {
			t.Fatalf("heartbeat of an old generation: %+v", resp)
		}
		hb.Generation, hb.MemberID = gen, "nobody"
		if resp := roundTrip[*kmsg.HeartbeatResponse](c, hb, 1); resp.ErrorCode != errUnknownMemberID {
			t.Fatalf("heartbeat of an unknown member: %+v", resp)
		}

		// Versions 0-2 answer the member's error at the top.
		leave := kmsg.NewPtrLeaveGroupRequest()
		leave.Group = group
		for v := int16(0); v <= 2; v++ {
			leave.Version = v
			leave.MemberID = "nobody"
			if resp := roundTrip[*kmsg.LeaveGroupResponse](c, leave, 1); resp.ErrorCode != errUnknownMemberID {
				t.Fatalf("leave v%d of an unknown member: %+v", v, resp)
			}
		}
		// Version 3 and later answer each member.
		leave.Version = 4
		for _, m := range []string{"nobody", id} {
			lm := kmsg.NewLeaveGroupRequestMember()
			lm.MemberID = m
			leave.Members = append(leave.Members, lm)
		}
		resp := roundTrip[*kmsg.LeaveGroupResponse](c, leave, 1)
		if resp.ErrorCode != errNone || len(resp.Members) != 2 || resp.Members[0].MemberID != "nobody" ||
			resp.Members[0].ErrorCode != errUnknownMemberID || resp.Members[1].ErrorCode != errNone {
			t.Fatalf("leave v4: %+v", resp)
		}
		if d, err := e.broker.Groups().DescribeGroup(group); err != nil || d.State != commitlog.GroupEmpty {
			t.Fatalf("after the leave: %+v, %v", d, err)
		}
		if resp := roundTrip[*kmsg.LeaveGroupResponse](c, leave, 1); resp.ErrorCode != errNone || resp.Members[1].ErrorCode != errUnknownMemberID {
			t.Fatalf("leave again: %+v", resp)
		}
	})

	t.Run("OffsetCommitFetch", func(t *testing.T) {
		c := dialTo(t, e.addr)
		const group = "commits"
		id, gen := formGroup(t, c, group)
		// A generation that is not the group's fences the whole commit.
		resp := roundTrip[*kmsg.OffsetCommitResponse](c, commitRequest(2, group, gen+1, id, map[string]map[int32]int64{"t": {0: 5, 1: 6}}), 1)
		if codes := commitCodes(resp); codes["t/0"] != errIllegalGeneration || codes["t/1"] != errIllegalGeneration {
			t.Fatalf("commit of another generation: %v", codes)
		}
		resp = roundTrip[*kmsg.OffsetCommitResponse](c, commitRequest(8, group, gen, "nobody", map[string]map[int32]int64{"t": {0: 5}}), 1)
		if codes := commitCodes(resp); codes["t/0"] != errUnknownMemberID {
			t.Fatalf("commit of an unknown member: %v", codes)
		}
		// Partition errors leave the other partitions committed.
		resp = roundTrip[*kmsg.OffsetCommitResponse](c, commitRequest(2, group, gen, id,
			map[string]map[int32]int64{"t": {0: 5, 1: 6, 9: 1}, "nope": {0: 1}}), 1)
		if codes := commitCodes(resp); codes["t/0"] != errNone || codes["t/1"] != errNone ||
			codes["t/9"] != errUnknownTopicOrPartition || codes["nope/0"] != errUnknownTopicOrPartition {
			t.Fatalf("commit: %v", codes)
		}
		// Generation -1 commits outside group management: refused while
		// the group has members, accepted for another (new) group.
		resp = roundTrip[*kmsg.OffsetCommitResponse](c, commitRequest(8, group, -1, "", map[string]map[int32]int64{"t": {2: 1}}), 1)
		if codes := commitCodes(resp); codes["t/2"] != errUnknownMemberID {
			t.Fatalf("simple commit to a group with members: %v", codes)
		}
		resp = roundTrip[*kmsg.OffsetCommitResponse](c, commitRequest(3, "simple", -1, "", map[string]map[int32]int64{"t": {2: 7}}), 1)
		if codes := commitCodes(resp); codes["t/2"] != errNone {
			t.Fatalf("simple commit: %v", codes)
		}

		// Version 1: the partitions asked, -1 for those never committed.
		fetch := kmsg.NewPtrOffsetFetchRequest()
		fetch.Version = 1
		fetch.Group = group
		ft := kmsg.NewOffsetFetchRequestTopic()
		ft.Topic, ft.Partitions = "t", []int32{1, 2}
		fetch.Topics = append(fetch.Topics, ft)
		fr := roundTrip[*kmsg.OffsetFetchResponse](c, fetch, 1)
		if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 2 {
			t.Fatalf("fetch v1: %+v", fr)
		}
		if p := fr.Topics[0].Partitions[0]; p.Partition != 1 || p.Offset != 6 || *p.Metadata != "m1" || p.ErrorCode != errNone {
			t.Fatalf("fetch v1 t/1: %+v", p)
		}
		if p := fr.Topics[0].Partitions[1]; p.Partition != 2 || p.Offset != -1 || *p.Metadata != "" || p.ErrorCode != errNone {
			t.Fatalf("fetch v1 t/2: %+v", p)
		}
		// Version 2 and later: null topics ask for everything committed.
		fetch.Version, fetch.Topics = 7, nil
		fr = roundTrip[*kmsg.OffsetFetchResponse](c, fetch, 1)
		if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 2 || fr.Topics[0].Partitions[0].Offset != 5 ||
			fr.Topics[0].Partitions[1].Offset != 6 || fr.Topics[0].Partitions[1].LeaderEpoch != -1 {
			t.Fatalf("fetch v7 of all: %+v", fr)
		}
		// Version 8: several groups at once.
		fetch = kmsg.NewPtrOffsetFetchRequest()
		fetch.Version = 8
		for _, g := range []string{group, "simple", "no-such-group"} {
			rg := kmsg.NewOffsetFetchRequestGroup()
			rg.Group = g
			gt := kmsg.NewOffsetFetchRequestGroupTopic()
			gt.Topic, gt.Partitions = "t", []int32{0, 2}
			rg.Topics = append(rg.Topics, gt)
			fetch.Groups = append(fetch.Groups, rg)
		}
		fetch.Groups[0].Topics = nil
		fr = roundTrip[*kmsg.OffsetFetchResponse](c, fetch, 1)
		got := map[string][]int64{}
		for _, g := range fr.Groups {
			if g.ErrorCode != errNone {
				t.Fatalf("fetch v8 of %s: error %d", g.Group, g.ErrorCode)
			}
			for _, rt := range g.Topics {
				for _, p := range rt.Partitions {
					got[g.Group] = append(got[g.Group], p.Offset)
				}
			}
		}
		want := map[string][]int64{group: {5, 6}, "simple": {-1, 7}, "no-such-group": {-1, -1}}
		for g, w := range want {
			if !slices.Equal(got[g], w) {
				t.Fatalf("fetch v8: %v, want %v", got, want)
			}
		}
	})

	t.Run("DescribeListDelete", func(t *testing.T) {
		c := dialTo(t, e.addr)
		const group = "describe"
		id, _ := formGroup(t, c, group)
		describe := kmsg.NewPtrDescribeGroupsRequest()
		describe.Version = 0
		describe.Groups = []string{group, "no-such-group"}
		resp := roundTrip[*kmsg.DescribeGroupsResponse](c, describe, 1)
		if len(resp.Groups) != 2 {
			t.Fatalf("describe: %+v", resp)
		}
		if g := resp.Groups[0]; g.ErrorCode != errNone || g.State != "Stable" || g.Protocol != "range" || len(g.Members) != 1 ||
			g.Members[0].MemberID != id || string(g.Members[0].MemberAssignment) != "assignment" || g.Members[0].ClientID != "raw" {
			t.Fatalf("describe: %+v", g)
		}
		if g := resp.Groups[1]; g.ErrorCode != errNone || g.State != "Dead" {
			t.Fatalf("describe of an unknown group: %+v", g)
		}

		list := kmsg.NewPtrListGroupsRequest()
		list.Version = 4
		list.StatesFilter = []string{"Stable"}
		lr := roundTrip[*kmsg.ListGroupsResponse](c, list, 1)
		var stable []string
		for _, g := range lr.Groups {
			stable = append(stable, g.Group)
		}
		if !slices.Contains(stable, group) || slices.Contains(stable, "simple") {
			t.Fatalf("stable groups %v", stable)
		}
		list.StatesFilter = []string{"NoSuchState"}
		if lr := roundTrip[*kmsg.ListGroupsResponse](c, list, 1); len(lr.Groups) != 0 {
			t.Fatalf("groups in an unknown state: %+v", lr.Groups)
		}

		del := kmsg.NewPtrDeleteGroupsRequest()
		del.Version = 2
		del.Groups = []string{group, "no-such-group", "simple", "simple"}
		dr := roundTrip[*kmsg.DeleteGroupsResponse](c, del, 1)
		codes := map[string]int16{}
		for _, g := range dr.Groups {
			codes[g.Group] = g.ErrorCode
		}
		if len(dr.Groups) != 3 || codes[group] != errNonEmptyGroup || codes["no-such-group"] != errGroupIDNotFound || codes["simple"] != errNone {
			t.Fatalf("delete groups: %+v", dr.Groups)
		}

		od := kmsg.NewPtrOffsetDeleteRequest()
		if resp := roundTrip[*kmsg.OffsetDeleteResponse](c, od, 1); resp.ErrorCode != errInvalidGroupID {
			t.Fatalf("offset delete with an empty group id: %+v", resp)
		}
	})
}

// hostPort joins a host and port as the listener's address reads.
func hostPort(host string, port int32) string { return host + ":" + strconv.Itoa(int(port)) }

// TestGroupJoinWaits checks that a JoinGroup waiting for the rest of the
// group holds the responses of the requests sent after it on its
// connection, in order, and that Shutdown ends the wait with
// NOT_COORDINATOR.
func TestGroupJoinWaits(t *testing.T) {
	e := newEnv(t, envOptions{})
	const group = "waits"
	a := e.dial()
	aID, aGen := formGroup(t, a, group)

	// B's join starts a rebalance that waits for A to join again; an
	// ApiVersions pipelined behind it waits too.
	b := e.dial()
	bJoin := joinRequest(3, group, "")
	b.write(append(frame(bJoin, 10), frame(kmsg.NewPtrApiVersionsRequest(), 11)...))
	waitState := func(want commitlog.GroupState, members int) {
		t.Helper()
		eventually(t, func() (bool, string) {
			d, err := e.broker.Groups().DescribeGroup(group)
			return err == nil && d.State == want && len(d.Members) == members, fmt.Sprintf("group %+v, %v", d, err)
		})
	}
	waitState(commitlog.GroupPreparingRebalance, 2)
	aJoin := roundTrip[*kmsg.JoinGroupResponse](a, joinRequest(3, group, aID), 3)
	if aJoin.ErrorCode != errNone || aJoin.Generation != aGen+1 || len(aJoin.Members) != 2 {
		t.Fatalf("A's join: %+v", aJoin)
	}
	bResp := readResponse[*kmsg.JoinGroupResponse](b, bJoin, 10)
	if bResp.ErrorCode != errNone || bResp.Generation != aGen+1 || bResp.LeaderID != aID {
		t.Fatalf("B's join: %+v", bResp)
	}
	readResponse[*kmsg.ApiVersionsResponse](b, kmsg.NewPtrApiVersionsRequest(), 11)

	// C's join starts another rebalance, which A and B do not join:
	// Shutdown ends C's wait.
	c := e.dial()
	cJoin := joinRequest(4, group, "c-is-unknown")
	c.write(frame(cJoin, 20))
	if resp := readResponse[*kmsg.JoinGroupResponse](c, cJoin, 20); resp.ErrorCode != errUnknownMemberID {
		t.Fatalf("C's join with an unknown id: %+v", resp)
	}
	cJoin = joinRequest(3, group, "")
	c.write(frame(cJoin, 21))
	waitState(commitlog.GroupPreparingRebalance, 3)
	waitBusy(t, e.srv, c.nc.LocalAddr().String())
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		shutdown <- e.srv.Shutdown(ctx)
	}()
	if resp := readResponse[*kmsg.JoinGroupResponse](c, cJoin, 21); resp.ErrorCode != errNotCoordinator {
		t.Fatalf("C's join cut short by Shutdown: %+v", resp)
	}
	if err := <-shutdown; err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	e.stop()
}

// TestGroupErrorCodes checks the mapping of the coordinator's errors.
func TestGroupErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int16
	}{
		{nil, errNone},
		{fmt.Errorf("x: %w", commitlog.ErrUnknownMemberID), errUnknownMemberID},
		{commitlog.ErrIllegalGeneration, errIllegalGeneration},
		{fmt.Errorf("%w: %w", commitlog.ErrClosed, commitlog.ErrCoordinatorNotAvailable), errCoordinatorNotAvailable},
		{commitlog.ErrClosed, errNotCoordinator},
		{errors.New("disk on fire"), errNotCoordinator},
		{commitlog.ErrRecordTooLarge, errUnknownServerError},
		{context.Canceled, errNotCoordinator},
		{commitlog.ErrInvalidConfig, errCoordinatorNotAvailable},
	} {
		if got := groupErrorCode(tc.err); got != tc.want {
			t.Errorf("groupErrorCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestGroupSharedWithInProcessConsumer puts a franz-go consumer and an
// in-process commitlog.Consumer, both with default settings, in one group:
// they split the partitions, each record is consumed once, and when the
// in-process consumer closes, the franz-go one takes every partition.
func TestGroupSharedWithInProcessConsumer(t *testing.T) {
	e := newEnv(t, envOptions{})
	const topic, group, partitions = "shared", "shared-group", 4
	e.createTopic(topic, commitlog.TopicConfig{Partitions: partitions})
	ctx := testContext(t)

	remote := e.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic))
	recs, stop := pollAll(remote)
	defer stop()
	local, err := e.broker.NewConsumer(commitlog.ConsumerConfig{Group: group, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	localCtx, cancelLocal := context.WithCancel(ctx)
	var localDone sync.WaitGroup
	localDone.Go(func() {
		for {
			rs, err := local.Poll(localCtx)
			if err != nil {
				return // cancelled or closed
			}
			for _, r := range rs {
				select {
				case recs <- consumed{1, &kgo.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: bytes.Clone(r.Value)}}:
				case <-localCtx.Done():
					return
				}
			}
		}
	})
	stopLocal := func() { cancelLocal(); localDone.Wait() }
	defer stopLocal()

	adm := kadm.NewClient(e.client())
	g := waitBalanced(t, adm, group, topic, 2, partitions)
	owner := map[int32]string{}
	for id, ps := range assignments(g, topic) {
		for _, p := range ps {
			owner[p] = id
		}
	}
	remoteID, _ := remote.GroupMetadata()

	const perPartition = 10
	for p := range int32(partitions) {
		var values []string
		for i := range perPartition {
			values = append(values, fmt.Sprintf("%d-%d", p, i))
		}
		appendValues(t, e, topic, p, values...)
	}
	seen := map[string]bool{}
	byMember := map[int]int{}
	for len(seen) < partitions*perPartition {
		select {
		case c := <-recs:
			v := string(c.rec.Value)
			if seen[v] {
				t.Fatalf("record %s consumed twice", v)
			}
			seen[v] = true
			byMember[c.member]++
			if isRemote := owner[c.rec.Partition] == remoteID; isRemote != (c.member == 0) {
				t.Fatalf("partition %d (assigned to %s) consumed by member %d", c.rec.Partition, owner[c.rec.Partition], c.member)
			}
		case <-ctx.Done():
			t.Fatalf("consumed %d of %d records", len(seen), partitions*perPartition)
		}
	}
	if byMember[0] != 2*perPartition || byMember[1] != 2*perPartition {
		t.Fatalf("records per member %v", byMember)
	}

	stopLocal()
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}
	waitBalanced(t, adm, group, topic, 1, partitions)
	if g, _ := adm.DescribeGroups(ctx, group); g[group].Members[0].MemberID != remoteID {
		t.Fatalf("the member left is not the franz-go one: %+v", g[group].Members)
	}
}

// TestInternalTopicProtected checks that __consumer_offsets shows as
// internal in Metadata and that clients cannot produce to it.
func TestInternalTopicProtected(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createTopic("t", commitlog.TopicConfig{})
	ctx := context.Background()
	if err := e.broker.Groups().CommitOffsets(ctx, commitlog.CommitRequest{Group: "g", Generation: -1,
		Offsets: map[string]map[int32]commitlog.OffsetAndMetadata{"t": {0: {Offset: 0}}}}); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 12
	c.write(frame(meta, 1))
	buf, err := c.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	mresp := readBody[*kmsg.MetadataResponse](t, meta, buf)
	internal := false
	for _, mt := range mresp.Topics {
		if mt.Topic != nil && *mt.Topic == "__consumer_offsets" {
			internal = mt.IsInternal
		}
	}
	if !internal {
		t.Fatal("__consumer_offsets not listed as internal")
	}

	b, err := commitlog.AppendBatch(nil, commitlog.CompressionNone, commitlog.Record{Key: []byte("x"), Value: []byte("y")})
	if err != nil {
		t.Fatal(err)
	}
	prod := kmsg.NewPtrProduceRequest()
	prod.Version = 9
	prod.Acks = 1
	prod.TimeoutMillis = 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "__consumer_offsets"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = b
	pt.Partitions = append(pt.Partitions, pp)
	prod.Topics = append(prod.Topics, pt)
	c.write(frame(prod, 2))
	buf, err = c.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	presp := readBody[*kmsg.ProduceResponse](t, prod, buf)
	if code := presp.Topics[0].Partitions[0].ErrorCode; code != errInvalidTopic {
		t.Fatalf("produce to __consumer_offsets: error %d, want %d", code, errInvalidTopic)
	}
}
