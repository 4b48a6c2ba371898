package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamkit/commitlog/cluster"
)

// testCluster is three Nodes over a MemNetwork replicating partition tp0,
// with a minimal controller: it accepts ISR changes at the current epochs
// from reachable leaders and pushes every new state to the brokers it can
// reach.
type testCluster struct {
	t    *testing.T
	net  *MemNetwork
	ids  []int32
	node map[int32]*Node
	rep  map[int32]*Replica
	log  map[int32]*memLog

	mu    sync.Mutex
	st    cluster.PartitionState
	down  map[int32]bool   // the controller cannot reach these brokers
	acked map[int64]string // offset -> value of every acknowledged record
}

func newTestCluster(t *testing.T, seed int64, cfg Config) *testCluster {
	c := &testCluster{
		t:     t,
		net:   NewMemNetwork(seed),
		ids:   ids(1, 2, 3),
		node:  map[int32]*Node{},
		rep:   map[int32]*Replica{},
		log:   map[int32]*memLog{},
		down:  map[int32]bool{},
		acked: map[int64]string{},
		st:    state(1, 1, 1, ids(1, 2, 3), ids(1, 2, 3)),
	}
	for _, id := range c.ids {
		n := NewNode(NodeConfig{
			BrokerID:     id,
			Transport:    c.net.Transport(id),
			ISR:          c,
			Replica:      cfg,
			FetchMaxWait: 50 * time.Millisecond,
			// Small fetches: several rounds per catch-up.
			FetchMaxBytes: 300,
		})
		l := newMemLog()
		ec, err := OpenEpochCache(filepath.Join(t.TempDir(), EpochCheckpointFile))
		mustNil(t, err)
		r := NewReplica(tp0, id, l, ec, cfg)
		n.Add(r)
		c.net.Register(id, n)
		c.node[id], c.rep[id], c.log[id] = n, r, l
	}
	for _, id := range c.ids {
		mustNil(t, c.node[id].Apply(tp0, c.st))
	}
	return c
}

func (c *testCluster) AlterISR(ctx context.Context, tp cluster.TopicPartition, leader, leaderEpoch, partitionEpoch int32, isr []int32) (cluster.PartitionState, error) {
	c.mu.Lock()
	if c.down[leader] {
		c.mu.Unlock()
		return cluster.PartitionState{}, errors.New("controller unreachable")
	}
	if leader != c.st.Leader || leaderEpoch != c.st.LeaderEpoch || partitionEpoch != c.st.PartitionEpoch {
		c.mu.Unlock()
		return cluster.PartitionState{}, cluster.ErrStaleState
	}
	if !slices.Contains(isr, leader) {
		c.mu.Unlock()
		return cluster.PartitionState{}, cluster.ErrInvalidISR
	}
	c.st.ISR = slices.Clone(isr)
	c.st.PartitionEpoch++
	st := c.st.Clone()
	c.mu.Unlock()
	c.push(st)
	return st, nil
}

// push gives st to every broker the controller reaches.
func (c *testCluster) push(st cluster.PartitionState) {
	for _, id := range c.ids {
		c.mu.Lock()
		down := c.down[id]
		c.mu.Unlock()
		if !down {
			if err := c.node[id].Apply(tp0, st); err != nil && !errors.Is(err, ErrFencedLeaderEpoch) && !errors.Is(err, ErrClosed) {
				c.t.Errorf("broker %d: apply %+v: %v", id, st, err)
			}
		}
	}
}

// elect makes id the leader of a new epoch (it must be in the ISR).
func (c *testCluster) elect(id int32) {
	c.mu.Lock()
	if !c.st.InSync(id) {
		c.t.Fatalf("electing %d outside the ISR %v", id, c.st.ISR)
	}
	c.st.Leader = id
	c.st.LeaderEpoch++
	c.st.PartitionEpoch++
	st := c.st.Clone()
	c.mu.Unlock()
	c.push(st)
}

func (c *testCluster) setDown(id int32, down bool) {
	c.mu.Lock()
	c.down[id] = down
	st := c.st.Clone()
	c.mu.Unlock()
	if !down {
		mustNil(c.t, ignoreFenced(c.node[id].Apply(tp0, st)))
	}
}

func ignoreFenced(err error) error {
	if errors.Is(err, ErrFencedLeaderEpoch) {
		return nil
	}
	return err
}

func (c *testCluster) isr() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.st.ISR)
}

// produce appends value at broker id as leader with acks=all, waiting up to
// wait for the HW; it records the record as acknowledged on success.
func (c *testCluster) produce(id int32, value string, wait time.Duration) error {
	r, l := c.rep[id], c.log[id]
	if err := r.CheckProduce(true); err != nil {
		return err
	}
	end := l.appendLeader(value)
	r.Appended(end)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.WaitHighWatermark(ctx, end); err != nil {
		return err
	}
	c.mu.Lock()
	c.acked[end-1] = value
	c.mu.Unlock()
	return nil
}

// check verifies every replica's invariants and that what each holds below
// its HW is committed: a prefix of the final log, checked in verify.
func (c *testCluster) check() {
	c.t.Helper()
	for _, id := range c.ids {
		checkInvariants(c.t, c.rep[id])
	}
}

// waitUntil polls cond in the bubble's fake time (each wait lets the
// Nodes' timers fire), failing after a minute of fake time.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-time.After(5 * time.Millisecond)
	}
}

// converged reports whether every replica has the leader's log and HW.
func (c *testCluster) converged(leader int32) bool {
	want := c.log[leader].EndOffset()
	for _, id := range c.ids {
		if c.log[id].EndOffset() != want || c.rep[id].HighWatermark() != want {
			return false
		}
	}
	return true
}

type committed struct {
	hw      int64
	content []byte
}

// snapshot records what each replica holds below its HW.
func (c *testCluster) snapshot() map[int32]committed {
	m := map[int32]committed{}
	for _, id := range c.ids {
		hw := c.rep[id].HighWatermark()
		m[id] = committed{hw, c.log[id].content(hw)}
	}
	return m
}

// verify checks that every log is identical, that each snapshot's
// committed bytes are a prefix of it, and that every acknowledged record
// is in it.
func (c *testCluster) verify(leader int32, snaps []map[int32]committed) {
	c.t.Helper()
	final := c.log[leader].content(c.log[leader].EndOffset())
	for _, id := range c.ids {
		if got := c.log[id].content(c.log[id].EndOffset()); !bytes.Equal(got, final) {
			c.t.Fatalf("broker %d's log differs from the leader's", id)
		}
	}
	for i, s := range snaps {
		for id, cm := range s {
			if !bytes.HasPrefix(final, cm.content) {
				c.t.Fatalf("snapshot %d: broker %d's records below its HW %d were lost", i, id, cm.hw)
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for off, v := range c.acked {
		if got := c.log[leader].valueAt(off); got != v {
			c.t.Fatalf("acknowledged record %q at %d lost: log has %q", v, off, got)
		}
	}
}

func (c *testCluster) close() {
	for _, id := range c.ids {
		mustNil(c.t, c.node[id].Close())
	}
}

func TestNodeReplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, Config{ReplicaLagTime: 500 * time.Millisecond, MinInsyncReplicas: 2})
		defer c.close()
		for i := range 20 {
			mustNil(t, c.produce(1, fmt.Sprint("v", i), time.Second))
			c.check()
		}
		waitUntil(t, "followers caught up", func() bool { return c.converged(1) })
		c.verify(1, nil)
		if !sameSet(c.isr(), ids(1, 2, 3)) {
			t.Fatalf("ISR %v", c.isr())
		}
		if e, ok := c.rep[2].TruncationNeeded(); ok {
			t.Fatalf("follower still truncating (epoch %d)", e)
		}
	})
}

// Three brokers under drops, duplicates, delays, a partitioned leader
// writing a tail nobody else gets, a paused follower and a heal: the logs
// end identical, nothing acknowledged or below an HW is lost.
func TestNodeFaults(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	synctest.Test(t, func(t *testing.T) {
		const lag = 500 * time.Millisecond
		c := newTestCluster(t, seed, Config{ReplicaLagTime: lag, MinInsyncReplicas: 2})
		defer c.close()
		var snaps []map[int32]committed

		// Random faults.
		c.net.SetFaults(Faults{DropRate: 0.1, DuplicateRate: 0.1, MaxDelay: 20 * time.Millisecond})
		for i := range 30 {
			_ = c.produce(1, fmt.Sprint("a", i), time.Duration(rng.IntN(300))*time.Millisecond)
			c.check()
		}
		snaps = append(snaps, c.snapshot())

		// Leader 1 is cut off; it takes writes it can never commit.
		c.net.Isolate(1)
		c.setDown(1, true)
		for i := range 3 {
			if err := c.produce(1, fmt.Sprint("lost", i), 200*time.Millisecond); err == nil {
				t.Fatal("isolated leader acknowledged a write")
			}
		}
		snaps = append(snaps, c.snapshot())
		if v := c.log[1].valueAt(c.log[1].EndOffset() - 1); v != "lost2" {
			t.Fatalf("isolated leader's last record %q, want lost2", v)
		}
		c.elect(2)
		waitUntil(t, "ISR without broker 1", func() bool { return sameSet(c.isr(), ids(2, 3)) })
		for i := range 20 {
			_ = c.produce(2, fmt.Sprint("b", i), time.Second)
			c.check()
		}
		snaps = append(snaps, c.snapshot())

		// Follower 3 stalls: the ISR shrinks below min, acks=all fails.
		c.net.Pause(3)
		waitUntil(t, "ISR shrunk to the leader", func() bool {
			_ = c.produce(2, "stalled", 10*time.Millisecond)
			return sameSet(c.isr(), ids(2))
		})
		if err := c.rep[2].CheckProduce(true); !errors.Is(err, ErrNotEnoughReplicas) {
			t.Fatalf("CheckProduce with ISR below min = %v", err)
		}
		hw := c.rep[2].HighWatermark()
		c.rep[2].Appended(c.log[2].appendLeader("frozen"))
		if c.rep[2].HighWatermark() != hw {
			t.Fatal("HW advanced with ISR below min")
		}
		c.net.Resume(3)
		waitUntil(t, "broker 3 back in the ISR", func() bool { return sameSet(c.isr(), ids(2, 3)) })
		snaps = append(snaps, c.snapshot())

		// Broker 1 comes back: it truncates its lost tail and rejoins.
		c.net.Heal()
		c.setDown(1, false)
		waitUntil(t, "broker 1 back in the ISR", func() bool { return sameSet(c.isr(), ids(1, 2, 3)) })
		for i := range 10 {
			_ = c.produce(2, fmt.Sprint("c", i), time.Second)
			c.check()
		}
		c.net.SetFaults(Faults{})
		mustNil(t, c.produce(2, "last", 5*time.Second))
		waitUntil(t, "logs converged", func() bool { return c.converged(2) })
		c.check()
		c.verify(2, snaps)
		for o := range c.log[1].EndOffset() {
			if v := c.log[1].valueAt(o); len(v) == 5 && v[:4] == "lost" {
				t.Fatalf("uncommitted record %s survived at %d", v, o)
			}
		}
	})
}

// Close joins every goroutine even with fetches long-polling.
func TestNodeClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, Config{})
		synctest.Wait()
		c.close()
		if _, err := c.node[1].HandleFetch(context.Background(), &FetchRequest{ReplicaID: 2}); !errors.Is(err, ErrClosed) {
			t.Fatalf("HandleFetch after Close = %v", err)
		}
		if err := c.node[2].Apply(tp0, c.st); !errors.Is(err, ErrClosed) {
			t.Fatalf("Apply after Close = %v", err)
		}
		if err := c.node[2].Apply(cluster.TopicPartition{Topic: "x"}, c.st); !errors.Is(err, ErrUnknownPartition) {
			t.Fatalf("Apply of an unknown partition = %v", err)
		}
	})
}

// A leader's HandleFetch long-polls: it answers at MaxWait with no
// records, or as soon as the leader appends.
func TestHandleFetchLongPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNode(NodeConfig{BrokerID: 1})
		defer n.Close()
		r, l := newTestReplica(t, 1, Config{})
		n.Add(r)
		mustNil(t, n.Apply(tp0, state(1, 1, 1, ids(1, 2), ids(1, 2))))
		req := &FetchRequest{ReplicaID: 2, MaxWait: time.Second, Partitions: []FetchPartition{{Partition: tp0, CurrentLeaderEpoch: 1}}}

		start := time.Now()
		resp, err := n.HandleFetch(context.Background(), req)
		mustNil(t, err)
		if d := time.Since(start); d != time.Second || len(resp.Partitions[0].Records) != 0 {
			t.Fatalf("empty fetch answered after %v with %d bytes", d, len(resp.Partitions[0].Records))
		}

		// The append comes mid-poll (in the bubble's fake time).
		time.AfterFunc(100*time.Millisecond, func() { r.Appended(l.appendLeader("a", "b")) })
		start = time.Now()
		resp, err = n.HandleFetch(context.Background(), req)
		mustNil(t, err)
		if d := time.Since(start); d != 100*time.Millisecond || len(resp.Partitions[0].Records) == 0 {
			t.Fatalf("fetch answered after %v with %d bytes", d, len(resp.Partitions[0].Records))
		}

		// Fenced, unknown partition, and OffsetForLeaderEpoch.
		req.Partitions = append(req.Partitions, FetchPartition{Partition: cluster.TopicPartition{Topic: "x"}})
		req.Partitions[0].CurrentLeaderEpoch = 0
		resp, err = n.HandleFetch(context.Background(), req)
		mustNil(t, err)
		if !errors.Is(resp.Partitions[0].Err, ErrFencedLeaderEpoch) || !errors.Is(resp.Partitions[1].Err, ErrUnknownPartition) {
			t.Fatalf("errors %v, %v", resp.Partitions[0].Err, resp.Partitions[1].Err)
		}
		eresp, err := n.HandleOffsetForLeaderEpoch(context.Background(), &EpochRequest{ReplicaID: 2, Partitions: []EpochQuery{
			{Partition: tp0, CurrentLeaderEpoch: 1, LeaderEpoch: 1},
			{Partition: tp0, CurrentLeaderEpoch: 2, LeaderEpoch: 1},
		}})
		mustNil(t, err)
		if a := eresp.Partitions[0]; a.Err != nil || a.LeaderEpoch != 1 || a.EndOffset != 2 {
			t.Fatalf("answer %+v", a)
		}
		if a := eresp.Partitions[1]; !errors.Is(a.Err, ErrUnknownLeaderEpoch) {
			t.Fatalf("answer %+v", a)
		}
	})
}

// gatedLog is a memLog whose StartOffset blocks while gate is open, as a
// slow read of a leader's log would.
type gatedLog struct {
	*memLog
	entered chan struct{} // closed when a read is blocked
	gate    chan struct{} // closing it lets reads through
	armed   atomic.Bool
}

func (l *gatedLog) StartOffset() int64 {
	if l.armed.CompareAndSwap(true, false) {
		close(l.entered)
		<-l.gate
	}
	return l.memLog.StartOffset()
}

// Close waits for the peers' requests being answered: the broker closes
// its logs after Close, and a fetch still running would read a closed
// log's offsets (the root's closed Log reports its end as its start, which
// made a follower reset its whole log).
func TestNodeCloseWaitsForRequests(t *testing.T) {
	n := NewNode(NodeConfig{BrokerID: 1})
	l := &gatedLog{memLog: newMemLog(), entered: make(chan struct{}), gate: make(chan struct{})}
	epochs, err := OpenEpochCache(filepath.Join(t.TempDir(), EpochCheckpointFile))
	mustNil(t, err)
	n.Add(NewReplica(tp0, 1, l, epochs, Config{}))
	mustNil(t, n.Apply(tp0, state(1, 1, 1, ids(1, 2), ids(1, 2))))
	l.armed.Store(true)
	go func() {
		_, _ = n.HandleFetch(context.Background(), &FetchRequest{ReplicaID: 2, Partitions: []FetchPartition{{Partition: tp0, CurrentLeaderEpoch: 1}}})
	}()
	<-l.entered // the fetch is reading the log
	closed := make(chan struct{})
	go func() {
		_ = n.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a fetch was still reading the log")
	case <-time.After(50 * time.Millisecond): // Close must still be waiting; no sleep ends a wait here
	}
	close(l.gate)
	<-closed
}
