package commitlog

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/vfs"
	"github.com/streamkit/commitlog/internal/vfs/crashfs"
	"github.com/streamkit/commitlog/replication"
)

// The replication checker: producers (acks=all, idempotent) and consumers
// run against three brokers while a nemesis kills brokers (dropping what
// they had not synced), cuts the network, pauses replicas and makes the
// network drop, duplicate and delay messages; then everything heals and a
// checker asserts that no acknowledged record was lost, none was written
// twice, every replica's log is identical below the high watermark,
// offsets are dense, and no consumer saw a record that was later
// truncated.
//
// Each seed fixes the nemesis's schedule and the network's faults;
// goroutine scheduling still varies from run to run, so a failing seed
// reproduces the same faults (-checker.seed), not the same interleaving.
//
//	go test -run TestReplicationChecker -checker.seeds 500 .
//	go test -run TestReplicationChecker -checker.seed 1234 -v .

var (
	checkerSeeds    = flag.Int("checker.seeds", 50, "seeds the replication checker runs")
	checkerSeed     = flag.Uint64("checker.seed", 0, "run the replication checker with this seed only")
	checkerDuration = flag.Duration("checker.duration", 300*time.Millisecond, "how long each seed's workload and nemesis run")
)

const (
	checkerBrokers    = 3
	checkerPartitions = 2
	checkerTopic      = "checked"
)

func TestReplicationChecker(t *testing.T) {
	seeds := make([]uint64, 0, *checkerSeeds)
	if *checkerSeed != 0 {
		seeds = append(seeds, *checkerSeed)
	} else {
		base := uint64(time.Now().UnixNano())
		for i := range *checkerSeeds {
			seeds = append(seeds, base+uint64(i))
		}
	}
	var anomalies, acked int
	for _, seed := range seeds {
		r := runChecker(t, checkerRun{seed: seed, acksAll: true, duration: *checkerDuration})
		acked += r.acked
		anomalies += len(r.anomalies)
		for _, a := range r.anomalies {
			t.Errorf("seed %d: %s (replay: go test -run TestReplicationChecker -checker.seed %d .)", seed, a, seed)
		}
	}
	t.Logf("replication checker: %d seeds, %d records acknowledged, %d anomalies", len(seeds), acked, anomalies)
}

// TestReplicationLossUnclean measures what acks=1 with unclean leader
// election loses when the leader dies with unsynced, unreplicated
// records: a documented loss, reported rather than failed.
func TestReplicationLossUnclean(t *testing.T) {
	var lost, acked int
	const runs = 5
	for i := range runs {
		r := runChecker(t, checkerRun{seed: uint64(i + 1), acksAll: false, unclean: true, duration: 2 * *checkerDuration})
		lost += r.lost
		acked += r.acked
	}
	t.Logf("acks=1 with unclean leader election: %d of %d acknowledged records lost over %d runs (expected: acks=1 does not wait for followers)", lost, acked, runs)
}

type checkerRun struct {
	seed     uint64
	acksAll  bool
	unclean  bool
	duration time.Duration
}

type checkerResult struct {
	acked     int
	lost      int
	anomalies []string
}

// checkerNode is one broker of the checked cluster: its directory, the
// crash-simulating file system under it, and the running broker (nil while
// down).
type checkerNode struct {
	id  int32
	dir string
	fs  *crashfs.FS
	b   atomic.Pointer[Broker]
}

type checkerCluster struct {
	t *testing.T
	// history is what happened, for the report of a failing seed: the
	// controller's decisions, kills and restarts, acknowledgements.
	historyMu sync.Mutex
	history   []string
	ctrl      *cluster.Local
	net       *replication.MemNetwork
	nodes     []*checkerNode
	opts      Options
	acks      Acks
}

func runChecker(t *testing.T, run checkerRun) checkerResult {
	t.Helper()
	rng := rand.New(rand.NewPCG(run.seed, run.seed^0x9e3779b97f4a7c15))
	policy := SyncGroupCommit
	if rng.IntN(2) == 0 {
		policy = SyncNone
	}
	c := &checkerCluster{
		t:    t,
		ctrl: cluster.NewLocal(cluster.LocalConfig{SessionTimeout: 200 * time.Millisecond, UncleanLeaderElection: run.unclean}),
		net:  replication.NewMemNetwork(int64(run.seed)),
		opts: Options{SyncPolicy: policy},
		acks: AcksLeader,
	}
	if run.acksAll {
		c.acks = AcksAll
	}
	events, stopWatch := c.ctrl.Watch(-1)
	defer stopWatch()
	go func() {
		for ev := range events {
			if ev.Kind == cluster.PartitionChanged {
				c.record("controller: partition %d: %+v", ev.Partition, ev.State)
			}
		}
	}()
	ctrlCtx, stopCtrl := context.WithCancel(context.Background())
	go c.ctrl.Run(ctrlCtx)
	defer func() {
		stopCtrl()
		c.ctrl.Close()
	}()
	for id := int32(1); id <= checkerBrokers; id++ {
		n := &checkerNode{id: id, dir: t.TempDir()}
		c.nodes = append(c.nodes, n)
		c.start(n)
	}
	defer func() {
		for _, n := range c.nodes {
			if b := n.b.Swap(nil); b != nil {
				c.net.Unregister(n.id)
				if err := b.Close(); err != nil {
					t.Errorf("close broker %d: %v", n.id, err)
				}
			}
		}
	}()
	minISR := 2
	if !run.acksAll {
		minISR = 1
	}
	if _, err := c.nodes[0].b.Load().CreateTopic(context.Background(), checkerTopic, TopicConfig{Partitions: checkerPartitions, ReplicationFactor: checkerBrokers, MinInsyncReplicas: minISR}); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	producers := make([]*checkerProducer, checkerPartitions)
	consumers := make([]*checkerConsumer, checkerPartitions)
	for i := range int32(checkerPartitions) {
		producers[i] = &checkerProducer{c: c, partition: i, id: 1000 + int64(i)}
		consumers[i] = &checkerConsumer{c: c, partition: i, seen: map[int64][]byte{}}
		wg.Add(2)
		go func() { defer wg.Done(); producers[i].run(ctx) }()
		go func() { defer wg.Done(); consumers[i].run(ctx) }()
	}
	if run.unclean {
		c.isolateAndKillLeaders(run.duration)
	} else {
		c.nemesis(rng, run.duration)
	}
	stop()
	wg.Wait()
	c.heal()

	var res checkerResult
	for i := range int32(checkerPartitions) {
		res.acked += len(producers[i].acked)
		c.check(i, producers[i], consumers[i], run.acksAll, &res)
	}
	if len(res.anomalies) > 0 && run.acksAll {
		c.historyMu.Lock()
		t.Logf("seed %d: history:\n%s", run.seed, strings.Join(c.history, "\n"))
		c.historyMu.Unlock()
	}
	return res
}

// start opens a node's broker on a fresh crash file system over its
// directory and connects it to the network.
func (c *checkerCluster) start(n *checkerNode) {
	if n.fs == nil {
		n.fs = crashfs.New(vfs.Default)
	}
	opts := c.opts
	opts.Cluster = &ClusterConfig{
		BrokerID:          n.id,
		Controller:        c.ctrl,
		Transport:         c.net.Transport(n.id),
		ReplicaLagTime:    100 * time.Millisecond,
		HeartbeatInterval: 20 * time.Millisecond,
		FetchMaxWait:      20 * time.Millisecond,
	}
	b, err := openBroker(n.fs, n.dir, opts)
	if err != nil {
		c.t.Fatalf("open broker %d: %v", n.id, err)
	}
	c.net.Register(n.id, b.ReplicaHandler())
	n.b.Store(b)
	c.record("started broker %d", n.id)
}

// record adds to the history printed when the seed fails.
func (c *checkerCluster) record(format string, args ...any) {
	c.historyMu.Lock()
	c.history = append(c.history, time.Now().Format("15:04:05.000000 ")+fmt.Sprintf(format, args...))
	c.historyMu.Unlock()
}

// kill stops a node's broker as a power cut would: it stops answering,
// and the bytes it had not synced are gone.
func (c *checkerCluster) kill(n *checkerNode) {
	b := n.b.Swap(nil)
	if b == nil {
		return
	}
	c.net.Unregister(n.id)
	c.record("kill broker %d", n.id)
	b.cluster.killed = true
	fs, err := n.fs.Crash()
	if err != nil {
		c.t.Fatalf("crash broker %d: %v", n.id, err)
	}
	n.fs = fs
	_ = b.Close() // fails: the crashed file system refuses everything
}

// nemesis disturbs the cluster, one fault at a time, for d.
func (c *checkerCluster) nemesis(rng *rand.Rand, d time.Duration) {
	deadline := time.Now().Add(d)
	pause := func() { time.Sleep(time.Duration(10+rng.IntN(60)) * time.Millisecond) }
	for time.Now().Before(deadline) {
		n := c.nodes[rng.IntN(len(c.nodes))]
		switch rng.IntN(5) {
		case 0: // kill and restart a broker
			// Only a healthy cluster: with three replicas and two
			// needed in sync, the contract covers one failure at a
			// time, and a broker restarted after a crash is not in
			// sync (nor eligible to lead) until it caught up.
			if !c.waitInSync(time.Second) {
				continue
			}
			c.kill(n)
			pause()
			c.start(n)
		case 1: // cut a broker off from the others
			var others []int32
			for _, o := range c.nodes {
				if o != n {
					others = append(others, o.id)
				}
			}
			c.net.Partition([]int32{n.id}, others)
			pause()
			c.net.Heal()
		case 2: // pause a replica
			c.net.Pause(n.id)
			pause()
			c.net.Resume(n.id)
		case 3: // a lossy, duplicating, reordering network
			c.net.SetFaults(replication.Faults{DropRate: 0.1, DuplicateRate: 0.1, MaxDelay: 5 * time.Millisecond})
			pause()
			c.net.SetFaults(replication.Faults{})
		case 4: // quiet
			pause()
		}
	}
}

// isolateAndKillLeaders repeats, for d, the sequence that loses records
// acknowledged with acks=1: the leader of partition 0 is cut off from its
// followers (they fall out of its ISR, it goes on acknowledging alone),
// then killed; unclean leader election then elects a follower that lacks
// what the old leader acknowledged last.
func (c *checkerCluster) isolateAndKillLeaders(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		st, ok := c.ctrl.Partition(cluster.TopicPartition{Topic: checkerTopic, Partition: 0})
		if !ok || st.Leader == cluster.NoLeader {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		leader := c.nodes[st.Leader-1]
		var others []int32
		for _, o := range c.nodes {
			if o != leader {
				others = append(others, o.id)
			}
		}
		c.net.Partition([]int32{leader.id}, others)
		time.Sleep(150 * time.Millisecond) // past ReplicaLagTime: the followers leave the ISR
		c.kill(leader)
		c.net.Heal()
		time.Sleep(50 * time.Millisecond)
		c.start(leader)
	}
}

// waitInSync waits up to d for every partition to have a leader and all
// its replicas in sync, and reports whether they got there.
func (c *checkerCluster) waitInSync(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		ok := true
		for p := range int32(checkerPartitions) {
			st, found := c.ctrl.Partition(cluster.TopicPartition{Topic: checkerTopic, Partition: p})
			ok = ok && found && st.Leader != cluster.NoLeader && len(st.ISR) == checkerBrokers
		}
		if ok || time.Now().After(deadline) {
			return ok
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// heal ends every fault and waits until each partition has a leader, all
// of its replicas are in sync, and their logs end at the high watermark.
func (c *checkerCluster) heal() {
	c.net.Heal()
	c.net.SetFaults(replication.Faults{})
	for _, n := range c.nodes {
		c.net.Resume(n.id)
		if n.b.Load() == nil {
			c.start(n)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for p := range int32(checkerPartitions) {
		for !c.converged(p) {
			if time.Now().After(deadline) {
				c.t.Fatalf("partition %d did not converge: %+v", p, c.describe(p))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func (c *checkerCluster) partition(n *checkerNode, id int32) *Partition {
	b := n.b.Load()
	if b == nil {
		return nil
	}
	t, err := b.Topic(checkerTopic)
	if err != nil {
		return nil
	}
	p, err := t.Partition(id)
	if err != nil {
		return nil
	}
	return p
}

func (c *checkerCluster) converged(id int32) bool {
	st, ok := c.ctrl.Partition(cluster.TopicPartition{Topic: checkerTopic, Partition: id})
	if !ok || st.Leader == cluster.NoLeader || len(st.ISR) != checkerBrokers {
		return false
	}
	lp := c.partition(c.nodes[st.Leader-1], id)
	if lp == nil || !lp.Leader() {
		return false
	}
	end := lp.LogEndOffset()
	for _, n := range c.nodes {
		p := c.partition(n, id)
		if p == nil || p.LogEndOffset() != end || p.HighWatermark() != end {
			return false
		}
	}
	return true
}

func (c *checkerCluster) describe(id int32) string {
	st, _ := c.ctrl.Partition(cluster.TopicPartition{Topic: checkerTopic, Partition: id})
	s := fmt.Sprintf("controller %+v;", st)
	for _, n := range c.nodes {
		if p := c.partition(n, id); p != nil {
			s += fmt.Sprintf(" broker %d: leo %d hw %d leader %v;", n.id, p.LogEndOffset(), p.HighWatermark(), p.Leader())
		}
	}
	return s
}

// leaderPartition returns the partition on the broker the controller says
// leads it, or nil.
func (c *checkerCluster) leaderPartition(id int32) *Partition {
	st, ok := c.ctrl.Partition(cluster.TopicPartition{Topic: checkerTopic, Partition: id})
	if !ok || st.Leader == cluster.NoLeader {
		return nil
	}
	return c.partition(c.nodes[st.Leader-1], id)
}

// checkerProducer writes one record per batch with an idempotent
// producer's sequence numbers, retrying a batch until it is acknowledged.
type checkerProducer struct {
	c         *checkerCluster
	partition int32
	id        int64
	acked     []checkerAck
}

type checkerAck struct {
	seq    int32
	offset int64
}

func checkerValue(partition, seq int32) []byte { return fmt.Appendf(nil, "p%d-s%d", partition, seq) }

func (p *checkerProducer) run(ctx context.Context) {
	var b batch.Builder
	for seq := int32(0); ctx.Err() == nil; {
		part := p.c.leaderPartition(p.partition)
		if part == nil {
			backoff(ctx)
			continue
		}
		b.Reset(batch.CodecNone)
		b.SetProducer(p.id, 0, seq)
		b.Add(time.Now().UnixMilli(), nil, checkerValue(p.partition, seq), nil)
		buf, err := b.Build(nil)
		if err != nil {
			panic(err)
		}
		res, err := part.WriteBatch(buf, p.c.acks)
		if err == nil {
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			err = part.WaitAcked(wctx, res.NextOffset, p.c.acks)
			cancel()
		}
		if err != nil {
			backoff(ctx)
			continue
		}
		p.c.record("partition %d: seq %d acknowledged at offset %d, leader epoch %d", p.partition, seq, res.BaseOffset, part.LeaderEpoch())
		p.acked = append(p.acked, checkerAck{seq: seq, offset: res.BaseOffset})
		seq++
	}
}

func backoff(ctx context.Context) {
	t := time.NewTimer(2 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// checkerConsumer reads a partition from its leader, whoever that is,
// remembering every record it saw at its offset.
type checkerConsumer struct {
	c         *checkerCluster
	partition int32
	seen      map[int64][]byte
}

func (cs *checkerConsumer) run(ctx context.Context) {
	var pos int64
	for ctx.Err() == nil {
		part := cs.c.leaderPartition(cs.partition)
		if part == nil {
			backoff(ctx)
			continue
		}
		s, err := part.Read(pos, 64<<10)
		if err != nil {
			backoff(ctx)
			continue
		}
		if len(s.Bytes) == 0 {
			s.Release()
			wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			_ = part.Wait(wctx, pos)
			cancel()
			continue
		}
		for r, err := range Records(s) {
			if err != nil {
				break
			}
			if r.Offset >= pos {
				cs.seen[r.Offset] = bytes.Clone(r.Value)
				pos = r.Offset + 1
			}
		}
		s.Release()
	}
}

// check compares what the producers were told and what the consumers saw
// with the replicas' logs.
func (c *checkerCluster) check(id int32, p *checkerProducer, cs *checkerConsumer, acksAll bool, res *checkerResult) {
	logs := make([][]checkerRecord, len(c.nodes))
	for i, n := range c.nodes {
		part := c.partition(n, id)
		if part == nil {
			res.anomalies = append(res.anomalies, fmt.Sprintf("partition %d: broker %d has no replica", id, n.id))
			return
		}
		logs[i] = readReplica(part)
	}
	leader := logs[0]
	for i := 1; i < len(logs); i++ {
		if !equalRecords(logs[i], leader) {
			res.anomalies = append(res.anomalies, fmt.Sprintf("partition %d: broker %d's log (%d records) differs from broker 1's (%d records)", id, c.nodes[i].id, len(logs[i]), len(leader)))
		}
	}
	byOffset := map[int64][]byte{}
	seqs := map[string]int{}
	for i, r := range leader {
		if r.offset != int64(i) {
			res.anomalies = append(res.anomalies, fmt.Sprintf("partition %d: offset %d at position %d: offsets not dense", id, r.offset, i))
			break
		}
		byOffset[r.offset] = r.value
		seqs[string(r.value)]++
	}
	for v, k := range seqs {
		if k > 1 {
			res.anomalies = append(res.anomalies, fmt.Sprintf("partition %d: %s written %d times", id, v, k))
		}
	}
	for _, a := range p.acked {
		got, ok := byOffset[a.offset]
		if !ok || !bytes.Equal(got, checkerValue(id, a.seq)) {
			res.lost++
			if acksAll {
				res.anomalies = append(res.anomalies, fmt.Sprintf("partition %d: acknowledged record seq %d at offset %d lost (log has %q)", id, a.seq, a.offset, got))
			}
		}
	}
	for off, v := range cs.seen {
		if got, ok := byOffset[off]; (!ok || !bytes.Equal(got, v)) && acksAll {
			res.anomalies = append(res.anomalies, fmt.Sprintf("partition %d: a consumer saw %q at offset %d, later truncated (log has %q)", id, v, off, got))
		}
	}
}

type checkerRecord struct {
	offset int64
	value  []byte
}

func readReplica(p *Partition) []checkerRecord {
	var out []checkerRecord
	for pos := p.StartOffset(); pos < p.LogEndOffset(); {
		s, err := p.ReadForFollower(pos, 1<<20)
		if err != nil || len(s.Bytes) == 0 {
			s.Release()
			break
		}
		for r, err := range Records(s) {
			if err != nil {
				break
			}
			if r.Offset >= pos {
				out = append(out, checkerRecord{r.Offset, bytes.Clone(r.Value)})
			}
		}
		pos = s.NextOffset
		s.Release()
	}
	return out
}

func equalRecords(a, b []checkerRecord) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].offset != b[i].offset || !bytes.Equal(a[i].value, b[i].value) {
			return false
		}
	}
	return true
}
