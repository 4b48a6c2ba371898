package commitlog

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog/internal/invariants"
)

// Consumer groups: Kafka's classic group protocol, with the coordinator's
// semantics (Kafka's GroupCoordinator and GroupMetadata).
//
// Members of a group join (JoinGroup), the coordinator gathers them into a
// generation and elects a leader; the leader computes the assignment on the
// client side (see Assignor) and hands it back in its SyncGroup, which the
// coordinator relays to every member. Members heartbeat to stay in; one
// that stops is removed after its session timeout and the group
// rebalances. A group moves through these states:
//
//	Empty ─join─▶ PreparingRebalance ─all joined, or rebalance timeout─▶ CompletingRebalance ─leader's sync─▶ Stable
//	  ▲                │       ▲                                               │                               │
//	  └─none left──────┘       └────── join with new metadata, leave, session or sync expiry ──────────────────┘
//
// and Dead once deleted. Requests carry the generation they belong to, so
// a zombie from an older generation is fenced (ErrIllegalGeneration); a
// static member (an instance id, KIP-345) that restarts takes its place
// back without a rebalance; a new member may be asked to come back with the
// id it was given (KIP-394, ErrMemberIDRequired).
//
// Committed offsets and group metadata live in the compacted topic
// __consumer_offsets in Kafka's format (offsets.go), so they survive
// restarts.
//
// Timers: every timeout (session, rebalance, initial delay, pending sync,
// offsets expiry) is a time.AfterFunc owned by the coordinator; close
// stops them and waits for callbacks in flight. They run on any clock,
// testing/synctest's included.
//
// Lock order: a group's mu, then GroupCoordinator.topicMu, then
// Broker.mu, then a Log's mutex: appends to __consumer_offsets happen under
// the group's lock, so that the log orders a group's writes as the group
// made them. GroupCoordinator.mu guards only the map of groups and the
// expiry timer; it may be taken under a group's mu, and nothing is taken
// under it.

// GroupCoordinator manages the broker's consumer groups and their committed
// offsets. Get it from Broker.Groups. In-process consumers call it
// directly; the Kafka server relays requests to them: JoinGroup to Join,
// SyncGroup to Sync, Heartbeat, LeaveGroup to Leave, OffsetCommit to
// CommitOffsets, OffsetFetch to FetchOffsets, DescribeGroups to
// DescribeGroup, ListGroups, DeleteGroups, OffsetDelete to DeleteOffsets.
// Its methods are safe for concurrent use.
type GroupCoordinator struct {
	b    *Broker
	opts *Options

	closed  atomic.Bool    // set under mu by close
	running sync.WaitGroup // timer callbacks in flight; added to under mu

	mu     sync.Mutex // guards groups and expiry; innermost lock
	groups map[string]*group
	expiry *time.Timer

	topicMu  sync.Mutex            // serialises the creation of the offsets topic
	topic    atomic.Pointer[Topic] // __consumer_offsets, nil until first needed
	numParts int32                 // its partition count, fixed when found (under topicMu)
	writers  sync.Pool             // *recordWriter
}

// Groups returns the broker's group coordinator.
func (b *Broker) Groups() *GroupCoordinator { return b.groups }

// GroupState is the state of a group, named as Kafka names it.
type GroupState int8

// Group states.
const (
	GroupEmpty               GroupState = iota // no members; offsets may remain
	GroupPreparingRebalance                    // waiting for members to (re)join
	GroupCompletingRebalance                   // waiting for the leader's assignment
	GroupStable                                // members hold their assignments
	GroupDead                                  // deleted
)

func (s GroupState) String() string {
	switch s {
	case GroupEmpty:
		return "Empty"
	case GroupPreparingRebalance:
		return "PreparingRebalance"
	case GroupCompletingRebalance:
		return "CompletingRebalance"
	case GroupStable:
		return "Stable"
	case GroupDead:
		return "Dead"
	}
	return fmt.Sprintf("GroupState(%d)", int8(s))
}

// GroupProtocol is one assignment protocol a member supports, with the
// member's metadata for it (for the "consumer" protocol type: a
// Subscription, see EncodeSubscription).
type GroupProtocol struct {
	Name     string
	Metadata []byte
}

// JoinRequest is a JoinGroup request.
type JoinRequest struct {
	Group string
	// MemberID is empty on a member's first join; then the id the
	// coordinator gave it.
	MemberID string
	// InstanceID makes the member static (group.instance.id, KIP-345): a
	// member that restarts with the same instance id takes over the old
	// one's place without a rebalance. Empty for a dynamic member.
	InstanceID string
	// ClientID and ClientHost identify the client in DescribeGroup; the
	// client id also prefixes generated member ids.
	ClientID, ClientHost string
	// ProtocolType is the kind of group, "consumer" for consumers.
	ProtocolType string
	// Protocols are the assignment protocols the member supports, in
	// order of preference. Every member must share at least one.
	Protocols []GroupProtocol
	// SessionTimeout is how long the member may go without a heartbeat
	// before it is removed (session.timeout.ms); within
	// Options.GroupMinSessionTimeout and GroupMaxSessionTimeout.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long a rebalance waits for the member to
	// join again (max.poll.interval.ms for Java consumers). Zero: the
	// session timeout, as JoinGroup v0 does.
	RebalanceTimeout time.Duration
	// RequireKnownMemberID makes a new dynamic member's first join fail
	// with ErrMemberIDRequired and the member id it is to join with
	// (KIP-394). The Kafka server sets it for JoinGroup v4 and later.
	RequireKnownMemberID bool
	// SupportsSkipAssignment says the caller understands
	// JoinResult.SkipAssignment (KIP-814, JoinGroup v9 and later). Without
	// it a static leader that rejoins a stable group is told another
	// member leads, so that it does not compute an assignment nobody
	// would receive.
	SupportsSkipAssignment bool
}

// JoinResult is the answer to a JoinGroup.
type JoinResult struct {
	Generation   int32
	ProtocolType string
	Protocol     string // the protocol chosen for this generation
	LeaderID     string
	MemberID     string // the member's id, to use from now on
	// SkipAssignment tells a static leader that rejoined a stable group to
	// sync without computing an assignment: the group keeps the current
	// one (KIP-814).
	SkipAssignment bool
	// Members lists every member with its metadata for Protocol; only the
	// leader gets it, to compute the assignment.
	Members []GroupMember
}

// GroupMember is a member as the leader sees it in JoinResult.Members.
// Metadata is shared with the coordinator: do not modify it.
type GroupMember struct {
	MemberID   string
	InstanceID string
	Metadata   []byte // the member's metadata for the group's protocol
}

// SyncRequest is a SyncGroup request.
type SyncRequest struct {
	Group      string
	Generation int32
	MemberID   string
	InstanceID string
	// ProtocolType and Protocol, when set (SyncGroup v5 and later), must be
	// the group's.
	ProtocolType, Protocol string
	// Assignments maps member ids to their assignments. Only the leader
	// sends them; members it leaves out get an empty assignment.
	Assignments map[string][]byte
}

// HeartbeatRequest is a Heartbeat request.
type HeartbeatRequest struct {
	Group      string
	Generation int32
	MemberID   string
	InstanceID string
}

// MemberIdentity names a member leaving a group: by member id, or by
// instance id alone to remove a static member administratively.
type MemberIdentity struct {
	MemberID   string
	InstanceID string
}

// GroupDescription describes a group (DescribeGroups). Kafka answers with
// Protocol and the members' metadata and assignments only while the group
// is Stable; this carries them always.
type GroupDescription struct {
	Group        string
	State        GroupState
	ProtocolType string
	Protocol     string
	Generation   int32
	LeaderID     string
	Members      []MemberDescription
}

// MemberDescription describes a member of a group. Its byte slices are
// shared with the coordinator: do not modify them.
type MemberDescription struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	Metadata   []byte // for the group's protocol
	Assignment []byte
}

// GroupListing is a group as ListGroups lists it.
type GroupListing struct {
	Group        string
	ProtocolType string
	State        GroupState
}

// newMemberJoinTimeout bounds how long a new member's first JoinGroup may
// wait (Kafka's group.new.member.join.timeout): a client that gave up and
// retried must not leave its abandoned member in the group for good.
const newMemberJoinTimeout = 5 * time.Minute

// consumerProtocolType is the protocol type of Kafka consumers, whose
// subscriptions the coordinator reads (for OffsetDelete and offset expiry)
// and whose empty assignments it encodes.
const consumerProtocolType = "consumer"

// emptyConsumerAssignment is sent to a consumer the leader assigned
// nothing: some clients cannot decode zero bytes.
var emptyConsumerAssignment = new(kmsg.ConsumerMemberAssignment).AppendTo(nil)

// errCoordinatorClosed is returned by every call once the broker closes.
var errCoordinatorClosed = fmt.Errorf("%w: %w", ErrClosed, ErrCoordinatorNotAvailable)

// group is one consumer group. The coordinator holds its mu while it reads
// or changes any of its fields.
//
// Invariants: state is Empty exactly when members is empty (Dead aside);
// awaitingJoin counts the members whose joinCh is set; leader is a member
// or "" when there are none; static maps an instance id to a member with
// that instance id.
type group struct {
	id string

	mu           sync.Mutex
	state        GroupState
	prevState    GroupState
	stateTime    time.Time // when state last changed
	generation   int32
	protocolType string
	protocol     string // chosen for the generation; "" when Empty
	leader       string
	members      []*member          // in join order
	byID         map[string]*member // the same members
	static       map[string]string  // instance id -> member id
	pending      map[string]*time.Timer
	pendingSync  map[string]bool // members of the generation that have not synced
	awaitingJoin int
	// newMemberAdded extends the initial rebalance delay.
	newMemberAdded bool
	// initialDelay is set while the initial rebalance delay runs: joins
	// do not complete the rebalance early then.
	initialDelay bool
	joinTimer    *time.Timer
	joinSeq      uint64 // voids a join timer callback already running
	syncTimer    *time.Timer
	syncSeq      uint64
	// subscribed is the union of the topics the members subscribe to, for
	// "consumer" groups whose subscriptions decode; nil when unknown.
	subscribed map[string]bool
	offsets    map[string]map[int32]OffsetAndMetadata
}

// member is a member of a group.
type member struct {
	id, instanceID       string
	clientID, clientHost string
	protocolType         string
	protocols            []GroupProtocol
	session, rebalance   time.Duration
	assignment           []byte
	// joinCh is set while the member awaits the end of a rebalance: a Join
	// call waits on it (or did, and gave up: the reply is then dropped,
	// as a reply to a client that disconnected is). syncCh likewise for
	// Sync.
	joinCh chan joinReply
	syncCh chan syncReply
	// isNew marks a member added during the current rebalance: it is
	// removed when its first join outlasts newMemberJoinTimeout.
	isNew    bool
	deadline time.Time // its session expires then
	timer    *time.Timer
}

type joinReply struct {
	res JoinResult
	err error
}

type syncReply struct {
	assignment []byte
	err        error
}

func newGroup(id string) *group {
	return &group{
		id:        id,
		state:     GroupEmpty,
		prevState: GroupEmpty,
		stateTime: time.Now(),
		byID:      map[string]*member{},
		static:    map[string]string{},
		pending:   map[string]*time.Timer{},
		offsets:   map[string]map[int32]OffsetAndMetadata{},
	}
}

func newGroupCoordinator(b *Broker) (*GroupCoordinator, error) {
	gc := &GroupCoordinator{b: b, opts: &b.opts, groups: map[string]*group{}}
	gc.writers.New = func() any { return new(recordWriter) }
	if t, err := b.Topic(offsetsTopic); err == nil {
		gc.topic.Store(t)
		gc.numParts = t.NumPartitions()
		if err := gc.load(t); err != nil {
			gc.close()
			return nil, fmt.Errorf("load %s: %w", offsetsTopic, err)
		}
	}
	gc.scheduleExpiry()
	return gc, nil
}

// close stops every timer, fails the calls waiting in Join and Sync, and
// waits for timer callbacks in flight. The broker calls it before closing
// its topics.
func (gc *GroupCoordinator) close() {
	gc.mu.Lock()
	if gc.closed.Load() {
		gc.mu.Unlock()
		return
	}
	gc.closed.Store(true)
	if gc.expiry != nil {
		gc.expiry.Stop()
	}
	groups := make([]*group, 0, len(gc.groups))
	for _, g := range gc.groups {
		groups = append(groups, g)
	}
	gc.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		g.stopTimersLocked()
		for _, m := range g.members {
			g.completeJoinLocked(m, JoinResult{}, errCoordinatorClosed)
			g.completeSyncLocked(m, nil, errCoordinatorClosed)
		}
		g.unlock()
	}
	gc.running.Wait()
}

// fire runs a timer callback unless the coordinator closed; close waits
// for those that started.
func (gc *GroupCoordinator) fire(fn func()) {
	gc.mu.Lock()
	if gc.closed.Load() {
		gc.mu.Unlock()
		return
	}
	gc.running.Add(1)
	gc.mu.Unlock()
	defer gc.running.Done()
	fn()
}

// afterFunc arms a timer that runs fn through fire; none once closed.
func (gc *GroupCoordinator) afterFunc(d time.Duration, fn func()) *time.Timer {
	if gc.closed.Load() {
		return nil
	}
	return time.AfterFunc(d, func() { gc.fire(fn) })
}

// lockGroup returns the group named id, locked, creating it when create
// is set. It returns nil, nil for a group that does not exist.
func (gc *GroupCoordinator) lockGroup(id string, create bool) (*group, error) {
	for {
		gc.mu.Lock()
		if gc.closed.Load() {
			gc.mu.Unlock()
			return nil, errCoordinatorClosed
		}
		g := gc.groups[id]
		if g == nil {
			if !create {
				gc.mu.Unlock()
				return nil, nil
			}
			g = newGroup(id)
			gc.groups[id] = g
		}
		gc.mu.Unlock()
		g.mu.Lock()
		if g.state != GroupDead {
			return g, nil
		}
		// Deleted after the lookup: whoever deleted it removed it from the
		// map, so the next lookup finds its successor, if any.
		g.unlock()
	}
}

// removeGroupLocked marks g Dead and forgets it.
func (gc *GroupCoordinator) removeGroupLocked(g *group) {
	g.stopTimersLocked()
	g.transitionLocked(GroupDead)
	gc.mu.Lock()
	if gc.groups[g.id] == g {
		delete(gc.groups, g.id)
	}
	gc.mu.Unlock()
}

// snapshot returns the groups now known.
func (gc *GroupCoordinator) snapshot() []*group {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	groups := make([]*group, 0, len(gc.groups))
	for _, g := range gc.groups {
		groups = append(groups, g)
	}
	return groups
}

// Join adds the caller to a group, or confirms its membership, and waits
// until the rebalance this starts (or the one in progress) completes: all
// known members joined again, or the rebalance timeout removed those that
// did not. The leader's result lists the members. A first join (empty
// MemberID) creates the group when needed.
//
// Errors: ErrInvalidGroupID, ErrInvalidSessionTimeout,
// ErrInconsistentGroupProtocol, ErrUnknownMemberID (a member id the group
// does not know, or a group that does not exist), ErrFencedInstanceID,
// ErrGroupMaxSizeReached, ErrMemberIDRequired (with the result's MemberID
// set), ErrRebalanceInProgress (a newer Join of the same member replaced
// this one), ctx's error. If ctx ends first the member stays in the
// rebalance as a member whose answer got lost would, except a member this
// very call created (whose id the caller never learned), which is removed.
func (gc *GroupCoordinator) Join(ctx context.Context, req JoinRequest) (JoinResult, error) {
	if err := ctx.Err(); err != nil {
		return JoinResult{}, err
	}
	if req.Group == "" {
		return JoinResult{}, fmt.Errorf("%w: join with an empty group id", ErrInvalidGroupID)
	}
	if req.SessionTimeout < gc.opts.GroupMinSessionTimeout || req.SessionTimeout > gc.opts.GroupMaxSessionTimeout {
		return JoinResult{}, fmt.Errorf("%w: %v outside [%v, %v]", ErrInvalidSessionTimeout,
			req.SessionTimeout, gc.opts.GroupMinSessionTimeout, gc.opts.GroupMaxSessionTimeout)
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return JoinResult{}, fmt.Errorf("%w: join with protocol type %q and %d protocols", ErrInconsistentGroupProtocol, req.ProtocolType, len(req.Protocols))
	}
	g, err := gc.lockGroup(req.Group, req.MemberID == "")
	if err != nil {
		return JoinResult{}, err
	}
	if g == nil {
		return JoinResult{}, fmt.Errorf("%w: %q: group %s does not exist", ErrUnknownMemberID, req.MemberID, req.Group)
	}
	res, ch, created, err := gc.joinLocked(g, &req)
	g.unlock()
	if ch == nil {
		return res, err
	}
	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if m := g.byID[res.MemberID]; m != nil && m.joinCh == ch {
		if created {
			gc.removeMemberLocked(g, m)
			gc.afterRemovalLocked(g)
		}
		g.unlock()
		return JoinResult{}, ctx.Err()
	}
	g.unlock()
	r := <-ch // answered before the lock was taken
	return r.res, r.err
}

// joinLocked handles a JoinGroup for the locked group g. It returns either
// the answer, or (with the member id in res) a channel the answer will
// come on. created reports that the call added a member whose id it
// generated and has not yet told.
func (gc *GroupCoordinator) joinLocked(g *group, req *JoinRequest) (res JoinResult, ch chan joinReply, created bool, err error) {
	if !gc.acceptJoiningLocked(g, req.MemberID) {
		if m := g.byID[req.MemberID]; m != nil {
			gc.removeMemberLocked(g, m)
			gc.afterRemovalLocked(g)
		}
		return JoinResult{}, nil, false, fmt.Errorf("%w: group %s has %d members", ErrGroupMaxSizeReached, g.id, gc.opts.GroupMaxSize)
	}
	if !g.supportsProtocolsLocked(req.ProtocolType, req.Protocols) {
		return JoinResult{}, nil, false, fmt.Errorf("%w: group %s uses protocol type %q and protocols its members share; the member offers type %q with %s",
			ErrInconsistentGroupProtocol, g.id, g.protocolType, req.ProtocolType, protocolNames(req.Protocols))
	}
	if req.MemberID == "" {
		id := newMemberID(cmp.Or(req.InstanceID, req.ClientID, "member"))
		switch {
		case req.InstanceID != "" && g.static[req.InstanceID] != "":
			ch, res := gc.replaceStaticLocked(g, g.byID[g.static[req.InstanceID]], id, req)
			return res, ch, false, nil
		case req.InstanceID == "" && req.RequireKnownMemberID:
			gc.addPendingLocked(g, id, req.SessionTimeout)
			return JoinResult{MemberID: id}, nil, false, fmt.Errorf("%w: join group %s again with member id %s", ErrMemberIDRequired, g.id, id)
		}
		return JoinResult{MemberID: id}, gc.addMemberLocked(g, id, req), req.InstanceID == "", nil
	}
	if g.isPendingLocked(req.MemberID) && req.InstanceID == "" {
		stopTimer(g.pending[req.MemberID])
		delete(g.pending, req.MemberID)
		return JoinResult{MemberID: req.MemberID}, gc.addMemberLocked(g, req.MemberID, req), false, nil
	}
	if err := g.validateMemberLocked(req.MemberID, req.InstanceID); err != nil {
		return JoinResult{}, nil, false, err
	}
	m := g.byID[req.MemberID]
	switch g.state {
	case GroupPreparingRebalance:
		ch := gc.updateMemberLocked(g, m, req)
		gc.maybeCompleteJoinLocked(g)
		return JoinResult{MemberID: m.id}, ch, false, nil
	case GroupCompletingRebalance:
		if m.matches(req.Protocols) {
			// The member lost the answer to its join: give it again.
			return g.joinResultLocked(m, true), nil, false, nil
		}
		ch := gc.updateMemberLocked(g, m, req)
		gc.prepareRebalanceLocked(g)
		return JoinResult{MemberID: m.id}, ch, false, nil
	case GroupStable:
		if g.leader == m.id || !m.matches(req.Protocols) {
			// New metadata, or the leader asking for a rebalance (for
			// changes the metadata does not show, such as new
			// partitions).
			ch := gc.updateMemberLocked(g, m, req)
			gc.prepareRebalanceLocked(g)
			return JoinResult{MemberID: m.id}, ch, false, nil
		}
		return g.joinResultLocked(m, false), nil, false, nil
	}
	return JoinResult{}, nil, false, fmt.Errorf("%w: %s: group %s is %v", ErrUnknownMemberID, m.id, g.id, g.state)
}

// acceptJoiningLocked applies Options.GroupMaxSize.
func (gc *GroupCoordinator) acceptJoiningLocked(g *group, memberID string) bool {
	limit := gc.opts.GroupMaxSize
	if limit == 0 {
		return true
	}
	m := g.byID[memberID]
	switch g.state {
	case GroupPreparingRebalance:
		// Count those that joined: the group may be over a lowered limit,
		// and the last to rejoin are the ones turned away.
		return m != nil && m.joinCh != nil || g.awaitingJoin < limit
	case GroupCompletingRebalance, GroupStable:
		return m != nil || len(g.members) < limit
	}
	return true
}

// replaceStaticLocked gives the static member old a new member id (its
// instance restarted): old's pending calls are fenced, and the new member
// keeps old's place and assignment. A stable group whose protocol choice
// does not change keeps its generation: the member gets its answer now.
func (gc *GroupCoordinator) replaceStaticLocked(g *group, old *member, newID string, req *JoinRequest) (chan joinReply, JoinResult) {
	prevLeader := g.leader
	oldID := old.id
	oldProtocols, oldSession, oldRebalance := old.protocols, old.session, old.rebalance
	g.renameMemberLocked(old, newID, ErrFencedInstanceID)
	m := old
	gc.armMemberLocked(g, m, m.session)
	ch := gc.updateMemberLocked(g, m, req)
	switch g.state {
	case GroupStable:
		if g.selectProtocolLocked() != g.protocol {
			gc.prepareRebalanceLocked(g)
			break
		}
		if err := gc.storeGroupLocked(g, nil); err != nil {
			// Keep memory as the log has it: the old member stays.
			m.protocols, m.session, m.rebalance = oldProtocols, oldSession, oldRebalance
			g.completeJoinLocked(m, JoinResult{}, err)
			g.renameMemberLocked(m, oldID, nil)
			gc.armMemberLocked(g, m, m.session)
			return ch, JoinResult{}
		}
		var res JoinResult
		if req.SupportsSkipAssignment {
			res = g.joinResultLocked(m, true)
			res.SkipAssignment = g.leader == m.id
		} else {
			res = g.joinResultLocked(m, false)
			res.LeaderID = prevLeader // never m's new id: it must not assign
		}
		g.completeJoinLocked(m, res, nil)
	case GroupCompletingRebalance:
		// The leader may have assigned to the old id: start over.
		gc.prepareRebalanceLocked(g)
	case GroupPreparingRebalance:
		gc.maybeCompleteJoinLocked(g)
	}
	return ch, JoinResult{MemberID: newID}
}

// addPendingLocked records a member id handed out with
// ErrMemberIDRequired; it expires after the session timeout unless the
// member joins with it.
func (gc *GroupCoordinator) addPendingLocked(g *group, id string, session time.Duration) {
	g.pending[id] = gc.afterFunc(session, func() {
		g.mu.Lock()
		defer g.unlock()
		if _, ok := g.pending[id]; ok && g.state != GroupDead {
			delete(g.pending, id)
			gc.maybeCompleteJoinLocked(g)
		}
	})
}

// addMemberLocked adds a new member that awaits the rebalance its arrival
// starts, and returns the channel its answer will come on.
func (gc *GroupCoordinator) addMemberLocked(g *group, id string, req *JoinRequest) chan joinReply {
	m := &member{
		id:           id,
		instanceID:   req.InstanceID,
		clientID:     req.ClientID,
		clientHost:   req.ClientHost,
		protocolType: req.ProtocolType,
		protocols:    cloneProtocols(req.Protocols),
		session:      req.SessionTimeout,
		rebalance:    req.RebalanceTimeout,
		isNew:        true,
		joinCh:       make(chan joinReply, 1),
	}
	if g.state == GroupPreparingRebalance && g.prevState == GroupEmpty {
		g.newMemberAdded = true
	}
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	g.members = append(g.members, m)
	g.byID[id] = m
	if m.instanceID != "" {
		g.static[m.instanceID] = id
	}
	if g.leader == "" {
		g.leader = id
	}
	g.awaitingJoin++
	gc.armMemberLocked(g, m, newMemberJoinTimeout)
	ch := m.joinCh
	gc.maybePrepareRebalanceLocked(g)
	return ch
}

// updateMemberLocked records a known member's join and returns the channel
// its answer will come on. A join it supersedes is answered with
// ErrRebalanceInProgress.
func (gc *GroupCoordinator) updateMemberLocked(g *group, m *member, req *JoinRequest) chan joinReply {
	m.protocols = cloneProtocols(req.Protocols)
	m.session, m.rebalance = req.SessionTimeout, req.RebalanceTimeout
	m.clientID, m.clientHost = cmp.Or(req.ClientID, m.clientID), cmp.Or(req.ClientHost, m.clientHost)
	g.completeJoinLocked(m, JoinResult{}, fmt.Errorf("%w: a newer join of member %s replaced this one", ErrRebalanceInProgress, m.id))
	m.joinCh = make(chan joinReply, 1)
	g.awaitingJoin++
	return m.joinCh
}

// maybePrepareRebalanceLocked starts a rebalance when the state allows,
// and otherwise completes the one in progress if everyone joined.
func (gc *GroupCoordinator) maybePrepareRebalanceLocked(g *group) {
	switch g.state {
	case GroupEmpty, GroupStable, GroupCompletingRebalance:
		gc.prepareRebalanceLocked(g)
	default:
		gc.maybeCompleteJoinLocked(g)
	}
}

// prepareRebalanceLocked moves g to PreparingRebalance: pending syncs are
// answered with ErrRebalanceInProgress, and the rebalance completes when
// every member joined again, or after the rebalance timeout (for an empty
// group, after the initial rebalance delay).
func (gc *GroupCoordinator) prepareRebalanceLocked(g *group) {
	if g.state == GroupCompletingRebalance {
		gc.resetAndPropagateLocked(g, fmt.Errorf("%w: group %s", ErrRebalanceInProgress, g.id))
	}
	g.stopSyncTimerLocked()
	clear(g.pendingSync)
	initial := g.state == GroupEmpty
	g.transitionLocked(GroupPreparingRebalance)
	if delay := gc.opts.GroupInitialRebalanceDelay; initial && delay > 0 {
		g.initialDelay = true
		g.newMemberAdded = false
		gc.scheduleInitialLocked(g, delay, max(g.rebalanceTimeoutLocked()-delay, 0))
		return
	}
	if g.allJoinedLocked() {
		gc.completeJoinLocked(g)
		return
	}
	gc.armJoinTimerLocked(g, g.rebalanceTimeoutLocked(), func() { gc.completeJoinLocked(g) })
}

// scheduleInitialLocked waits delay for members of a new group, again as
// long as members keep arriving, within remaining.
func (gc *GroupCoordinator) scheduleInitialLocked(g *group, delay, remaining time.Duration) {
	gc.armJoinTimerLocked(g, delay, func() {
		if g.newMemberAdded && remaining > 0 {
			g.newMemberAdded = false
			gc.scheduleInitialLocked(g, min(gc.opts.GroupInitialRebalanceDelay, remaining), max(remaining-delay, 0))
			return
		}
		gc.completeJoinLocked(g)
	})
}

// maybeCompleteJoinLocked completes the rebalance in progress once every
// member joined, unless the initial delay still gathers members.
func (gc *GroupCoordinator) maybeCompleteJoinLocked(g *group) {
	if g.state == GroupPreparingRebalance && !g.initialDelay && g.allJoinedLocked() {
		gc.completeJoinLocked(g)
	}
}

// completeJoinLocked ends the join phase: dynamic members that did not
// join again are removed, the generation advances, and every member gets
// its answer (the leader with the member list). With no member left the
// group is Empty.
func (gc *GroupCoordinator) completeJoinLocked(g *group) {
	g.stopJoinTimerLocked()
	g.initialDelay = false
	for _, m := range slices.Clone(g.members) {
		if m.joinCh == nil && m.instanceID == "" {
			gc.removeMemberLocked(g, m)
		}
	}
	if g.state == GroupDead {
		return
	}
	if !g.electJoinedLeaderLocked() && len(g.members) > 0 {
		// Only static members that have not come back: wait for them, or
		// for their sessions to end.
		gc.armJoinTimerLocked(g, g.rebalanceTimeoutLocked(), func() { gc.completeJoinLocked(g) })
		return
	}
	g.generation++
	clear(g.pendingSync)
	if len(g.members) == 0 {
		g.protocol = ""
		g.subscribed = g.computeSubscribedLocked()
		g.transitionLocked(GroupEmpty)
		_ = gc.storeGroupLocked(g, nil) // on failure a restart finds the previous generation, whose members time out
		return
	}
	g.protocol = g.selectProtocolLocked()
	g.subscribed = g.computeSubscribedLocked()
	g.transitionLocked(GroupCompletingRebalance)
	if g.pendingSync == nil {
		g.pendingSync = map[string]bool{}
	}
	for _, m := range g.members {
		g.completeJoinLocked(m, g.joinResultLocked(m, true), nil)
		m.isNew = false
		gc.armMemberLocked(g, m, m.session)
		g.pendingSync[m.id] = true
	}
	gen := g.generation
	g.syncSeq++
	seq := g.syncSeq
	g.syncTimer = gc.afterFunc(g.rebalanceTimeoutLocked(), func() {
		g.mu.Lock()
		defer g.unlock()
		if g.syncSeq == seq && g.generation == gen {
			gc.expirePendingSyncLocked(g)
		}
	})
}

// expirePendingSyncLocked removes the members that got the generation but
// never synced within the rebalance timeout, and rebalances.
func (gc *GroupCoordinator) expirePendingSyncLocked(g *group) {
	g.syncTimer = nil
	if (g.state != GroupCompletingRebalance && g.state != GroupStable) || len(g.pendingSync) == 0 {
		return
	}
	for id := range g.pendingSync {
		if m := g.byID[id]; m != nil {
			gc.removeMemberLocked(g, m)
		}
	}
	gc.prepareRebalanceLocked(g)
}

// Sync sends the leader's assignment, or fetches the member's, for the
// current generation. A follower waits until the leader's sync arrives.
// The assignment returned is shared with the coordinator: do not modify
// it. A "consumer" member the leader assigned nothing gets an encoded
// empty assignment rather than zero bytes, which some clients cannot
// decode.
//
// Errors: ErrUnknownMemberID (also for a group that does not exist),
// ErrFencedInstanceID, ErrIllegalGeneration, ErrInconsistentGroupProtocol,
// ErrRebalanceInProgress (join again), ctx's error.
func (gc *GroupCoordinator) Sync(ctx context.Context, req SyncRequest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req.Group == "" {
		return nil, fmt.Errorf("%w: sync with an empty group id", ErrInvalidGroupID)
	}
	g, err := gc.lockGroup(req.Group, false)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, fmt.Errorf("%w: %q: group %s does not exist", ErrUnknownMemberID, req.MemberID, req.Group)
	}
	assignment, ch, err := gc.syncLocked(g, &req)
	g.unlock()
	if ch == nil {
		return assignment, err
	}
	select {
	case r := <-ch:
		return r.assignment, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (gc *GroupCoordinator) syncLocked(g *group, req *SyncRequest) ([]byte, chan syncReply, error) {
	if err := g.validateMemberLocked(req.MemberID, req.InstanceID); err != nil {
		return nil, nil, err
	}
	if req.Generation != g.generation {
		return nil, nil, fmt.Errorf("%w: %d, group %s is at generation %d", ErrIllegalGeneration, req.Generation, g.id, g.generation)
	}
	if req.ProtocolType != "" && req.ProtocolType != g.protocolType || req.Protocol != "" && req.Protocol != g.protocol {
		return nil, nil, fmt.Errorf("%w: sync with %q/%q, group %s uses %q/%q", ErrInconsistentGroupProtocol,
			req.ProtocolType, req.Protocol, g.id, g.protocolType, g.protocol)
	}
	m := g.byID[req.MemberID]
	switch g.state {
	case GroupPreparingRebalance:
		return nil, nil, fmt.Errorf("%w: group %s", ErrRebalanceInProgress, g.id)
	case GroupStable:
		gc.syncedLocked(g, m.id)
		return m.assignment, nil, nil
	case GroupCompletingRebalance:
	default:
		return nil, nil, fmt.Errorf("%w: %s: group %s is %v", ErrUnknownMemberID, m.id, g.id, g.state)
	}
	g.completeSyncLocked(m, nil, fmt.Errorf("%w: a newer sync of member %s replaced this one", ErrRebalanceInProgress, m.id))
	ch := make(chan syncReply, 1)
	m.syncCh = ch
	gc.syncedLocked(g, m.id)
	if g.leader != m.id {
		return nil, ch, nil
	}
	assignments := make(map[string][]byte, len(g.members))
	for _, mm := range g.members {
		a := bytes.Clone(req.Assignments[mm.id])
		if len(a) == 0 {
			a = []byte{}
			if g.protocolType == consumerProtocolType {
				a = emptyConsumerAssignment
			}
		}
		assignments[mm.id] = a
	}
	if err := gc.storeGroupLocked(g, assignments); err != nil {
		gc.resetAndPropagateLocked(g, err)
		gc.prepareRebalanceLocked(g)
		return nil, ch, nil
	}
	for _, mm := range g.members {
		mm.assignment = assignments[mm.id]
		if g.completeSyncLocked(mm, mm.assignment, nil) {
			gc.armMemberLocked(g, mm, mm.session)
		}
	}
	g.transitionLocked(GroupStable)
	return nil, ch, nil
}

// syncedLocked notes that member id synced; the pending-sync timer stops
// once all did.
func (gc *GroupCoordinator) syncedLocked(g *group, id string) {
	delete(g.pendingSync, id)
	if len(g.pendingSync) == 0 {
		g.stopSyncTimerLocked()
	}
}

// resetAndPropagateLocked clears the assignments and answers every
// waiting Sync with err.
func (gc *GroupCoordinator) resetAndPropagateLocked(g *group, err error) {
	for _, m := range g.members {
		m.assignment = nil
		if g.completeSyncLocked(m, nil, err) {
			gc.armMemberLocked(g, m, m.session)
		}
	}
}

// Heartbeat keeps a member's session alive. It fails with
// ErrRebalanceInProgress when the member should join again, and with
// ErrUnknownMemberID, ErrFencedInstanceID or ErrIllegalGeneration when it
// is no longer part of the group's generation.
func (gc *GroupCoordinator) Heartbeat(ctx context.Context, req HeartbeatRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if req.Group == "" {
		return fmt.Errorf("%w: heartbeat with an empty group id", ErrInvalidGroupID)
	}
	g, err := gc.lockGroup(req.Group, false)
	if err != nil {
		return err
	}
	if g == nil {
		return fmt.Errorf("%w: %q: group %s does not exist", ErrUnknownMemberID, req.MemberID, req.Group)
	}
	defer g.unlock()
	if err := g.validateMemberLocked(req.MemberID, req.InstanceID); err != nil {
		return err
	}
	if req.Generation != g.generation {
		return fmt.Errorf("%w: %d, group %s is at generation %d", ErrIllegalGeneration, req.Generation, g.id, g.generation)
	}
	m := g.byID[req.MemberID]
	switch g.state {
	case GroupPreparingRebalance:
		gc.armMemberLocked(g, m, m.session)
		return fmt.Errorf("%w: group %s", ErrRebalanceInProgress, g.id)
	case GroupCompletingRebalance, GroupStable:
		gc.armMemberLocked(g, m, m.session)
		return nil
	}
	return fmt.Errorf("%w: %s: group %s is %v", ErrUnknownMemberID, m.id, g.id, g.state)
}

// Leave removes members from a group, which rebalances without them.
// errs[i] is the outcome for members[i]: nil, ErrUnknownMemberID or
// ErrFencedInstanceID. err is set when nothing could be done: an empty
// group id or a closed broker. Leaving a group that does not exist yields
// ErrUnknownMemberID for each member.
func (gc *GroupCoordinator) Leave(ctx context.Context, groupID string, members ...MemberIdentity) (errs []error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if groupID == "" {
		return nil, fmt.Errorf("%w: leave with an empty group id", ErrInvalidGroupID)
	}
	g, err := gc.lockGroup(groupID, false)
	if err != nil {
		return nil, err
	}
	errs = make([]error, len(members))
	if g == nil {
		for i, mi := range members {
			errs[i] = fmt.Errorf("%w: %q: group %s does not exist", ErrUnknownMemberID, cmp.Or(mi.MemberID, mi.InstanceID), groupID)
		}
		return errs, nil
	}
	defer g.unlock()
	removed := false
	for i, mi := range members {
		switch {
		case mi.MemberID == "":
			// Administrative removal of a static member by instance id.
			if id := g.static[mi.InstanceID]; mi.InstanceID != "" && id != "" {
				gc.removeMemberLocked(g, g.byID[id])
				removed = true
			} else {
				errs[i] = fmt.Errorf("%w: no member with instance id %q in group %s", ErrUnknownMemberID, mi.InstanceID, g.id)
			}
		case g.isPendingLocked(mi.MemberID):
			stopTimer(g.pending[mi.MemberID])
			delete(g.pending, mi.MemberID)
			removed = true
		default:
			if errs[i] = g.validateMemberLocked(mi.MemberID, mi.InstanceID); errs[i] == nil {
				gc.removeMemberLocked(g, g.byID[mi.MemberID])
				removed = true
			}
		}
	}
	if removed {
		gc.afterRemovalLocked(g)
	}
	return errs, nil
}

// removeMemberLocked takes m out of g: its waiting calls are answered with
// ErrUnknownMemberID and its timer stops. Follow with afterRemovalLocked.
func (gc *GroupCoordinator) removeMemberLocked(g *group, m *member) {
	gone := fmt.Errorf("%w: %s was removed from group %s", ErrUnknownMemberID, m.id, g.id)
	g.completeJoinLocked(m, JoinResult{}, gone)
	g.completeSyncLocked(m, nil, gone)
	stopTimer(m.timer)
	delete(g.byID, m.id)
	g.members = slices.DeleteFunc(g.members, func(x *member) bool { return x == m })
	if m.instanceID != "" && g.static[m.instanceID] == m.id {
		delete(g.static, m.instanceID)
	}
	delete(g.pendingSync, m.id)
	if g.leader == m.id {
		g.leader = ""
		if len(g.members) > 0 {
			g.leader = g.members[0].id
		}
	}
}

// afterRemovalLocked reacts to members leaving: a settled group
// rebalances; a rebalancing one may now have everyone it waits for.
func (gc *GroupCoordinator) afterRemovalLocked(g *group) {
	switch g.state {
	case GroupStable, GroupCompletingRebalance:
		gc.prepareRebalanceLocked(g)
	case GroupPreparingRebalance:
		if g.allJoinedLocked() {
			gc.completeJoinLocked(g)
		}
	}
}

// armMemberLocked (re)starts m's session: it expires d from now.
func (gc *GroupCoordinator) armMemberLocked(g *group, m *member, d time.Duration) {
	if gc.closed.Load() {
		return
	}
	m.deadline = time.Now().Add(d)
	if m.timer != nil {
		m.timer.Reset(d)
		return
	}
	m.timer = gc.afterFunc(d, func() { gc.expireMember(g, m) })
}

// expireMember runs when m's session timer fires.
func (gc *GroupCoordinator) expireMember(g *group, m *member) {
	g.mu.Lock()
	defer g.unlock()
	now := time.Now()
	if g.state == GroupDead || g.byID[m.id] != m || now.Before(m.deadline) {
		return // gone, or its session was renewed meanwhile
	}
	if !m.isNew && (m.joinCh != nil || m.syncCh != nil) {
		// Waiting for the group, not silent: the rebalance timeout
		// bounds it.
		gc.armMemberLocked(g, m, m.session)
		return
	}
	gc.removeMemberLocked(g, m)
	gc.afterRemovalLocked(g)
}

// armJoinTimerLocked runs fn, under g's lock, after d, replacing the join
// timer.
func (gc *GroupCoordinator) armJoinTimerLocked(g *group, d time.Duration, fn func()) {
	g.stopJoinTimerLocked()
	seq := g.joinSeq
	g.joinTimer = gc.afterFunc(d, func() {
		g.mu.Lock()
		defer g.unlock()
		if g.joinSeq == seq && g.state != GroupDead {
			g.joinTimer = nil
			fn()
		}
	})
}

func (g *group) stopJoinTimerLocked() {
	stopTimer(g.joinTimer)
	g.joinTimer = nil
	g.joinSeq++
}

func (g *group) stopSyncTimerLocked() {
	stopTimer(g.syncTimer)
	g.syncTimer = nil
	g.syncSeq++
}

func (g *group) stopTimersLocked() {
	g.stopJoinTimerLocked()
	g.stopSyncTimerLocked()
	for _, m := range g.members {
		stopTimer(m.timer)
	}
	for id, t := range g.pending {
		stopTimer(t)
		delete(g.pending, id)
	}
}

// stopTimer stops t, which may be nil (not armed: the coordinator had
// closed).
func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

func (g *group) isPendingLocked(id string) bool {
	_, ok := g.pending[id]
	return ok
}

// completeJoinLocked answers m's waiting join, if any, and reports whether
// there was one.
func (g *group) completeJoinLocked(m *member, res JoinResult, err error) bool {
	if m.joinCh == nil {
		return false
	}
	m.joinCh <- joinReply{res, err}
	m.joinCh = nil
	g.awaitingJoin--
	return true
}

// completeSyncLocked answers m's waiting sync, if any, and reports whether
// there was one.
func (g *group) completeSyncLocked(m *member, assignment []byte, err error) bool {
	if m.syncCh == nil {
		return false
	}
	m.syncCh <- syncReply{assignment, err}
	m.syncCh = nil
	return true
}

// renameMemberLocked gives m the id to, answering its waiting calls with
// fence (when not nil) first.
func (g *group) renameMemberLocked(m *member, to string, fence error) {
	if fence != nil {
		err := fmt.Errorf("%w: instance %s of group %s rejoined as member %s", fence, m.instanceID, g.id, to)
		g.completeJoinLocked(m, JoinResult{}, err)
		g.completeSyncLocked(m, nil, err)
	}
	from := m.id
	delete(g.byID, from)
	m.id = to
	g.byID[to] = m
	if m.instanceID != "" {
		g.static[m.instanceID] = to
	}
	if g.leader == from {
		g.leader = to
	}
	if g.pendingSync[from] {
		delete(g.pendingSync, from)
		g.pendingSync[to] = true
	}
}

// unlock releases g's lock, checking its invariants first under the
// invariants build tag.
func (g *group) unlock() {
	if invariants.Enabled {
		g.checkLocked()
	}
	g.mu.Unlock()
}

// checkLocked verifies what the type documents.
func (g *group) checkLocked() {
	invariants.Check(len(g.byID) == len(g.members), "group %s: %d members, %d ids", g.id, len(g.members), len(g.byID))
	awaiting := 0
	for _, m := range g.members {
		invariants.Check(g.byID[m.id] == m, "group %s: member %s not indexed", g.id, m.id)
		invariants.Check(m.instanceID == "" || g.static[m.instanceID] == m.id, "group %s: static member %s not indexed", g.id, m.id)
		if m.joinCh != nil {
			awaiting++
		}
	}
	invariants.Check(awaiting == g.awaitingJoin, "group %s: %d members await a join, counted %d", g.id, awaiting, g.awaitingJoin)
	for inst, id := range g.static {
		invariants.Check(g.byID[id] != nil && g.byID[id].instanceID == inst, "group %s: instance %s maps to %s", g.id, inst, id)
	}
	for id := range g.pendingSync {
		invariants.Check(g.byID[id] != nil, "group %s: pending sync of non-member %s", g.id, id)
	}
	invariants.Check((g.leader == "") == (len(g.members) == 0) && (g.leader == "" || g.byID[g.leader] != nil),
		"group %s: leader %q of %d members", g.id, g.leader, len(g.members))
	switch g.state {
	case GroupEmpty:
		invariants.Check(len(g.members) == 0, "group %s: Empty with %d members", g.id, len(g.members))
	case GroupCompletingRebalance, GroupStable:
		invariants.Check(len(g.members) > 0 && g.protocol != "", "group %s: %v with %d members, protocol %q", g.id, g.state, len(g.members), g.protocol)
	}
}

func (g *group) transitionLocked(s GroupState) {
	g.prevState, g.state = g.state, s
	g.stateTime = time.Now()
}

// validateMemberLocked checks that memberID is in g and, for a static
// member, still holds its instance id.
func (g *group) validateMemberLocked(memberID, instanceID string) error {
	if instanceID != "" {
		switch cur := g.static[instanceID]; {
		case cur == "":
			return fmt.Errorf("%w: no member with instance id %q in group %s", ErrUnknownMemberID, instanceID, g.id)
		case cur != memberID:
			return fmt.Errorf("%w: instance %s of group %s is member %s now, not %s", ErrFencedInstanceID, instanceID, g.id, cur, memberID)
		}
	}
	if g.byID[memberID] == nil {
		return fmt.Errorf("%w: %q is not a member of group %s", ErrUnknownMemberID, memberID, g.id)
	}
	return nil
}

func (g *group) allJoinedLocked() bool {
	return g.awaitingJoin == len(g.members) && len(g.pending) == 0
}

// rebalanceTimeoutLocked is the longest rebalance timeout of the members.
func (g *group) rebalanceTimeoutLocked() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

// electJoinedLeaderLocked keeps the leader if it joined again, or else
// elects the first member that did. It reports false when none did.
func (g *group) electJoinedLeaderLocked() bool {
	if m := g.byID[g.leader]; m != nil && m.joinCh != nil {
		return true
	}
	for _, m := range g.members {
		if m.joinCh != nil {
			g.leader = m.id
			return true
		}
	}
	return false
}

// supportsProtocolsLocked reports whether a member with this protocol
// type and protocols may join: for an empty group any non-empty offer, for
// others the group's type and a protocol every member supports.
func (g *group) supportsProtocolsLocked(protocolType string, protocols []GroupProtocol) bool {
	if protocolType == "" || len(protocols) == 0 {
		return false
	}
	if len(g.members) == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		if g.supportedByAllLocked(p.Name) {
			return true
		}
	}
	return false
}

func (g *group) supportedByAllLocked(name string) bool {
	for _, m := range g.members {
		if m.metadataFor(name) == nil {
			return false
		}
	}
	return true
}

// selectProtocolLocked chooses the generation's protocol as Kafka does:
// among the protocols every member supports, each member votes for the
// first it prefers; most votes wins, ties to the earliest voter's.
func (g *group) selectProtocolLocked() string {
	votes := map[string]int{}
	var order []string
	for _, m := range g.members {
		for _, p := range m.protocols {
			if g.supportedByAllLocked(p.Name) {
				if votes[p.Name] == 0 {
					order = append(order, p.Name)
				}
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, name := range order {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// computeSubscribedLocked returns the topics a "consumer" group's members
// subscribe to, or nil when the group is of another type or a subscription
// does not decode.
func (g *group) computeSubscribedLocked() map[string]bool {
	if g.protocolType != consumerProtocolType {
		return nil
	}
	topics := map[string]bool{}
	for _, m := range g.members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			return nil
		}
		for _, t := range md.Topics {
			topics[t] = true
		}
	}
	return topics
}

// joinResultLocked is m's answer for the current generation; with
// withMembers, the leader's lists the members.
func (g *group) joinResultLocked(m *member, withMembers bool) JoinResult {
	res := JoinResult{
		Generation:   g.generation,
		ProtocolType: g.protocolType,
		Protocol:     g.protocol,
		LeaderID:     g.leader,
		MemberID:     m.id,
	}
	if withMembers && g.leader == m.id {
		res.Members = make([]GroupMember, len(g.members))
		for i, mm := range g.members {
			res.Members[i] = GroupMember{MemberID: mm.id, InstanceID: mm.instanceID, Metadata: mm.metadataFor(g.protocol)}
		}
	}
	return res
}

// metadataFor returns m's metadata for protocol name; nil if m does not
// support it (an empty metadata is returned non-nil).
func (m *member) metadataFor(name string) []byte {
	for _, p := range m.protocols {
		if p.Name == name {
			if p.Metadata == nil {
				return []byte{}
			}
			return p.Metadata
		}
	}
	return nil
}

// matches reports whether protocols are the ones m joined with.
func (m *member) matches(protocols []GroupProtocol) bool {
	return slices.EqualFunc(m.protocols, protocols, func(a, b GroupProtocol) bool {
		return a.Name == b.Name && bytes.Equal(a.Metadata, b.Metadata)
	})
}

func cloneProtocols(ps []GroupProtocol) []GroupProtocol {
	out := make([]GroupProtocol, len(ps))
	for i, p := range ps {
		out[i] = GroupProtocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)}
	}
	return out
}

func protocolNames(ps []GroupProtocol) []string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return names
}

// newMemberID returns prefix followed by a random UUID, as Kafka makes
// member ids.
func newMemberID(prefix string) string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // never fails
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}

// DescribeGroup describes a group. It fails with ErrGroupIDNotFound for a
// group the coordinator does not know (the Kafka server answers that with
// the state Dead, as Kafka does).
func (gc *GroupCoordinator) DescribeGroup(groupID string) (GroupDescription, error) {
	g, err := gc.lockGroup(groupID, false)
	if err != nil {
		return GroupDescription{}, err
	}
	if g == nil {
		return GroupDescription{}, fmt.Errorf("%w: %s", ErrGroupIDNotFound, groupID)
	}
	defer g.unlock()
	d := GroupDescription{
		Group:        g.id,
		State:        g.state,
		ProtocolType: g.protocolType,
		Protocol:     g.protocol,
		Generation:   g.generation,
		LeaderID:     g.leader,
		Members:      make([]MemberDescription, len(g.members)),
	}
	for i, m := range g.members {
		d.Members[i] = MemberDescription{
			MemberID:   m.id,
			InstanceID: m.instanceID,
			ClientID:   m.clientID,
			ClientHost: m.clientHost,
			Metadata:   m.metadataFor(g.protocol),
			Assignment: m.assignment,
		}
	}
	return d, nil
}

// ListGroups lists the groups, sorted by id; with states, only those in
// one of them.
func (gc *GroupCoordinator) ListGroups(states ...GroupState) []GroupListing {
	var out []GroupListing
	for _, g := range gc.snapshot() {
		g.mu.Lock()
		if g.state != GroupDead && (len(states) == 0 || slices.Contains(states, g.state)) {
			out = append(out, GroupListing{Group: g.id, ProtocolType: g.protocolType, State: g.state})
		}
		g.unlock()
	}
	slices.SortFunc(out, func(a, b GroupListing) int { return cmp.Compare(a.Group, b.Group) })
	return out
}

// DeleteGroups deletes groups that have no members, with their committed
// offsets (tombstones are written to __consumer_offsets). errs[i] is the
// outcome for groups[i]: nil, ErrGroupIDNotFound, ErrNonEmptyGroup, a
// closed broker's or a write's error, or ctx's.
func (gc *GroupCoordinator) DeleteGroups(ctx context.Context, groups ...string) (errs []error) {
	errs = make([]error, len(groups))
	for i, id := range groups {
		errs[i] = gc.deleteGroup(ctx, id)
	}
	return errs
}

func (gc *GroupCoordinator) deleteGroup(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g, err := gc.lockGroup(id, false)
	if err != nil {
		return err
	}
	if g == nil {
		return fmt.Errorf("%w: %s", ErrGroupIDNotFound, id)
	}
	if g.state != GroupEmpty {
		state := g.state
		g.unlock()
		return fmt.Errorf("%w: group %s is %v", ErrNonEmptyGroup, id, state)
	}
	a, err := gc.appendLocked(g.id, func(w *recordWriter) {
		for topic, parts := range g.offsets {
			for p := range parts {
				w.addOffsetTombstone(g.id, topic, p)
			}
		}
		w.addGroupTombstone(g.id)
	})
	if err == nil {
		gc.removeGroupLocked(g)
	}
	g.unlock()
	if err != nil {
		return fmt.Errorf("commitlog: delete group %s: %w", id, err)
	}
	return a.wait(ctx)
}
