package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// A workload is one row group of the report: W1 to W7 of issue 7.
type workload struct {
	id    string
	about string // message size, partitions, producers, what is measured
}

var workloads = []workload{
	{"W1", "produce: 1 producer, 100 B values, 1 partition, no fsync per write"},
	{"W2", "consume W1's records from the start: 1 consumer, 1 partition"},
	{"W3", "produce: 4 producers, 1 KiB values with 16 B keys, 12 partitions, no fsync per write"},
	{"W4", "end-to-end latency at a fixed 50 k records/s: 1 producer (no linger), 1 waiting consumer, 100 B values, 1 partition, no fsync"},
	{"W5", "durable produce, acknowledged only after fsync: 1 producer, 100 B values, 1 partition"},
	{"W6", "3 replicas, acks=all: 1 producer, 100 B values, 1 partition, no fsync per write"},
	{"W7", "consumer group of 4 reading W3's 12 partitions from the start (the time includes joining the group)"},
}

// A scenario is what runs against one fresh broker: a produce phase, then
// optionally a consume phase of what was produced (W1 then W2, W3 then W7),
// or a latency phase (W4).
type scenario struct {
	name       string
	produceWL  string // W1, W3, W5, W6; empty for W4
	consumeWL  string // W2, W7 or empty
	partitions int
	size       int // value bytes
	keyed      bool
	producers  int
	records    int64
	members    int // consumer group members of the consume phase; 0: one consumer without a group
	durable    bool
	replicas   int
	rate       int           // W4: records per second
	duration   time.Duration // W4: how long
}

// scenarios returns the scenarios at the given scale (1: the sizes of issue
// 7, 10 M records for W1).
func scenarios(scale float64) []*scenario {
	n := func(full float64) int64 { return max(1000, int64(math.Round(full*scale))) }
	d := time.Duration(float64(10*time.Second) * scale)
	return []*scenario{
		{name: "W1+W2", produceWL: "W1", consumeWL: "W2", partitions: 1, size: 100, producers: 1, records: n(10e6), replicas: 1},
		{name: "W3+W7", produceWL: "W3", consumeWL: "W7", partitions: 12, size: 1024, keyed: true, producers: 4, records: n(2e6), members: 4, replicas: 1},
		{name: "W4", partitions: 1, size: 100, producers: 1, replicas: 1, rate: 50000, duration: max(2*time.Second, d)},
		{name: "W5", produceWL: "W5", partitions: 1, size: 100, producers: 1, records: n(2e6), durable: true, replicas: 1},
		{name: "W6", produceWL: "W6", partitions: 1, size: 100, producers: 1, records: n(2e6), replicas: 3},
	}
}

func findScenario(scale float64, name string) (*scenario, error) {
	for _, sc := range scenarios(scale) {
		if sc.name == name {
			return sc, nil
		}
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

// dataBytes is roughly what the scenario stores, on all its replicas.
func (sc *scenario) dataBytes() int64 {
	if sc.rate > 0 {
		return int64(sc.rate) * int64(sc.duration/time.Second) * int64(sc.size+64)
	}
	return sc.records * int64(sc.size+64) * int64(max(1, sc.replicas))
}

// workloadIDs are the workloads the scenario measures.
func (sc *scenario) workloadIDs() []string {
	if sc.rate > 0 {
		return []string{"W4"}
	}
	ids := []string{sc.produceWL}
	if sc.consumeWL != "" {
		ids = append(ids, sc.consumeWL)
	}
	return ids
}

// produceSpec says what a produce phase sends.
type produceSpec struct {
	producers  int
	records    int64 // in all
	size       int
	keyed      bool
	partitions int
	deadline   time.Time // stop sending then, and wait for what was sent
}

// A driver is a client of one system: the same calls for every system, so
// that every system runs the same workload code.
type driver interface {
	// produce sends s.records records to topic and waits until all are
	// acknowledged; it returns how many were.
	produce(ctx context.Context, topic string, s produceSpec) (int64, error)
	// consume reads n records of topic from the start, with one consumer,
	// or with members consumers of one group.
	consume(ctx context.Context, topic string, n int64, members int) (int64, error)
	// latency sends rate records a second for d, each carrying its send
	// time, to a consumer that waits for them, and returns each record's
	// latency.
	latency(ctx context.Context, topic string, rate int, d time.Duration, size int) ([]time.Duration, error)
	close() error
}

var errUnsupported = errors.New("not supported by this system")

// A phase is one timed workload of one run.
type phase struct {
	Workload  string    `json:"workload"`
	Records   int64     `json:"records"`
	Bytes     int64     `json:"bytes"`
	Seconds   float64   `json:"seconds"`
	ClientCPU float64   `json:"client_cpu"` // seconds; <0: not separable
	BrokerCPU float64   `json:"broker_cpu"` // seconds; with Combined, client and broker together
	Combined  bool      `json:"combined"`
	Lat       []float64 `json:"lat,omitempty"` // W4: p50, p99, p99.9 in microseconds
	Err       string    `json:"err,omitempty"`
}

// A marker is told when each timed phase starts and ends, to measure CPU.
type marker interface {
	start(workload string)
	end(p *phase)
}

// warmRecords is how many records the untimed warm-up phase sends.
func warmRecords(sc *scenario) int64 { return min(sc.records/10+1, 200000) }

// runScenario runs sc against d: an untimed warm-up on topic "warm", then
// the timed phases on topic "bench".
func runScenario(ctx context.Context, d driver, sc *scenario, m marker, maxDur time.Duration) error {
	if sc.rate > 0 {
		if _, err := d.latency(ctx, "warm", sc.rate, time.Second, sc.size); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		m.start("W4")
		t0 := time.Now()
		lat, err := d.latency(ctx, "bench", sc.rate, sc.duration, sc.size)
		p := &phase{Workload: "W4", Seconds: time.Since(t0).Seconds(), Records: int64(len(lat)), Bytes: int64(len(lat) * sc.size)}
		if err != nil {
			p.Err = err.Error()
		}
		p.Lat = percentiles(lat, 50, 99, 99.9)
		m.end(p)
		return err
	}
	spec := produceSpec{producers: sc.producers, records: warmRecords(sc), size: sc.size, keyed: sc.keyed, partitions: sc.partitions, deadline: time.Now().Add(maxDur)}
	warm, err := d.produce(ctx, "warm", spec)
	if err != nil {
		return fmt.Errorf("warm-up produce: %w", err)
	}
	if sc.consumeWL != "" {
		if _, err := d.consume(ctx, "warm", warm, sc.members); err != nil {
			return fmt.Errorf("warm-up consume: %w", err)
		}
	}

	spec.records = sc.records
	m.start(sc.produceWL)
	t0 := time.Now()
	spec.deadline = t0.Add(maxDur)
	n, err := d.produce(ctx, "bench", spec)
	p := &phase{Workload: sc.produceWL, Records: n, Bytes: n * int64(sc.size), Seconds: time.Since(t0).Seconds()}
	if err != nil {
		p.Err = err.Error()
	}
	m.end(p)
	if err != nil || sc.consumeWL == "" {
		return err
	}

	m.start(sc.consumeWL)
	t0 = time.Now()
	got, err := d.consume(ctx, "bench", n, sc.members)
	p = &phase{Workload: sc.consumeWL, Records: got, Bytes: got * int64(sc.size), Seconds: time.Since(t0).Seconds()}
	if err != nil {
		p.Err = err.Error()
	}
	m.end(p)
	return err
}

// Record contents shared by every driver.

// benchKeys are the 16-byte keys of keyed workloads, used in turn.
var benchKeys = func() [][]byte {
	keys := make([][]byte, 1<<16)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%012d", i)
	}
	return keys
}()

func keyFor(i int64) []byte { return benchKeys[i&(1<<16-1)] }

// value returns a value of size bytes, shared and never modified.
func value(size int) []byte {
	v := make([]byte, size)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	return v
}

// stamped returns a new value of size bytes (at least 8) that carries the
// current time.
func stamped(size int) []byte {
	v := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint64(v, uint64(time.Now().UnixNano()))
	return v
}

// sinceStamp is the time since the value was stamped.
func sinceStamp(v []byte) time.Duration {
	if len(v) < 8 {
		return -1
	}
	return time.Duration(time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(v)))
}

// pace calls send for each record of rate records a second over d, in the
// bursts a 200 µs sleep allows, and returns how many it sent.
func pace(ctx context.Context, rate int, d time.Duration, send func() error) (int64, error) {
	total := int64(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var i int64
	for i < total {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		due := min(total, int64(time.Since(start)/interval)+1)
		for ; i < due; i++ {
			if err := send(); err != nil {
				return i, err
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	return i, nil
}

// percentiles returns the given percentiles of lat in microseconds.
func percentiles(lat []time.Duration, ps ...float64) []float64 {
	if len(lat) == 0 {
		return nil
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	out := make([]float64, len(ps))
	for i, p := range ps {
		k := min(len(s)-1, int(math.Ceil(p/100*float64(len(s))))-1)
		out[i] = float64(s[max(0, k)]) / float64(time.Microsecond)
	}
	return out
}

// latCollector gathers the latencies a consumer sees in the latency phase.
type latCollector struct {
	mu         sync.Mutex
	lats       []time.Duration
	want       int64 // -1 until the producer is done
	primed     chan struct{}
	done       chan struct{}
	primedOnce sync.Once
	doneOnce   sync.Once
}

func newLatCollector(capacity int) *latCollector {
	return &latCollector{lats: make([]time.Duration, 0, capacity+1), want: -1, primed: make(chan struct{}), done: make(chan struct{})}
}

// add is called by the consumer for each record's value.
func (c *latCollector) add(v []byte) {
	d := sinceStamp(v)
	if len(v) > 8 && v[8] == 'P' {
		c.primedOnce.Do(func() { close(c.primed) })
		return
	}
	c.mu.Lock()
	c.lats = append(c.lats, d)
	if c.want >= 0 && int64(len(c.lats)) >= c.want {
		c.doneOnce.Do(func() { close(c.done) })
	}
	c.mu.Unlock()
}

// run sends one primer record and waits until the consumer has it, so that
// connection setup and the consumer's first fetch are not timed; then sends
// rate records a second for dur through send, and waits until the consumer
// has them all.
func (c *latCollector) run(ctx context.Context, rate int, dur time.Duration, size int, send func([]byte) error) ([]time.Duration, error) {
	p := stamped(size)
	p[8] = 'P'
	if err := send(p); err != nil {
		return nil, err
	}
	select {
	case <-c.primed:
	case <-time.After(30 * time.Second):
		return nil, errors.New("the consumer did not receive the primer record in 30 s")
	}
	n, err := pace(ctx, rate, dur, func() error { return send(stamped(size)) })
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.want = n
	if int64(len(c.lats)) >= n {
		c.doneOnce.Do(func() { close(c.done) })
	}
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if int64(len(c.lats)) < n {
		return c.lats, fmt.Errorf("the consumer received %d of %d records", len(c.lats), n)
	}
	return slices.Clone(c.lats), nil
}
