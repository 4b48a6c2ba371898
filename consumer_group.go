package commitlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Consumer groups in the Consumer: the client side of Kafka's classic group
// protocol, whose coordinator is consumergroup.go, with the semantics of
// Kafka's Java consumer and franz-go's kgo.
//
// # Membership
//
// A consumer with ConsumerConfig.Group and Topics is a member of its group.
// A goroutine of its own (run) joins the group (JoinGroup), and when the
// coordinator names it leader, computes every member's assignment with
// AssignGroup and the assignor the group chose; then it syncs (SyncGroup)
// and takes the partitions it was given, positioned at the group's
// committed offsets (FetchOffsets), or where ConsumerConfig.Reset says for
// partitions without one. While the generation lasts, a second goroutine
// heartbeats every HeartbeatInterval; the heartbeat is how a member learns
// that the group rebalances (a member joined, left, or its session
// expired), and the leader also looks every MetadataMaxAge for topic
// changes that call for a new assignment. Then the member joins again:
//
//   - Eager assignors (range, roundrobin): the consumer gives up all its
//     partitions before it joins, and takes the new assignment whole.
//   - Cooperative ones (all of ConsumerConfig.Assignors cooperative,
//     KIP-429): it joins keeping its partitions and declares them in its
//     subscription; the assignor leaves out of this round the partitions
//     that move, their owner gives them up and joins again at once, and the
//     second round hands them to their new owner. Partitions that stay
//     keep being consumed throughout.
//
// Giving up partitions (revoke) goes: Poll stops returning their records;
// if the last Poll returned records of them, the consumer waits until the
// application calls Poll again (or Close), which says it is done with them
// (the lifetime rule of Poll's records says so already); OnRevoked runs;
// under AutoCommit the positions are committed; the partitions go. The wait
// is bounded: an application that has not called Poll for RebalanceTimeout
// (max.poll.interval.ms) leaves the group instead, its partitions lost
// (OnLost, nothing committed), and joins again at its next Poll. Partitions
// are also lost, with no chance to commit, when the member finds it was
// removed from the generation (its session expired, a newer instance
// fenced it). Errors that no retry mends (ErrFencedInstanceID,
// ErrGroupMaxSizeReached, ErrInconsistentGroupProtocol, a closed broker)
// end the membership: Poll returns them from then on.
//
// Close gives up every partition (OnRevoked), commits under AutoCommit,
// stops the heartbeat and leaves the group, so that it rebalances at once;
// a static member (InstanceID) does not leave, and its partitions move only
// when its session expires unless it comes back first.
//
// A consumer with Group and Partitions is no member: it commits with no
// generation, as a client outside group management does, and the
// coordinator takes such commits only while the group has no members.
//
// # Commits and delivery
//
// A committed offset is the offset of the next record to consume: the
// position after the last record processed. What the group committed is
// where a partition's next owner starts, so the guarantee is at least once
// when the application commits only what it has processed, and at most
// once if it commits before processing. The consumer never commits beyond
// what Poll has returned:
//
//   - Commit commits the position of every assigned partition: the offset
//     after the last record Poll returned (inside a Records loop, the
//     last record yielded), or where Seek moved it. Call it after
//     processing.
//   - CommitAsync does the same without waiting; commits are sent in the
//     order asked, and callbacks run in that order.
//   - CommitOffsets commits explicit offsets, with metadata, of assigned
//     partitions.
//   - AutoCommit commits every AutoCommitInterval what the Polls before the
//     latest one returned: the position each partition had when Poll was
//     last called. Calling Poll says the records of the previous Poll are
//     processed (they die then), so a loop that processes each Poll's
//     records before the next Poll gets at least once; an application
//     that hands records to other goroutines must commit itself. When
//     partitions are revoked, after the wait above, and on Close, it
//     commits what every Poll returned.
//
// A commit is checked against the consumer's assignment (ErrNotAssigned)
// and made for the generation in which the partitions were assigned: a
// member whose generation ended is refused by the coordinator
// (ErrIllegalGeneration, ErrUnknownMemberID, ErrRebalanceInProgress while
// it syncs), which fences zombies. Of two commits of one partition, the
// one asked for later wins, whatever the order in which they reach the
// coordinator.
//
// Redelivery: the records of a revoked partition that the application got
// from Poll, and that were not committed by the time the partition moved,
// are delivered again to its next owner, from the last committed offset.
// With commit after processing, or AutoCommit, a partition revoked by a
// rebalance is committed after the wait, so nothing is redelivered unless
// the application did not call Poll within RebalanceTimeout; partitions
// lost (fencing, session expiry, that timeout) redeliver whatever was not
// committed before. Commit, CommitAsync and AutoCommit never skip a
// record: they cover only records Poll returned.
//
// # Goroutines and locks
//
// A member has two goroutines, run and commitLoop (which sends CommitAsync
// requests and auto-commits), plus one heartbeat goroutine per generation,
// which run starts and stops. Close waits for all of them. The callbacks
// run on run's goroutine. State shared with Poll lives under Consumer.mu,
// which is never held while the coordinator or a callback is called;
// commitMu, held while a commit is sent to the coordinator, serialises
// commits and is taken before Consumer.mu.

// Defaults of ConsumerConfig's group fields: Kafka's.
const (
	DefaultSessionTimeout     = 45 * time.Second
	DefaultRebalanceTimeout   = 5 * time.Minute
	DefaultHeartbeatInterval  = 3 * time.Second
	DefaultAutoCommitInterval = 5 * time.Second
)

// groupRetryBackoff is how long a member waits before it joins again after
// an error that may pass (retry.backoff.ms).
const groupRetryBackoff = 100 * time.Millisecond

// groupClientID names the consumer in DescribeGroup, and prefixes the
// member ids of dynamic members.
const groupClientID = "commitlog"

// checkGroupFields validates the group fields, naming the first bad one.
func (c *ConsumerConfig) checkGroupFields() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: ConsumerConfig.%s %v %s", ErrInvalidConfig, field, v, why)
	}
	membership := []struct {
		field string
		set   bool
	}{
		{"InstanceID", c.InstanceID != ""},
		{"Assignors", c.Assignors != nil},
		{"SessionTimeout", c.SessionTimeout != 0},
		{"RebalanceTimeout", c.RebalanceTimeout != 0},
		{"HeartbeatInterval", c.HeartbeatInterval != 0},
		{"OnAssigned", c.OnAssigned != nil},
		{"OnRevoked", c.OnRevoked != nil},
		{"OnLost", c.OnLost != nil},
	}
	for _, f := range membership {
		switch {
		case !f.set:
		case c.Group == "":
			return fmt.Errorf("%w: ConsumerConfig.%s is set without a Group", ErrInvalidConfig, f.field)
		case c.Partitions != nil:
			return fmt.Errorf("%w: ConsumerConfig.%s is set, but with Partitions the consumer does not join group %s", ErrInvalidConfig, f.field, c.Group)
		}
	}
	if c.Group == "" && (c.AutoCommit || c.AutoCommitInterval != 0) {
		field := "AutoCommit"
		if !c.AutoCommit {
			field = "AutoCommitInterval"
		}
		return fmt.Errorf("%w: ConsumerConfig.%s needs a Group to commit to", ErrInvalidConfig, field)
	}
	switch {
	case c.SessionTimeout < 0:
		return bad("SessionTimeout", c.SessionTimeout, "is negative")
	case c.RebalanceTimeout < 0:
		return bad("RebalanceTimeout", c.RebalanceTimeout, "is negative")
	case c.HeartbeatInterval < 0:
		return bad("HeartbeatInterval", c.HeartbeatInterval, "is negative")
	case c.AutoCommitInterval < 0:
		return bad("AutoCommitInterval", c.AutoCommitInterval, "is negative")
	case c.Assignors != nil && len(c.Assignors) == 0:
		return bad("Assignors", "[]", "lists no assignor")
	}
	var names []string
	for i, a := range c.Assignors {
		if a == nil || a.Name() == "" {
			return fmt.Errorf("%w: ConsumerConfig.Assignors[%d] is nil or has no name", ErrInvalidConfig, i)
		}
		if slices.Contains(names, a.Name()) {
			return fmt.Errorf("%w: ConsumerConfig.Assignors names %q twice", ErrInvalidConfig, a.Name())
		}
		names = append(names, a.Name())
	}
	return nil
}

// groupDefaults fills in the group fields' defaults.
func (c *ConsumerConfig) groupDefaults() {
	if c.Partitions == nil {
		if c.Assignors == nil {
			c.Assignors = []Assignor{RangeAssignor{}, CooperativeStickyAssignor{}}
		} else {
			c.Assignors = slices.Clone(c.Assignors)
		}
		c.SessionTimeout = cmp.Or(c.SessionTimeout, DefaultSessionTimeout)
		c.RebalanceTimeout = cmp.Or(c.RebalanceTimeout, DefaultRebalanceTimeout)
		c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	}
	c.AutoCommitInterval = cmp.Or(c.AutoCommitInterval, DefaultAutoCommitInterval)
}

// checkSessionTimeout checks the timeouts of a normalized configuration
// against the broker's bounds.
func (c *ConsumerConfig) checkSessionTimeout(opts *Options) error {
	if c.Group == "" || c.Partitions != nil {
		return nil
	}
	if c.SessionTimeout < opts.GroupMinSessionTimeout || c.SessionTimeout > opts.GroupMaxSessionTimeout {
		return fmt.Errorf("%w: ConsumerConfig.SessionTimeout %v outside the broker's [%v, %v] (Options.GroupMinSessionTimeout, GroupMaxSessionTimeout)",
			ErrInvalidConfig, c.SessionTimeout, opts.GroupMinSessionTimeout, opts.GroupMaxSessionTimeout)
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("%w: ConsumerConfig.HeartbeatInterval %v must be below SessionTimeout %v", ErrInvalidConfig, c.HeartbeatInterval, c.SessionTimeout)
	}
	return nil
}

// groupMember is a consumer's part in its group: the membership (with
// Topics) and the commits.
type groupMember struct {
	c           *Consumer
	gc          *GroupCoordinator
	cfg         *ConsumerConfig // the consumer's; its group fields never change
	member      bool            // joins the group; false with Partitions
	cooperative bool            // every assignor is

	ctx       context.Context // canceled by close
	cancel    context.CancelFunc
	started   bool          // start ran (before anyone else had the consumer)
	done      chan struct{} // closed when run returns
	rebalance chan struct{} // buffered (1): Rebalance was called

	// commitMu serialises the commit requests sent to the coordinator, so
	// that the check of a request against the assignment and the record
	// of its success bracket it. Taken before Consumer.mu.
	commitMu sync.Mutex

	qmu     sync.Mutex // guards queue and qclosed
	queue   []asyncCommit
	qclosed bool
	qsignal chan struct{} // buffered (1): queue grew
	qstop   chan struct{} // closed to stop commitLoop
	qdone   chan struct{} // closed when commitLoop returns

	// yielded counts the records of yielding that a Records loop yielded;
	// written by the loop, read under Consumer.mu.
	yielded atomic.Int64

	// finalErr is the error of the commit shutdown made; written before
	// done is closed (by run) or by close itself.
	finalErr error

	// Guarded by Consumer.mu.
	memberID   string
	generation int32 // of the partitions held; -1 outside a generation
	leader     bool
	watched    map[string]topicState    // the leader's: the topics its assignment covered
	fatal      error                    // the membership ended for good: Poll returns it
	polling    int                      // calls to Poll in progress
	lastPoll   time.Time                // when the last call to Poll returned (or the consumer was made)
	called     chan struct{}            // closed by the next call to Poll; nil until wanted
	idleCalls  uint64                   // Consumer.calls when the member left for want of Poll
	seq        uint64                   // commit snapshots taken
	startAt    map[topicPartition]int64 // committed offsets fetchStart found, until used
	yielding   []Record                 // the records of a Records loop's Poll, nil outside one
	yieldN     uint64                   // the number of that Poll
}

// asyncCommit is a CommitAsync request.
type asyncCommit struct {
	req commitRequest
	err error // when set, the request could not be made: reported as is
	cb  func(map[string]map[int32]OffsetAndMetadata, error)
}

func newGroupMember(c *Consumer) *groupMember {
	ctx, cancel := context.WithCancel(context.Background())
	m := &groupMember{
		c:          c,
		gc:         c.b.Groups(),
		cfg:        &c.cfg,
		member:     c.cfg.Partitions == nil,
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		rebalance:  make(chan struct{}, 1),
		qsignal:    make(chan struct{}, 1),
		qstop:      make(chan struct{}),
		qdone:      make(chan struct{}),
		generation: -1,
		lastPoll:   time.Now(),
	}
	m.cooperative = len(c.cfg.Assignors) > 0
	for _, a := range c.cfg.Assignors {
		m.cooperative = m.cooperative && a.Cooperative()
	}
	return m
}

// fetchStart reads the group's committed offsets of partitions, where a
// consumer that does not join starts.
func (m *groupMember) fetchStart(partitions map[string][]int32) error {
	committed, err := m.gc.FetchOffsets(m.ctx, m.cfg.Group, partitions)
	if err != nil {
		return err
	}
	m.startAt = map[topicPartition]int64{}
	for topic, parts := range committed {
		for p, om := range parts {
			m.startAt[topicPartition{topic, p}] = om.Offset
		}
	}
	return nil
}

// startOffset returns, once, the committed offset fetchStart found for a
// partition, or -1. m may be nil. The caller holds Consumer.mu.
func (m *groupMember) startOffset(topic string, partition int32) int64 {
	if m == nil {
		return -1
	}
	tp := topicPartition{topic, partition}
	off, ok := m.startAt[tp]
	if !ok {
		return -1
	}
	delete(m.startAt, tp)
	return off
}

// start starts the member's goroutines.
func (m *groupMember) start() {
	m.started = true
	go m.commitLoop()
	if m.member {
		go m.run()
	} else {
		close(m.done)
	}
}

// close ends the membership as Close documents, waits for the member's
// goroutines and returns the final commit's error.
func (m *groupMember) close() error {
	m.cancel()
	if !m.started {
		return nil
	}
	<-m.done
	if !m.member {
		m.finalErr = m.shutdown(nil)
	}
	return m.finalErr
}

// groupEvent says what a member does next. For heartbeat.raise, a later
// event is a more serious one.
type groupEvent int8

const (
	evNone    groupEvent = iota // the generation goes on
	evRejoin                    // join again: the group rebalances, topics changed, Rebalance, or a cooperative revocation
	evRetry                     // an error that may pass: join again after a backoff
	evLost                      // the member's generation is over (ErrIllegalGeneration): its partitions are lost
	evUnknown                   // the member was removed (ErrUnknownMemberID): lost, and it joins as a new member
	evIdle                      // the application did not call Poll within RebalanceTimeout: leave until it does
	evFatal                     // the membership ends: Poll returns the error
	evClose                     // the consumer closes
)

// classify maps a coordinator's error to what the member does about it.
func classify(err error) groupEvent {
	switch {
	case err == nil:
		return evNone
	case errors.Is(err, ErrRebalanceInProgress):
		return evRejoin
	case errors.Is(err, ErrIllegalGeneration):
		return evLost
	case errors.Is(err, ErrUnknownMemberID):
		return evUnknown
	case errors.Is(err, ErrFencedInstanceID), errors.Is(err, ErrInconsistentGroupProtocol),
		errors.Is(err, ErrGroupMaxSizeReached), errors.Is(err, ErrInvalidSessionTimeout),
		errors.Is(err, ErrInvalidGroupID), errors.Is(err, ErrClosed):
		return evFatal
	}
	return evRetry
}

// event is classify, except that every error is evClose once the consumer
// closes.
func (m *groupMember) event(err error) groupEvent {
	if m.ctx.Err() != nil {
		return evClose
	}
	return classify(err)
}

// run is the member's goroutine: it joins, syncs, holds the generation,
// and joins again, until the consumer closes or the membership fails. The
// callbacks run here.
func (m *groupMember) run() {
	defer close(m.done)
	var hb *heartbeat
	ev, err := evRejoin, error(nil)
	for {
		switch ev {
		case evClose:
			m.finalErr = m.shutdown(hb)
			return
		case evFatal:
			hb.stop()
			m.fail(err)
			return
		case evRejoin:
			// An eager member gives up everything before it joins.
			if !m.cooperative && !m.revoke(m.assigned()) {
				ev = evIdle
				continue
			}
		case evRetry:
			if !m.sleep(groupRetryBackoff) {
				ev = evClose
				continue
			}
		case evLost, evUnknown:
			hb.stop()
			hb = nil
			m.lose(ev == evUnknown)
		case evIdle:
			hb.stop()
			hb = nil
			m.leave()
			if !m.awaitPoll() {
				ev = evClose
				continue
			}
		}
		if m.ctx.Err() != nil {
			ev = evClose
			continue
		}
		hb.stop() // a generation's heartbeats end with the next join
		hb, ev, err = m.round()
	}
}

// round runs one generation: join and sync, take the assignment, and wait
// for what ends the generation. It returns the generation's heartbeat, if
// it got that far, and what to do next.
func (m *groupMember) round() (*heartbeat, groupEvent, error) {
	select {
	case <-m.rebalance: // this join serves it
	default:
	}
	a, err := m.joinAndSync()
	if err != nil {
		return nil, m.event(err), err
	}
	hb := m.startHeartbeat()
	if ev, err := m.apply(a); ev != evNone {
		return hb, ev, err
	}
	ev, err := m.await(hb)
	return hb, ev, err
}

// joinAndSync joins the group and syncs; the leader computes the
// assignment. It returns the member's assignment.
func (m *groupMember) joinAndSync() (Assignment, error) {
	c := m.c
	c.mu.Lock()
	sub := Subscription{Topics: m.cfg.Topics, Generation: m.generation, Owned: c.assignmentLocked()}
	memberID := m.memberID
	c.mu.Unlock()
	protocols := make([]GroupProtocol, len(m.cfg.Assignors))
	for i, a := range m.cfg.Assignors {
		protocols[i] = NewGroupProtocol(a, sub)
	}
	res, err := m.gc.Join(m.ctx, JoinRequest{
		Group:                  m.cfg.Group,
		MemberID:               memberID,
		InstanceID:             m.cfg.InstanceID,
		ClientID:               groupClientID,
		ProtocolType:           consumerProtocolType,
		Protocols:              protocols,
		SessionTimeout:         m.cfg.SessionTimeout,
		RebalanceTimeout:       m.cfg.RebalanceTimeout,
		SupportsSkipAssignment: true,
	})
	if err != nil {
		return Assignment{}, fmt.Errorf("commitlog: join group %s: %w", m.cfg.Group, err)
	}
	leader := res.LeaderID == res.MemberID
	c.mu.Lock()
	m.memberID, m.generation, m.leader = res.MemberID, res.Generation, leader
	c.mu.Unlock()
	var plan map[string][]byte
	if leader {
		var watched map[string]topicState
		if plan, watched, err = m.plan(res); err != nil {
			return Assignment{}, fmt.Errorf("commitlog: assign group %s: %w: %w", m.cfg.Group, ErrInconsistentGroupProtocol, err)
		}
		c.mu.Lock()
		m.watched = watched
		c.mu.Unlock()
	}
	raw, err := m.gc.Sync(m.ctx, SyncRequest{
		Group:        m.cfg.Group,
		Generation:   res.Generation,
		MemberID:     res.MemberID,
		InstanceID:   m.cfg.InstanceID,
		ProtocolType: consumerProtocolType,
		Protocol:     res.Protocol,
		Assignments:  plan,
	})
	if err != nil {
		return Assignment{}, fmt.Errorf("commitlog: sync group %s: %w", m.cfg.Group, err)
	}
	a, err := DecodeAssignment(raw)
	if err != nil {
		return Assignment{}, fmt.Errorf("commitlog: sync group %s: %w: %w", m.cfg.Group, ErrInconsistentGroupProtocol, err)
	}
	return a, nil
}

// plan computes the leader's assignment, and the topics it covers with
// what they were then, for topicsChanged.
func (m *groupMember) plan(res JoinResult) (map[string][]byte, map[string]topicState, error) {
	watched := map[string]topicState{}
	count := func(topic string) int32 {
		t, err := m.c.b.Topic(topic)
		if err != nil {
			watched[topic] = topicState{}
			return 0
		}
		n := t.NumPartitions()
		watched[topic] = topicState{t: t, n: int(n)}
		return n
	}
	if res.SkipAssignment {
		// A static leader back in a stable group (KIP-814): the group
		// keeps its assignment, and the leader watches its topics.
		for _, gm := range res.Members {
			if s, err := DecodeSubscription(gm.Metadata); err == nil {
				for _, t := range s.Topics {
					if _, ok := watched[t]; !ok {
						count(t)
					}
				}
			}
		}
		return nil, watched, nil
	}
	i := slices.IndexFunc(m.cfg.Assignors, func(a Assignor) bool { return a.Name() == res.Protocol })
	if i < 0 {
		return nil, nil, fmt.Errorf("the group chose protocol %q, which this consumer does not offer", res.Protocol)
	}
	plan, err := AssignGroup(m.cfg.Assignors[i], res.Members, count)
	return plan, watched, err
}

// topicsChanged reports whether a topic the leader's assignment covers
// was created, deleted, re-created or given partitions since.
func (m *groupMember) topicsChanged() bool {
	m.c.mu.Lock()
	watched := m.watched // replaced, never modified
	m.c.mu.Unlock()
	for topic, s := range watched {
		t, err := m.c.b.Topic(topic)
		if err != nil {
			t = nil
		}
		if t != s.t || t != nil && int(t.NumPartitions()) != s.n {
			return true
		}
	}
	return false
}

// apply takes an assignment: partitions no longer in it are revoked, new
// ones added. It returns evNone, or evRejoin when it revoked some (the
// second round of a cooperative rebalance), evIdle when the application
// held records of those and did not call Poll in time, or what a failure
// to fetch offsets calls for.
func (m *groupMember) apply(a Assignment) (groupEvent, error) {
	c := m.c
	want := map[topicPartition]bool{}
	for topic, ids := range a.Partitions {
		for _, id := range ids {
			want[topicPartition{topic, id}] = true
		}
	}
	c.mu.Lock()
	var gone []*cursor
	for _, cur := range c.cursors {
		if !want[topicPartition{cur.name, cur.p.id}] {
			gone = append(gone, cur)
		}
	}
	added := map[string][]int32{}
	for tp := range want {
		if c.byTP[tp] == nil {
			added[tp.topic] = append(added[tp.topic], tp.partition)
		}
	}
	c.mu.Unlock()
	for _, ids := range added {
		slices.Sort(ids)
	}
	if !m.revoke(gone) {
		return evIdle, nil
	}
	if err := m.assign(added); err != nil {
		return m.event(err), err
	}
	if len(gone) > 0 {
		return evRejoin, nil
	}
	return evNone, nil
}

// assign adds partitions, positioned at the group's committed offsets
// (Reset for those without), and calls OnAssigned, even with none: it
// also says that a rebalance completed. Poll reads them once OnAssigned
// returned.
func (m *groupMember) assign(added map[string][]int32) error {
	var committed map[string]map[int32]OffsetAndMetadata
	if len(added) > 0 {
		var err error
		if committed, err = m.gc.FetchOffsets(m.ctx, m.cfg.Group, added); err != nil {
			return fmt.Errorf("commitlog: fetch offsets of group %s: %w", m.cfg.Group, err)
		}
	}
	c := m.c
	got := map[string][]int32{}
	var curs []*cursor
	c.mu.Lock()
	for topic, ids := range added {
		t, err := c.b.Topic(topic)
		if err != nil {
			continue // deleted since: the leader's next look rebalances
		}
		if s, ok := c.seen[topic]; ok && s.t != t {
			c.dropTopicLocked(topic) // re-created: the cursors read a log that is gone
		}
		for _, id := range ids {
			p, err := t.Partition(id)
			if err != nil {
				continue
			}
			off := int64(-1)
			if om, ok := committed[topic][id]; ok {
				off = om.Offset
			}
			cur := c.addLocked(topic, p, off)
			cur.paused = true
			curs = append(curs, cur)
			got[topic] = append(got[topic], id)
		}
		if len(got[topic]) > 0 {
			c.seen[topic] = topicState{t: t}
		}
	}
	c.mu.Unlock()
	m.callback(m.cfg.OnAssigned, got)
	c.mu.Lock()
	for _, cur := range curs {
		cur.paused = false
	}
	c.mu.Unlock()
	c.wakeup()
	return nil
}

// revoke gives up partitions while the member's generation is valid.
// Poll stops returning their records at once; if the application holds
// records of them (the last Poll returned some), revoke waits until it
// calls Poll again or closes the consumer; then OnRevoked runs, AutoCommit
// commits what Poll returned, and the partitions go. It reports false,
// having removed nothing, when that wait outlasted RebalanceTimeout since
// the last Poll: the caller loses the partitions instead.
func (m *groupMember) revoke(curs []*cursor) bool {
	if len(curs) == 0 {
		return true
	}
	c := m.c
	c.mu.Lock()
	held := false
	for _, cur := range curs {
		cur.paused = true
		held = held || cur.held != 0 && cur.held == c.calls
	}
	var called <-chan struct{}
	var wait time.Duration
	if held {
		called = m.nextCallLocked()
		wait = time.Until(m.lastPoll.Add(m.cfg.RebalanceTimeout))
	}
	c.mu.Unlock()
	if called != nil {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-called:
		case <-m.ctx.Done(): // Close: the application is done with its records
		case <-t.C:
			return false
		}
	}
	m.callback(m.cfg.OnRevoked, partitionsOf(curs))
	if m.cfg.AutoCommit {
		_ = m.commitGiven(curs) // on failure the next owner consumes them again
	}
	m.remove(curs)
	return true
}

// lose gives up every partition after the member's generation ended: Poll
// stops returning their records, OnLost runs (OnRevoked when nil), nothing
// is committed. With forget, the member joins again as a new member.
func (m *groupMember) lose(forget bool) {
	c := m.c
	c.mu.Lock()
	m.generation = -1
	if forget {
		m.memberID = ""
	}
	curs := slices.Clone(c.cursors)
	for _, cur := range curs {
		cur.paused = true
	}
	c.mu.Unlock()
	if len(curs) > 0 {
		fn := m.cfg.OnLost
		if fn == nil {
			fn = m.cfg.OnRevoked
		}
		m.callback(fn, partitionsOf(curs))
	}
	m.remove(curs)
}

// leave takes the member out of the group because the application stopped
// calling Poll: its partitions are lost, and a dynamic member tells the
// coordinator, so that the group rebalances at once; a static member's
// session expires instead.
func (m *groupMember) leave() {
	c := m.c
	c.mu.Lock()
	id := m.memberID
	m.idleCalls = c.calls
	c.mu.Unlock()
	m.lose(true)
	m.sendLeave(id)
}

// sendLeave tells the coordinator that dynamic member id leaves.
func (m *groupMember) sendLeave(id string) {
	if id == "" || m.cfg.InstanceID != "" {
		return
	}
	_, _ = m.gc.Leave(context.Background(), m.cfg.Group, MemberIdentity{MemberID: id})
}

// awaitPoll waits for a call to Poll since leave, and reports false if the
// consumer closes first.
func (m *groupMember) awaitPoll() bool {
	c := m.c
	c.mu.Lock()
	var called <-chan struct{}
	if m.polling == 0 && c.calls == m.idleCalls {
		called = m.nextCallLocked()
	}
	c.mu.Unlock()
	if called == nil {
		return true
	}
	select {
	case <-called:
		return true
	case <-m.ctx.Done():
		return false
	}
}

// await waits, while the generation lasts, for what ends it: the
// heartbeat's news, Rebalance, the leader's topics changing, the
// application not calling Poll, Close.
func (m *groupMember) await(hb *heartbeat) (groupEvent, error) {
	m.c.mu.Lock()
	leader := m.leader
	m.c.mu.Unlock()
	var meta <-chan time.Time
	if leader {
		t := time.NewTicker(m.cfg.MetadataMaxAge)
		defer t.Stop()
		meta = t.C
	}
	idle := time.NewTimer(m.untilIdle())
	defer idle.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return evClose, nil
		case <-hb.signal:
			return hb.event()
		case <-m.rebalance:
			return evRejoin, nil
		case <-meta:
			if m.topicsChanged() {
				return evRejoin, nil
			}
		case <-idle.C:
			d := m.untilIdle()
			if d <= 0 {
				return evIdle, nil
			}
			idle.Reset(d)
		}
	}
}

// untilIdle returns how long the application may still go without calling
// Poll.
func (m *groupMember) untilIdle() time.Duration {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if m.polling > 0 {
		return m.cfg.RebalanceTimeout
	}
	return time.Until(m.lastPoll.Add(m.cfg.RebalanceTimeout))
}

// sleep waits d, and reports false if the consumer closes first.
func (m *groupMember) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.ctx.Done():
		return false
	}
}

// fail ends the membership for good: the partitions are lost, commits
// stop, and Poll returns err from now on.
func (m *groupMember) fail(err error) {
	m.lose(true)
	m.stopCommitter()
	m.c.mu.Lock()
	m.fatal = err
	m.c.mu.Unlock()
	m.c.wakeup()
}

// shutdown ends the membership on Close: the commits asked for are sent,
// every partition is revoked (OnRevoked, then under AutoCommit a commit of
// what Poll returned), the heartbeat stops, and a dynamic member leaves.
// hb may be nil. It returns the commit's error.
func (m *groupMember) shutdown(hb *heartbeat) error {
	m.stopCommitter()
	c := m.c
	c.mu.Lock()
	curs := slices.Clone(c.cursors)
	for _, cur := range curs {
		cur.paused = true
	}
	id := m.memberID
	c.mu.Unlock()
	var err error
	if len(curs) > 0 && m.member {
		m.callback(m.cfg.OnRevoked, partitionsOf(curs))
	}
	if len(curs) > 0 && m.cfg.AutoCommit {
		err = m.commitGiven(curs)
	}
	hb.stop()
	if m.member {
		m.sendLeave(id)
	}
	return err
}

// assigned returns the assignment's cursors.
func (m *groupMember) assigned() []*cursor {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	return slices.Clone(m.c.cursors)
}

// remove takes cursors out of the assignment, unless they left it already.
func (m *groupMember) remove(curs []*cursor) {
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cur := range curs {
		if c.byTP[topicPartition{cur.name, cur.p.id}] == cur {
			c.removeLocked(cur)
		}
	}
	for topic := range c.seen {
		if !slices.ContainsFunc(c.cursors, func(cur *cursor) bool { return cur.name == topic }) {
			delete(c.seen, topic)
		}
	}
}

// callback calls fn, if not nil, with a context that expires after
// RebalanceTimeout.
func (m *groupMember) callback(fn func(context.Context, map[string][]int32), partitions map[string][]int32) {
	if fn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.RebalanceTimeout)
	defer cancel()
	fn(ctx, partitions)
}

// partitionsOf returns the partitions of curs by topic, sorted.
func partitionsOf(curs []*cursor) map[string][]int32 {
	out := map[string][]int32{}
	for _, cur := range curs {
		out[cur.name] = append(out[cur.name], cur.p.id)
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// nextCallLocked returns a channel the next call to Poll closes.
func (m *groupMember) nextCallLocked() <-chan struct{} {
	if m.called == nil {
		m.called = make(chan struct{})
	}
	return m.called
}

// pollBeganLocked records a call to Poll. The records of the previous one
// are done with, so positions are now what earlier Polls returned (the
// marks auto-commit commits), and whoever waits for the call goes on.
func (m *groupMember) pollBeganLocked() {
	m.polling++
	m.yielding = nil
	for _, cur := range m.c.cursors {
		cur.mark = cur.pos
	}
	if m.called != nil {
		close(m.called)
		m.called = nil
	}
}

// pollEndedLocked records the return of a call to Poll.
func (m *groupMember) pollEndedLocked() {
	m.polling--
	m.lastPoll = time.Now()
}

// yieldingLocked records that a Records loop yields recs, from Poll number
// n.
func (m *groupMember) yieldingLocked(recs []Record, n uint64) {
	m.yielding, m.yieldN = recs, n
	m.yielded.Store(0)
}

// givenLocked returns, inside a Records loop, the cursors whose position
// runs ahead of what the loop yielded, with the offset of their first
// record not yet yielded.
func (m *groupMember) givenLocked() map[*cursor]int64 {
	if m.yielding == nil {
		return nil
	}
	out := map[*cursor]int64{}
	for _, r := range m.yielding[m.yielded.Load():] {
		cur := m.c.byTP[topicPartition{r.Topic, r.Partition}]
		if cur == nil || cur.moved >= m.yieldN {
			continue // moved by Seek since
		}
		if _, ok := out[cur]; !ok && r.Offset < cur.pos {
			out[cur] = r.Offset
		}
	}
	return out
}

// heartbeat sends a member's heartbeats for one generation, from a
// goroutine of its own, until stopped or until the generation ends for the
// member.
type heartbeat struct {
	stopc  chan struct{}
	done   chan struct{}
	signal chan struct{} // buffered (1): an event was raised

	mu  sync.Mutex
	ev  groupEvent // the most serious one raised
	err error
}

// startHeartbeat starts the heartbeats of the member's generation.
func (m *groupMember) startHeartbeat() *heartbeat {
	m.c.mu.Lock()
	req := HeartbeatRequest{Group: m.cfg.Group, Generation: m.generation, MemberID: m.memberID, InstanceID: m.cfg.InstanceID}
	m.c.mu.Unlock()
	hb := &heartbeat{stopc: make(chan struct{}), done: make(chan struct{}), signal: make(chan struct{}, 1)}
	go hb.run(m.gc, req, m.cfg.HeartbeatInterval)
	return hb
}

func (hb *heartbeat) run(gc *GroupCoordinator, req HeartbeatRequest, every time.Duration) {
	defer close(hb.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-hb.stopc:
			return
		case <-t.C:
		}
		err := gc.Heartbeat(context.Background(), req)
		switch ev := classify(err); ev {
		case evNone, evRetry:
		case evRejoin:
			hb.raise(ev, err) // and go on: a member revoking must stay alive
		default:
			hb.raise(ev, err)
			return
		}
	}
}

func (hb *heartbeat) raise(ev groupEvent, err error) {
	hb.mu.Lock()
	if ev > hb.ev {
		hb.ev, hb.err = ev, err
	}
	hb.mu.Unlock()
	select {
	case hb.signal <- struct{}{}:
	default:
	}
}

// event returns the most serious event raised.
func (hb *heartbeat) event() (groupEvent, error) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	return hb.ev, hb.err
}

// stop stops the heartbeats and waits for their goroutine. hb may be nil;
// only the member's goroutine calls it.
func (hb *heartbeat) stop() {
	if hb == nil {
		return
	}
	select {
	case <-hb.stopc:
	default:
		close(hb.stopc)
	}
	<-hb.done
}

// commitRequest is one commit: offsets taken from cursors, for the
// generation the cursors belong to.
type commitRequest struct {
	seq        uint64 // later commits have higher ones
	generation int32
	memberID   string
	offsets    map[string]map[int32]OffsetAndMetadata
	curs       map[topicPartition]*cursor
	strict     bool // a partition revoked before it is sent fails it, rather than being left out
}

func (r *commitRequest) add(cur *cursor, om OffsetAndMetadata) {
	parts := r.offsets[cur.name]
	if parts == nil {
		parts = map[int32]OffsetAndMetadata{}
		r.offsets[cur.name] = parts
	}
	parts[cur.p.id] = om
	r.curs[topicPartition{cur.name, cur.p.id}] = cur
}

// newRequestLocked starts a commit in the member's current generation.
func (m *groupMember) newRequestLocked() (commitRequest, error) {
	switch {
	case m.c.closed:
		return commitRequest{}, ErrClosed
	case m.fatal != nil:
		return commitRequest{}, m.fatal
	case m.member && m.generation < 0:
		return commitRequest{}, fmt.Errorf("commitlog: commit to group %s: %w: the consumer is in no generation of the group (its partitions were lost, or it is joining)",
			m.cfg.Group, ErrIllegalGeneration)
	}
	m.seq++
	req := commitRequest{
		seq:        m.seq,
		generation: -1,
		offsets:    map[string]map[int32]OffsetAndMetadata{},
		curs:       map[topicPartition]*cursor{},
	}
	if m.member {
		req.generation, req.memberID = m.generation, m.memberID
	}
	return req, nil
}

// snapshotLocked takes a commit of the positions of curs: what Poll gave
// the application or, with marks, what the Polls before the latest one
// returned, leaving out what is committed already.
func (m *groupMember) snapshotLocked(curs []*cursor, marks bool) (commitRequest, error) {
	switch {
	case m.c.closed:
		return commitRequest{}, ErrClosed
	case m.fatal != nil:
		return commitRequest{}, m.fatal
	case len(curs) == 0:
		return commitRequest{}, nil // nothing to commit, in a generation or not
	}
	req, err := m.newRequestLocked()
	if err != nil {
		return req, err
	}
	given := m.givenLocked()
	for _, cur := range curs {
		off := cur.pos
		if g, ok := given[cur]; ok {
			off = g
		}
		if marks {
			// Marks lag what Poll returned. A commit taken later wins,
			// so this one never goes below what the application asked
			// to commit, nor below what is committed, unless Seek moved
			// the position since.
			if off = max(cur.mark, cur.asked); off == cur.committed || off < cur.committed && !cur.sought {
				continue
			}
		} else {
			cur.asked = off
		}
		req.add(cur, OffsetAndMetadata{Offset: off, LeaderEpoch: -1})
	}
	return req, nil
}

// send sends a commit to the coordinator, leaving out the partitions
// revoked since it was taken (which fail a strict one) and those a commit
// taken later covered already. It returns the offsets committed, by it or
// by that later commit.
func (m *groupMember) send(ctx context.Context, req commitRequest) (map[string]map[int32]OffsetAndMetadata, error) {
	if len(req.curs) == 0 {
		return nil, nil
	}
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	c := m.c
	var revoked []string
	done := map[string]map[int32]OffsetAndMetadata{}
	c.mu.Lock()
	for tp, cur := range req.curs {
		stale := c.byTP[tp] != cur
		if stale {
			revoked = append(revoked, fmt.Sprintf("%s-%d", tp.topic, tp.partition))
		} else {
			if done[tp.topic] == nil {
				done[tp.topic] = map[int32]OffsetAndMetadata{}
			}
			done[tp.topic][tp.partition] = req.offsets[tp.topic][tp.partition]
		}
		if stale || cur.commitSeq > req.seq {
			delete(req.offsets[tp.topic], tp.partition)
			if len(req.offsets[tp.topic]) == 0 {
				delete(req.offsets, tp.topic)
			}
			delete(req.curs, tp)
		}
	}
	c.mu.Unlock()
	var err error
	if len(req.offsets) > 0 {
		err = m.gc.CommitOffsets(ctx, CommitRequest{
			Group:      m.cfg.Group,
			Generation: req.generation,
			MemberID:   req.memberID,
			InstanceID: m.cfg.InstanceID,
			Offsets:    req.offsets,
		})
		var perr *PartitionErrors
		if err == nil || errors.As(err, &perr) {
			c.mu.Lock()
			for tp, cur := range req.curs {
				if (perr == nil || !perr.has(tp.topic, tp.partition)) && c.byTP[tp] == cur {
					cur.committed, cur.commitSeq, cur.sought = req.offsets[tp.topic][tp.partition].Offset, req.seq, false
				}
			}
			c.mu.Unlock()
		}
		if err != nil {
			err = fmt.Errorf("commitlog: commit to group %s: %w", m.cfg.Group, err)
		}
	}
	if len(revoked) > 0 && req.strict {
		slices.Sort(revoked)
		err = errors.Join(err, fmt.Errorf("commitlog: commit to group %s: %w: %v revoked before the commit was sent", m.cfg.Group, ErrNotAssigned, revoked))
	}
	return done, err
}

// commitGiven commits what Poll gave the application of curs.
func (m *groupMember) commitGiven(curs []*cursor) error {
	m.c.mu.Lock()
	req, err := m.snapshotLocked(curs, false)
	m.c.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(m.cfg.RebalanceTimeout, DefaultRebalanceTimeout))
	defer cancel()
	_, err = m.send(ctx, req)
	return err
}

// commitAll commits what Poll gave the application of every partition.
func (m *groupMember) commitAll(ctx context.Context) error {
	c := m.c
	c.mu.Lock()
	req, err := m.snapshotLocked(c.cursors, false)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = m.send(ctx, req)
	return err
}

// autoCommit commits what the Polls before the latest one returned. A
// failure is left for the next time.
func (m *groupMember) autoCommit() {
	c := m.c
	c.mu.Lock()
	req, err := m.snapshotLocked(c.cursors, true)
	c.mu.Unlock()
	if err == nil {
		_, _ = m.send(m.ctx, req)
	}
}

// commitLoop is the goroutine that sends CommitAsync requests, in order,
// and auto-commits.
func (m *groupMember) commitLoop() {
	defer close(m.qdone)
	var tick <-chan time.Time
	if m.cfg.AutoCommit {
		t := time.NewTicker(m.cfg.AutoCommitInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-m.qsignal:
			m.drain()
		case <-tick:
			m.autoCommit()
		case <-m.qstop:
			m.drain()
			return
		}
	}
}

// drain sends the queued CommitAsync requests and calls their callbacks.
func (m *groupMember) drain() {
	for {
		m.qmu.Lock()
		if len(m.queue) == 0 {
			m.qmu.Unlock()
			return
		}
		a := m.queue[0]
		m.queue[0] = asyncCommit{}
		m.queue = m.queue[1:]
		m.qmu.Unlock()
		var offsets map[string]map[int32]OffsetAndMetadata
		err := a.err
		if err == nil {
			offsets, err = m.send(context.Background(), a.req)
		}
		if a.cb != nil {
			a.cb(offsets, err)
		}
	}
}

// enqueue queues a CommitAsync request, or fails it at once when the
// commit goroutine stopped.
func (m *groupMember) enqueue(a asyncCommit) {
	m.qmu.Lock()
	if m.qclosed {
		m.qmu.Unlock()
		if a.cb != nil {
			a.cb(nil, ErrClosed)
		}
		return
	}
	m.queue = append(m.queue, a)
	m.qmu.Unlock()
	select {
	case m.qsignal <- struct{}{}:
	default:
	}
}

// stopCommitter stops the commit goroutine once it has sent the queued
// requests.
func (m *groupMember) stopCommitter() {
	m.qmu.Lock()
	stopped := m.qclosed
	m.qclosed = true
	m.qmu.Unlock()
	if !stopped && m.started {
		close(m.qstop)
		<-m.qdone
	}
}

// groupOf returns the consumer's group, or the error for a consumer
// without one.
func (c *Consumer) groupOf(op string) (*groupMember, error) {
	if c.group == nil {
		return nil, fmt.Errorf("commitlog: %s: %w: the consumer has no ConsumerConfig.Group", op, ErrInvalidGroupID)
	}
	return c.group, nil
}

// Commit commits, for every partition assigned to the consumer, its
// position: the offset after the last record Poll returned from it (inside
// a Records loop, the last record yielded), or where Seek moved it. Call
// it once those records are processed: the group's next owner of a
// partition starts where it was committed. It waits until the coordinator
// stored the offsets, durably under SyncGroupCommit. See consumer_group.go
// for the delivery guarantees.
//
// Errors: ErrInvalidGroupID for a consumer without a Group; ErrClosed;
// from the coordinator, wrapped: ErrIllegalGeneration or
// ErrUnknownMemberID when the member's generation is over (what it did not
// commit will be consumed again by the partition's next owner),
// ErrFencedInstanceID, ErrRebalanceInProgress while it syncs with a new
// generation (commit again once it has), a *PartitionErrors for
// partitions that failed alone; ctx's error. The membership's error once
// it ended for good.
func (c *Consumer) Commit(ctx context.Context) error {
	m, err := c.groupOf("commit")
	if err != nil {
		return err
	}
	return m.commitAll(ctx)
}

// CommitAsync commits as Commit does without waiting: the positions are
// taken now, then sent by a goroutine of the consumer in the order of the
// calls, which calls cb, if not nil, with the offsets and the outcome, in
// that order too. Of two commits of a partition, the one asked for later
// wins. Close sends the commits asked for before it; once the consumer is
// closed, cb is called at once with ErrClosed. cb must not call Close.
func (c *Consumer) CommitAsync(cb func(offsets map[string]map[int32]OffsetAndMetadata, err error)) {
	m, err := c.groupOf("commit")
	if err != nil {
		if cb != nil {
			cb(nil, err)
		}
		return
	}
	c.mu.Lock()
	req, err := m.snapshotLocked(c.cursors, false)
	c.mu.Unlock()
	m.enqueue(asyncCommit{req: req, err: err, cb: cb})
}

// CommitOffsets commits the offsets given, with their metadata, of
// partitions assigned to the consumer (Kafka's commitSync with offsets).
// An offset is that of the next record to consume; LeaderEpoch -1 stands
// for unknown, and CommitTime is ignored. Every partition is checked first,
// and nothing is committed when one is not assigned (ErrNotAssigned) or has
// a negative offset (an *OffsetOutOfRangeError, which matches
// ErrOffsetOutOfRange). Otherwise its errors are Commit's; a partition
// that a rebalance revoked while the call waited fails it with
// ErrNotAssigned, the others being committed.
func (c *Consumer) CommitOffsets(ctx context.Context, offsets map[string]map[int32]OffsetAndMetadata) error {
	m, err := c.groupOf("commit")
	if err != nil {
		return err
	}
	c.mu.Lock()
	req, err := m.offsetsLocked(offsets)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = m.send(ctx, req)
	return err
}

// offsetsLocked checks explicit offsets and makes them a commit.
func (m *groupMember) offsetsLocked(offsets map[string]map[int32]OffsetAndMetadata) (commitRequest, error) {
	c := m.c
	if c.closed {
		return commitRequest{}, ErrClosed
	}
	var curs []*cursor
	var oms []OffsetAndMetadata
	for _, topic := range slices.Sorted(maps.Keys(offsets)) {
		for _, p := range slices.Sorted(maps.Keys(offsets[topic])) {
			om := offsets[topic][p]
			cur := c.byTP[topicPartition{topic, p}]
			switch {
			case cur == nil:
				return commitRequest{}, fmt.Errorf("commitlog: commit %s-%d to group %s: %w", topic, p, m.cfg.Group, ErrNotAssigned)
			case om.Offset < 0:
				oor := &OffsetOutOfRangeError{Offset: om.Offset, Start: cur.p.StartOffset(), End: cur.p.EndOffset()}
				return commitRequest{}, fmt.Errorf("commitlog: commit %s-%d to group %s: %w", topic, p, m.cfg.Group, oor)
			}
			om.CommitTime = time.Time{}
			curs, oms = append(curs, cur), append(oms, om)
		}
	}
	if len(curs) == 0 {
		return commitRequest{}, nil
	}
	req, err := m.newRequestLocked()
	if err != nil {
		return req, err
	}
	for i, cur := range curs {
		cur.asked = oms[i].Offset
		req.add(cur, oms[i])
	}
	req.strict = true
	return req, nil
}

// Committed returns the group's committed offsets of the partitions asked
// for, assigned to the consumer or not, or of all of them with nil;
// partitions without one are left out (Kafka's committed). Errors:
// ErrInvalidGroupID for a consumer without a Group, ErrClosed, ctx's.
func (c *Consumer) Committed(ctx context.Context, partitions map[string][]int32) (map[string]map[int32]OffsetAndMetadata, error) {
	m, err := c.groupOf("committed")
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	out, err := m.gc.FetchOffsets(ctx, m.cfg.Group, partitions)
	if err != nil {
		return nil, fmt.Errorf("commitlog: committed offsets of group %s: %w", m.cfg.Group, err)
	}
	return out, nil
}

// Rebalance asks the consumer's group to rebalance (Kafka's
// enforceRebalance): the consumer joins again, which makes every member
// join, and partitions are revoked and assigned as for a change of
// members. It returns at once; the rebalance goes on in the background.
// Errors: ErrInvalidConfig for a consumer that is not a member (no Group,
// or Partitions), ErrClosed.
func (c *Consumer) Rebalance() error {
	m := c.group
	if m == nil || !m.member {
		return fmt.Errorf("%w: Rebalance needs ConsumerConfig.Group and Topics: the consumer is no member of a group", ErrInvalidConfig)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	select {
	case m.rebalance <- struct{}{}:
	default:
	}
	return nil
}

// refreshGroupLocked drops the partitions of assigned topics that were
// deleted or re-created, whose logs are gone; the group's leader notices
// too, and rebalances. It fails only when the broker is closed.
func (c *Consumer) refreshGroupLocked() error {
	for name, s := range c.seen {
		t, err := c.b.Topic(name)
		switch {
		case errors.Is(err, ErrUnknownTopic), err == nil && t != s.t:
			c.dropTopicLocked(name)
		case err != nil:
			return err
		}
	}
	return nil
}
