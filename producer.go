package commitlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
)

// Producer batching, as Kafka's producer and franz-go's kgo do it.
//
// Every (topic, partition) a producer writes to has a partBuffer holding an
// open batch: records are encoded straight into its batch.Builder by the
// goroutine that sends them, under the partBuffer's lock, so a record costs
// one encoding and no allocation. The open batch is cut (closed to further
// records) when the next record would take it past the batch limit, when
// Linger expires, or when a synchronous Send, Flush or Close wants it; with
// Linger 0 the sender goroutine cuts it whenever it gets to the partition,
// so a batch holds whatever accumulated while the previous append ran.
//
// One sender goroutine per producer builds cut batches (header, CRC),
// writes them to their partitions' logs, waits once per partition for
// durability when the acks and the broker's SyncPolicy ask for it (so the
// batches of many partitions share their fsyncs), then runs callbacks, in
// order per partition, and frees the buffer space they held. A compressed
// batch cut because it is full is compressed by the goroutine whose record
// filled it, so compression is spread over the sending goroutines, as in
// Kafka's producer.
//
// Lock order: Producer.closeMu, then Producer.topicsMu, then partBuffer.mu,
// then pendingBatch.buildMu or Producer.qMu. memBudget.mu and the progress
// notifier are leaves.

// Acks says when a Producer considers a record written (Kafka's acks).
type Acks int8

const (
	// AcksAll, the default (acks=all, -1), acknowledges a record once every
	// in-sync replica has it: on a broker of a cluster, once the partition's
	// high watermark passed it (and writes fail with ErrNotEnoughReplicas
	// while fewer than the topic's MinInsyncReplicas are in sync); on a
	// single broker, once appended, durably under the default SyncPolicy,
	// SyncGroupCommit.
	AcksAll Acks = iota
	// AcksLeader (acks=1) acknowledges a record once the partition leader
	// appended it, durably under SyncGroupCommit.
	AcksLeader
	// AcksNone (acks=0) acknowledges nothing: Send returns as soon as the
	// record is buffered, with Offset -1, and callbacks get Offset -1 once
	// the batch is written, without waiting for an fsync. Errors the
	// producer meets are still reported to callbacks.
	AcksNone
)

// String returns Kafka's value of the acks setting: "all", "1" or "0".
func (a Acks) String() string {
	switch a {
	case AcksAll:
		return "all"
	case AcksLeader:
		return "1"
	case AcksNone:
		return "0"
	}
	return fmt.Sprintf("Acks(%d)", int8(a))
}

// ProducerConfig configures a Producer. The zero value is usable: every
// zero field takes the default written beside it.
type ProducerConfig struct {
	// Acks says when a record counts as written (acks). Default AcksAll.
	Acks Acks
	// Linger is how long a partition's batch waits for more records before
	// it is written (linger.ms). Default 0: no waiting, and a batch is
	// whatever accumulated while the partition's previous batch was being
	// appended, as franz-go does; batching then grows with load by itself.
	// A synchronous Send never waits for Linger.
	Linger time.Duration
	// BatchBytes caps a batch, in bytes before compression (batch.size).
	// Default 64 KiB (DefaultProducerBatchBytes). A batch never exceeds
	// its topic's MaxMessageBytes either; a record larger than BatchBytes
	// is sent in a batch of its own.
	BatchBytes int
	// MaxBufferedBytes bounds the memory of records sent but not yet
	// acknowledged, counted as their encoded size (buffer.memory). Default
	// 32 MiB. When it is reached, Send and SendAsync wait for room, or fail
	// at once with ErrBufferFull when FailWhenFull is set.
	MaxBufferedBytes int
	// FailWhenFull makes Send and SendAsync fail with ErrBufferFull instead
	// of waiting when the buffer is full (max.block.ms=0).
	FailWhenFull bool
	// Compression compresses each batch (compression.type). Default
	// CompressionNone.
	Compression Compression
	// Partitioner chooses each record's partition (partitioner.class).
	// Default DefaultPartitioner(): Kafka's murmur2 of the key, sticky
	// round robin for records without one.
	Partitioner Partitioner
}

// Defaults of ProducerConfig.
const (
	// DefaultProducerBatchBytes is the default ProducerConfig.BatchBytes,
	// 64 KiB where Kafka has 16 KiB. The limit only matters under load:
	// with Linger 0 a batch is cut whenever the sender is free, so it is as
	// small as latency asks and reaches the limit only when the sender is
	// behind. Then a larger batch spreads its fixed costs (a 61-byte header,
	// a CRC setup, a write call, a trip through the sender) over more
	// records, and compresses better: gzip, snappy and LZ4 cannot look back
	// further than 32 to 64 KiB, so their ratios stop improving there
	// (measured on the benchmark records: LZ4 0.57 at 16 KiB, 0.51 at
	// 64 KiB, 0.51 at 1 MiB; gzip 0.356, 0.347, 0.340). Each partition's
	// open batch grows up to the limit, so 64 KiB also keeps a thousand
	// lingering partitions within 64 MiB.
	DefaultProducerBatchBytes = 64 << 10
	// DefaultProducerMaxBufferedBytes is the default
	// ProducerConfig.MaxBufferedBytes, Kafka's buffer.memory.
	DefaultProducerMaxBufferedBytes = 32 << 20
)

func (c ProducerConfig) withDefaults() ProducerConfig {
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultProducerBatchBytes
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = DefaultProducerMaxBufferedBytes
	}
	if c.Partitioner == nil {
		c.Partitioner = DefaultPartitioner()
	}
	return c
}

func (c *ProducerConfig) validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: ProducerConfig.%s %v %s", ErrInvalidConfig, field, v, why)
	}
	switch {
	case c.Acks < AcksAll || c.Acks > AcksNone:
		return bad("Acks", c.Acks, "unknown")
	case c.Linger < 0:
		return bad("Linger", c.Linger, "is negative")
	case c.BatchBytes < 0:
		return bad("BatchBytes", c.BatchBytes, "is negative")
	case c.MaxBufferedBytes < 0:
		return bad("MaxBufferedBytes", c.MaxBufferedBytes, "is negative")
	case !c.Compression.valid():
		return bad("Compression", c.Compression, "unknown")
	}
	return nil
}

// Producer sends records to a broker's topics, batching them per partition.
// Its methods are safe for concurrent use. Records sent to one partition
// are appended in the order their Send or SendAsync calls were made (calls
// from different goroutines are ordered by whichever encodes first), and
// their callbacks run in that order.
//
// Close the producer when done; Broker.Shutdown flushes it and Broker.Close
// fails what it still buffers with ErrClosed.
type Producer struct {
	b        *Broker
	cfg      ProducerConfig
	observer batchObserver // cfg.Partitioner, if it watches batches
	batches  sync.Pool     // *pendingBatch
	waiters  sync.Pool     // *waiter, for Send
	scratch  sync.Pool     // *Record handed to custom partitioners
	mem      memBudget

	// topicsMu serialises changes to topics (copied on write), to the
	// partitions of each producerTopic and to retired, and orders them
	// against Close marking every buffer closed.
	topicsMu sync.Mutex
	topics   atomic.Pointer[map[string]*producerTopic]
	last     atomic.Pointer[producerTopic] // the topic of the latest record, skipping the map
	retired  []*producerTopic              // replaced after their topic was deleted
	closed   atomic.Bool                   // no new records; set under topicsMu

	// qMu guards the sender's work: partitions with batches to take and
	// records that failed before they were buffered.
	qMu         sync.Mutex
	queue       []*partBuffer
	fails       []failedRecord
	failsQueued uint64 // records ever added to fails
	senderGone  bool   // the sender stopped: callbacks run inline
	failsDone   atomic.Uint64
	wake        chan struct{} // buffered: work was queued

	progress notifier // broadcast after each round of the sender

	closeMu sync.Mutex    // serialises Close and the broker's close
	stopped atomic.Bool   // the sender goroutine has exited
	aborted atomic.Bool   // fail buffered records instead of appending them
	closing chan struct{} // closed when closing starts: wakes waiters for room
	stop    chan struct{} // closed to end the sender goroutine
	wg      sync.WaitGroup
}

// producerTopic is a topic a producer has written to.
type producerTopic struct {
	name     string
	t        *Topic
	maxBatch int // the topic's MaxMessageBytes
	limit    int // batches are cut before they grow past this
	parts    atomic.Pointer[[]*partBuffer]
}

// partBuffer holds the records of one partition not yet appended.
type partBuffer struct {
	p    *Producer
	pt   *producerTopic
	part *Partition
	id   int32

	mu      sync.Mutex      // guards the fields below
	cur     *pendingBatch   // the open batch; nil when there is none
	ready   []*pendingBatch // cut batches for the sender, oldest first
	due     bool            // cut cur at the sender's next visit
	queued  bool            // in Producer.queue
	closed  bool            // refuse new records
	lastSeq uint64          // seq of the newest batch holding records
	timer   *time.Timer     // Linger; created on first use

	done atomic.Uint64 // seq of the newest batch finished, callbacks run
}

// pendingBatch is a batch being filled or waiting to be appended. Batches
// are pooled with their buffers.
type pendingBatch struct {
	seq    uint64 // per partition, from 1
	b      batch.Builder
	baseTs int64                // first record's timestamp, ms: deltas are from it
	opened time.Time            // when the first record came, for Linger
	recs   []pendingRecord      // the records someone waits for
	hdrs   []batch.RecordHeader // one record's headers, converted
	mem    int                  // buffer bytes its records hold

	// buildMu is held while the batch is built: by the sending goroutine
	// that cut a compressed batch (it locks buildMu under partBuffer.mu
	// when it cuts, so the sender cannot get ahead of it), or by the
	// sender. It guards built, buf and buildErr.
	buildMu  sync.Mutex
	built    bool
	buf      []byte // the built batch
	buildErr error
}

// buildLocked builds the batch into buf, once. The caller holds buildMu.
func (pb *pendingBatch) buildLocked() {
	if pb.built {
		return
	}
	pb.built = true
	buf, err := pb.b.Finish() // in the builder's memory: pb.b is not reset before the batch is written
	if err != nil {
		if errors.Is(err, batch.ErrTooLarge) {
			err = fmt.Errorf("%w: %w", ErrRecordTooLarge, err)
		}
		pb.buildErr = err
		return
	}
	pb.buf = buf
}

// pendingRecord is a buffered record and whom to tell about it. Records
// sent with neither are not kept.
type pendingRecord struct {
	delta int32 // offset delta in its batch
	rec   Record
	cb    func(Record, error) // SendAsync's callback, or nil
	w     *waiter             // Send's, or nil
}

// failedRecord is a SendAsync record refused before it was buffered; its
// callback runs on the sender goroutine like every other.
type failedRecord struct {
	rec Record
	cb  func(Record, error)
	err error
}

// waiter carries a synchronous Send's result back to it.
type waiter struct {
	ch  chan struct{} // buffered: the result is in
	rec Record
	err error
}

// NewProducer returns a producer that writes to b's topics. The broker
// flushes it on Shutdown and fails its buffered records on Close. It fails
// with ErrInvalidConfig for a bad configuration and ErrClosed once b is
// closed.
func (b *Broker) NewProducer(cfg ProducerConfig) (*Producer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Producer{
		b:       b,
		cfg:     cfg,
		mem:     memBudget{max: int64(cfg.MaxBufferedBytes)},
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		stop:    make(chan struct{}),
	}
	p.observer, _ = cfg.Partitioner.(batchObserver)
	p.batches.New = func() any { return new(pendingBatch) }
	p.waiters.New = func() any { return &waiter{ch: make(chan struct{}, 1)} }
	p.scratch.New = func() any { return new(Record) }
	p.wg.Add(1)
	go p.run()
	if err := b.register(p); err != nil {
		p.shutdown(true)
		return nil, err
	}
	return p, nil
}

// Send sends r and waits until it is written (see Acks), or ctx is done. It
// returns r with Partition, Offset and Timestamp filled in: Timestamp is
// the time of the call for a zero Timestamp (to the millisecond, as
// stored), and the broker's append time on a LogAppendTime topic. Send cuts
// its partition's batch at once instead of waiting for Linger; concurrent
// Sends to one partition still share batches.
//
// With AcksNone it returns once r is buffered, with Offset -1.
//
// Errors: ErrUnknownTopic (unless Options.AutoCreateTopics),
// ErrRecordTooLarge when r alone exceeds the topic's MaxMessageBytes or
// MaxBufferedBytes, ErrUnknownPartition when the partitioner's choice is
// out of range, ErrBufferFull with FailWhenFull, ErrClosed after Close, an
// append error, or ctx's error. If ctx ends after r was buffered, r may
// still be written.
func (p *Producer) Send(ctx context.Context, r Record) (Record, error) {
	if err := ctx.Err(); err != nil {
		r.Offset = -1
		return r, err
	}
	if p.cfg.Acks == AcksNone {
		err := p.produce(ctx, &r, nil, nil)
		return r, err
	}
	w := p.waiters.Get().(*waiter)
	if err := p.produce(ctx, &r, nil, w); err != nil {
		p.waiters.Put(w)
		return r, err
	}
	select {
	case <-w.ch:
		r, err := w.rec, w.err
		w.rec, w.err = Record{}, nil
		p.waiters.Put(w)
		return r, err
	case <-ctx.Done():
		// The sender will still deliver to w; it is left to the collector.
		return r, ctx.Err()
	}
}

// SendAsync buffers r and returns; cb, if not nil, is called with r (its
// Partition, Offset and Timestamp filled in as Send returns them) and the
// outcome once r is written or has failed. Callbacks run one at a time on
// the producer's goroutine, in send order per partition: keep them short,
// and never call Flush or Close from one, nor a SendAsync or Send that may
// wait for buffer room (the goroutine that would free it is yours). A
// record refused before it was buffered (unknown topic, too large, buffer
// full) has its callback run on that goroutine too; after Close, cb runs
// in the calling goroutine with ErrClosed.
//
// When the buffer is full, SendAsync waits for room (or for Close), unless
// FailWhenFull is set. r's Key, Value and Headers are encoded before
// SendAsync returns: the caller may reuse them then, though cb sees them as
// they are when it runs.
func (p *Producer) SendAsync(r Record, cb func(Record, error)) {
	if err := p.produce(context.Background(), &r, cb, nil); err != nil && cb != nil {
		p.failLater(r, cb, err)
	}
}

// Flush cuts every partition's batch and waits until every record buffered
// when it was called is written or failed, callbacks run, or until ctx is
// done. It fails with ErrClosed after Close. Records' own errors go to
// their callbacks (or Send), not to Flush.
func (p *Producer) Flush(ctx context.Context) error {
	if p.stopped.Load() {
		return ErrClosed
	}
	return p.flushAll(ctx)
}

// Close stops accepting records, waits until the buffered ones are written
// (or failed) and their callbacks run, then stops the producer's goroutine.
// It is idempotent. Every later Send fails with ErrClosed.
func (p *Producer) Close() error {
	p.shutdown(false)
	p.b.unregister(p)
	return nil
}

// flush and close make Producer a broker client.
func (p *Producer) flush(ctx context.Context) error { return p.Flush(ctx) }

func (p *Producer) close() error {
	p.shutdown(true)
	return nil
}

// shutdown closes the producer: no new records, the buffered ones appended
// (or, when abort, failed with ErrClosed), the sender stopped.
func (p *Producer) shutdown(abort bool) {
	if abort {
		p.aborted.Store(true)
		p.kick()
	}
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.stopped.Load() {
		return
	}
	p.topicsMu.Lock()
	p.closed.Store(true)
	close(p.closing)
	p.eachBufferLocked(func(pb *partBuffer) {
		pb.mu.Lock()
		pb.closed = true
		pb.mu.Unlock()
	})
	p.topicsMu.Unlock()
	_ = p.flushAll(context.Background()) // cannot fail without a deadline
	p.qMu.Lock()
	p.senderGone = true
	p.qMu.Unlock()
	close(p.stop)
	p.wg.Wait()
	p.eachBuffer(func(pb *partBuffer) {
		pb.mu.Lock()
		if pb.timer != nil {
			pb.timer.Stop()
		}
		pb.mu.Unlock()
	})
	p.stopped.Store(true)
}

// produce validates r, chooses its partition, reserves buffer room and
// encodes r into its partition's open batch. It sets r's fields as Send
// reports them: Partition and Timestamp, and Offset -1.
func (p *Producer) produce(ctx context.Context, r *Record, cb func(Record, error), w *waiter) error {
	r.Offset = -1
	if p.closed.Load() {
		return ErrClosed
	}
	pt, err := p.topicFor(ctx, r.Topic)
	if err != nil {
		return err
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = time.UnixMilli(time.Now().UnixMilli())
	}
	ts := r.Timestamp.UnixMilli()
	body := recordBody(r)
	size := recordSizeAt(body, 0, 0)
	if batch.HeaderSize+size > pt.maxBatch {
		return fmt.Errorf("%w: a record of %d bytes makes a batch of %d, topic %s accepts %d (max.message.bytes)",
			ErrRecordTooLarge, size, batch.HeaderSize+size, pt.name, pt.maxBatch)
	}
	if int64(size) > p.mem.max {
		return fmt.Errorf("%w: a record of %d bytes does not fit ProducerConfig.MaxBufferedBytes %d",
			ErrRecordTooLarge, size, p.mem.max)
	}
	n := pt.t.NumPartitions()
	id, err := p.choose(r, pt, n)
	if err != nil {
		return err
	}
	if err := p.mem.acquire(ctx, int64(size), p.cfg.FailWhenFull, p.closing, p.cutAll); err != nil {
		return err
	}
	// A record that fills its partition's batch cuts it; a partitioner that
	// watches batches (sticky) may then choose again, as Kafka's does, so
	// the record opens a batch on the partition it moves on to.
	for again := p.observer != nil; ; again = false {
		r.Partition = id
		pb, err := p.buffer(pt, id)
		if err != nil {
			p.mem.release(int64(size))
			return err
		}
		added, cut, build, err := p.add(pb, r, ts, body, size, cb, w, again)
		if build != nil {
			build.buildLocked()
			build.buildMu.Unlock()
		}
		if cut && p.observer != nil {
			p.observer.batchCut(pt.name, id, n)
		}
		if err != nil {
			p.mem.release(int64(size))
			return err
		}
		if added {
			return nil
		}
		if id, err = p.choose(r, pt, n); err != nil {
			p.mem.release(int64(size))
			return err
		}
	}
}

// choose runs the partitioner on r and checks its choice.
func (p *Producer) choose(r *Record, pt *producerTopic, n int32) (int32, error) {
	id := p.partition(r, n)
	if id < 0 || id >= n {
		return id, fmt.Errorf("%w: partitioner chose %d for topic %s, which has %d", ErrUnknownPartition, id, pt.name, n)
	}
	return id, nil
}

// add encodes r (body: see recordBody; size: its buffer room) into pb's
// open batch, first cutting the batch if r would take it past its limit.
// When it cuts and stopAtCut is set, it returns without adding r. It
// reports whether it added r and whether it cut a batch. A cut compressed
// batch is returned as build, its buildMu locked: the caller compresses
// it, in its own goroutine, so that compression scales with the goroutines
// sending instead of resting on the one sender. (Without compression,
// building is a copy, cheaper where the batch is written.)
func (p *Producer) add(pb *partBuffer, r *Record, ts int64, body, size int, cb func(Record, error), w *waiter, stopAtCut bool) (added, cut bool, build *pendingBatch, err error) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if pb.closed {
		return false, false, nil, ErrClosed
	}
	cur := pb.cur
	// body+maxRecordOverhead bounds the record's size whatever its deltas,
	// which spares the exact sum while the batch is far from full.
	if cur != nil && cur.b.Size()+body+maxRecordOverhead > pb.pt.limit &&
		cur.b.Size()+recordSizeAt(body, ts-cur.baseTs, int64(cur.b.Len())) > pb.pt.limit {
		pb.ready = append(pb.ready, cur)
		if p.cfg.Compression != CompressionNone {
			cur.buildMu.Lock()
			build = cur
		}
		pb.cur, cur, cut = nil, nil, true
		p.enqueueLocked(pb)
		if stopAtCut {
			return false, true, build, nil
		}
	}
	if cur == nil {
		cur = p.batches.Get().(*pendingBatch)
		cur.b.Reset(batch.Codec(p.cfg.Compression))
		pb.lastSeq++
		cur.seq, cur.baseTs = pb.lastSeq, ts
		pb.cur = cur
		switch {
		case p.cfg.Linger == 0 || pb.due:
			p.enqueueLocked(pb)
		case pb.timer == nil:
			cur.opened = time.Now()
			pb.timer = time.AfterFunc(p.cfg.Linger, pb.lingerExpired)
		default:
			cur.opened = time.Now()
			pb.timer.Reset(p.cfg.Linger)
		}
	}
	if cb != nil || w != nil {
		cur.recs = append(cur.recs, pendingRecord{delta: int32(cur.b.Len()), rec: *r, cb: cb, w: w})
	}
	cur.add(ts, r)
	cur.mem += size
	if w != nil && !pb.due && p.cfg.Linger > 0 {
		pb.due = true
		p.enqueueLocked(pb)
	}
	return true, cut, build, nil
}

// partition runs the partitioner. The built-in ones are called directly,
// which lets r stay on the caller's stack; a custom one gets a pooled copy,
// since an interface call would make r escape.
func (p *Producer) partition(r *Record, n int32) int32 {
	switch pp := p.cfg.Partitioner.(type) {
	case *defaultPartitioner:
		return pp.Partition(r, n)
	case manualPartitioner:
		return r.Partition
	case *roundRobinPartitioner:
		return pp.Partition(r, n)
	}
	s := p.scratch.Get().(*Record)
	*s = *r
	id := p.cfg.Partitioner.Partition(s, n)
	*s = Record{}
	p.scratch.Put(s)
	return id
}

// add encodes r into the batch.
func (pb *pendingBatch) add(ts int64, r *Record) {
	var hdrs []batch.RecordHeader
	if len(r.Headers) > 0 {
		hdrs = pb.hdrs[:0]
		for _, h := range r.Headers {
			hdrs = append(hdrs, batch.RecordHeader(h))
		}
	}
	pb.b.Add(ts, r.Key, r.Value, hdrs)
	if hdrs != nil {
		clear(hdrs) // the Builder copied them; drop the caller's values
		pb.hdrs = hdrs[:0]
	}
}

// recordBody is the encoded size of r's body (the bytes after its length)
// as the first record of a batch: timestamp and offset deltas of 0.
func recordBody(r *Record) int {
	body := 1 + 1 + 1 + nullableSize(r.Key) + nullableSize(r.Value) + varintSize(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		body += varintSize(int64(len(h.Key))) + len(h.Key) + nullableSize(h.Value)
	}
	return body
}

// maxRecordOverhead is the most recordSizeAt adds to a body: a 10-byte
// timestamp delta and a 5-byte offset delta in place of 1 byte each, and a
// 5-byte length.
const maxRecordOverhead = 10 + 5 - 2 + 5

// recordSizeAt is the encoded size of a record whose body as a first
// record is body, at offsetDelta of a batch whose base timestamp is tsDelta
// before its own: what batch.Builder.Add adds to the batch's Size.
func recordSizeAt(body int, tsDelta, offsetDelta int64) int {
	body += varintSize(tsDelta) + varintSize(offsetDelta) - 2
	return varintSize(int64(body)) + body
}

// recordSize is recordSizeAt for r.
func recordSize(tsDelta, offsetDelta int64, r *Record) int {
	return recordSizeAt(recordBody(r), tsDelta, offsetDelta)
}

// varintSize is the size of v as a zig-zag varint.
func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

// nullableSize is the encoded size of a nullable byte string.
func nullableSize(b []byte) int {
	if b == nil {
		return 1
	}
	return varintSize(int64(len(b))) + len(b)
}

// compressionSlack is how far below a topic's MaxMessageBytes a compressed
// batch is cut, so that incompressible records, which every codec expands
// a little (stored deflate blocks, raw zstd blocks, literal snappy runs and
// frame headers: a few bytes per block of 16 KiB or more), still fit.
func compressionSlack(maxBatch int) int { return 64 + maxBatch/1024 }

// topicFor returns the producer's state of the named topic, resolving (or
// auto-creating) the topic the first time.
func (p *Producer) topicFor(ctx context.Context, name string) (*producerTopic, error) {
	if pt := p.last.Load(); pt != nil && pt.name == name {
		return pt, nil
	}
	if m := p.topics.Load(); m != nil {
		if pt := (*m)[name]; pt != nil {
			p.last.Store(pt)
			return pt, nil
		}
	}
	t, err := p.b.topicForWrite(ctx, name)
	if err != nil {
		return nil, err
	}
	p.topicsMu.Lock()
	defer p.topicsMu.Unlock()
	if p.closed.Load() {
		return nil, ErrClosed
	}
	var m map[string]*producerTopic
	if old := p.topics.Load(); old != nil {
		if pt := (*old)[name]; pt != nil {
			if pt.t == t {
				return pt, nil
			}
			// Deleted and created again: keep the old buffers in sight
			// until Close, for Flush and Close to wait for.
			p.retired = append(p.retired, pt)
			p.last.CompareAndSwap(pt, nil)
		}
		m = maps.Clone(*old)
	} else {
		m = map[string]*producerTopic{}
	}
	pt := &producerTopic{name: name, t: t, maxBatch: t.config().MaxMessageBytes}
	pt.limit = pt.maxBatch
	if p.cfg.Compression != CompressionNone {
		pt.limit -= compressionSlack(pt.maxBatch)
	}
	pt.limit = min(pt.limit, p.cfg.BatchBytes)
	parts := make([]*partBuffer, 0, t.NumPartitions())
	for _, part := range t.Partitions() {
		parts = append(parts, &partBuffer{p: p, pt: pt, part: part, id: part.id})
	}
	pt.parts.Store(&parts)
	m[name] = pt
	p.topics.Store(&m)
	return pt, nil
}

// buffer returns the buffer of partition id of pt, adding buffers when the
// topic has grown.
func (p *Producer) buffer(pt *producerTopic, id int32) (*partBuffer, error) {
	if parts := *pt.parts.Load(); int(id) < len(parts) {
		return parts[id], nil
	}
	p.topicsMu.Lock()
	defer p.topicsMu.Unlock()
	parts := *pt.parts.Load()
	if int(id) < len(parts) {
		return parts[id], nil
	}
	grown := slices.Clone(parts)
	for i := int32(len(parts)); i <= id; i++ {
		part, err := pt.t.Partition(i)
		if err != nil {
			return nil, err
		}
		grown = append(grown, &partBuffer{p: p, pt: pt, part: part, id: i, closed: p.closed.Load()})
	}
	pt.parts.Store(&grown)
	return grown[id], nil
}

// eachBuffer calls fn on every partition buffer the producer has.
func (p *Producer) eachBuffer(fn func(*partBuffer)) {
	p.topicsMu.Lock()
	defer p.topicsMu.Unlock()
	p.eachBufferLocked(fn)
}

func (p *Producer) eachBufferLocked(fn func(*partBuffer)) {
	visit := func(pt *producerTopic) {
		for _, pb := range *pt.parts.Load() {
			fn(pb)
		}
	}
	if m := p.topics.Load(); m != nil {
		for _, pt := range *m {
			visit(pt)
		}
	}
	for _, pt := range p.retired {
		visit(pt)
	}
}

// enqueueLocked hands pb to the sender, unless it is already queued. The
// caller holds pb.mu.
func (p *Producer) enqueueLocked(pb *partBuffer) {
	if pb.queued {
		return
	}
	pb.queued = true
	p.qMu.Lock()
	p.queue = append(p.queue, pb)
	p.qMu.Unlock()
	p.kick()
}

// kick wakes the sender.
func (p *Producer) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// cutAll marks every open batch due, so the sender takes it now: Flush and
// Close want them, and a full buffer frees room only once batches go.
func (p *Producer) cutAll() {
	p.eachBuffer(func(pb *partBuffer) {
		pb.mu.Lock()
		if pb.cur != nil {
			pb.due = true
			p.enqueueLocked(pb)
		}
		pb.mu.Unlock()
	})
}

// lingerExpired runs when a partition's Linger timer fires.
func (pb *partBuffer) lingerExpired() {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if pb.cur == nil || pb.due {
		return
	}
	// The timer may be a stale one armed for a batch cut since.
	if wait := pb.p.cfg.Linger - time.Since(pb.cur.opened); wait > 0 {
		pb.timer.Reset(wait)
		return
	}
	pb.due = true
	pb.p.enqueueLocked(pb)
}

// flushAll waits until every batch holding records now is finished, and
// every record refused so far has had its callback.
func (p *Producer) flushAll(ctx context.Context) error {
	type target struct {
		pb  *partBuffer
		seq uint64
	}
	var targets []target
	p.eachBuffer(func(pb *partBuffer) {
		pb.mu.Lock()
		if pb.cur != nil {
			pb.due = true
			p.enqueueLocked(pb)
		}
		seq := pb.lastSeq
		pb.mu.Unlock()
		if pb.done.Load() < seq {
			targets = append(targets, target{pb, seq})
		}
	})
	p.qMu.Lock()
	fails := p.failsQueued
	p.qMu.Unlock()
	for {
		ch := p.progress.wait()
		targets = slices.DeleteFunc(targets, func(t target) bool { return t.pb.done.Load() >= t.seq })
		if len(targets) == 0 && p.failsDone.Load() >= fails {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// failLater runs cb with err on the sender goroutine, or at once when the
// sender has stopped.
func (p *Producer) failLater(r Record, cb func(Record, error), err error) {
	p.qMu.Lock()
	if p.senderGone {
		p.qMu.Unlock()
		cb(r, err)
		return
	}
	p.fails = append(p.fails, failedRecord{rec: r, cb: cb, err: err})
	p.failsQueued++
	p.qMu.Unlock()
	p.kick()
}

// round is the sender's scratch space, reused from round to round.
type round struct {
	parts []*partBuffer
	fails []failedRecord
	items []roundItem
}

// roundItem is one batch of a round and what became of it.
type roundItem struct {
	pb         *partBuffer
	b          *pendingBatch
	base, next int64 // offsets of the appended batch
	appendTime int64 // ms; stamped on LogAppendTime topics, else -1
	err        error
}

// run is the sender goroutine.
func (p *Producer) run() {
	defer p.wg.Done()
	var r round
	for {
		select {
		case <-p.wake:
		case <-p.stop:
			for p.runRound(&r) {
			}
			p.progress.broadcast()
			return
		}
		for p.runRound(&r) {
			p.progress.broadcast()
		}
	}
}

// runRound takes the queued work and does it: appends the batches, runs
// the callbacks. It reports whether there was any.
func (p *Producer) runRound(r *round) bool {
	p.qMu.Lock()
	r.parts, p.queue = p.queue, r.parts[:0]
	r.fails, p.fails = p.fails, r.fails[:0]
	failsEnd := p.failsQueued
	p.qMu.Unlock()
	if len(r.parts) == 0 && len(r.fails) == 0 {
		return false
	}
	for i := range r.fails {
		f := &r.fails[i]
		f.cb(f.rec, f.err)
	}
	if len(r.fails) > 0 {
		clear(r.fails)
		p.failsDone.Store(failsEnd)
	}
	for _, pb := range r.parts {
		r.items = pb.take(r.items)
	}
	clear(r.parts)
	p.appendItems(r.items)
	clear(r.items)
	r.items = r.items[:0]
	return true
}

// take moves pb's cut batches, and its open one when it is due, to items.
func (pb *partBuffer) take(items []roundItem) []roundItem {
	p := pb.p
	pb.mu.Lock()
	pb.queued = false
	for _, b := range pb.ready {
		items = append(items, roundItem{pb: pb, b: b})
	}
	clear(pb.ready)
	pb.ready = pb.ready[:0]
	cut := pb.cur != nil && (p.cfg.Linger == 0 || pb.due)
	if cut {
		items = append(items, roundItem{pb: pb, b: pb.cur})
		pb.cur = nil
	}
	if pb.cur == nil {
		pb.due = false
	}
	pb.mu.Unlock()
	if cut && p.observer != nil {
		p.observer.batchCut(pb.pt.name, pb.id, pb.pt.t.NumPartitions())
	}
	return items
}

// appendItems writes the round's batches, waits for their durability, and
// finishes them. Batches of one partition are adjacent and in order.
func (p *Producer) appendItems(items []roundItem) {
	aborted := p.aborted.Load()
	for i := range items {
		it := &items[i]
		if aborted || p.aborted.Load() {
			it.err = ErrClosed
			continue
		}
		p.write(it)
	}
	if p.cfg.Acks != AcksNone {
		for i := 0; i < len(items); {
			pb, last, j := items[i].pb, -1, i
			for ; j < len(items) && items[j].pb == pb; j++ {
				if items[j].err == nil {
					last = j
				}
			}
			if last >= 0 {
				if err := pb.part.waitAcked(context.Background(), items[last].next, p.cfg.Acks); err != nil {
					err = pb.wrapError(err)
					for k := i; k < j; k++ {
						if items[k].err == nil {
							items[k].err = err
						}
					}
				}
			}
			i = j
		}
	}
	for i := range items {
		p.finish(&items[i])
	}
}

// write builds the item's batch and writes it to its partition's log,
// without waiting for durability: Partition.AppendBatch but for the wait,
// so that the batches of a round share their fsyncs.
func (p *Producer) write(it *roundItem) {
	pb, pbat := it.pb, it.b
	pbat.buildMu.Lock() // waits for a sending goroutine building it
	pbat.buildLocked()
	buf, err := pbat.buf, pbat.buildErr
	pbat.buildMu.Unlock()
	if err != nil {
		it.err = pb.wrapError(err)
		return
	}
	it.base, it.next, it.appendTime, err = pb.part.write(buf, p.cfg.Acks)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			err = p.staleTopic(pb.pt, err)
		}
		it.err = pb.wrapError(err)
	}
}

// staleTopic sorts out an append to a closed log: the broker closed (err
// stands), or the topic was deleted, in which case the producer forgets it
// (the next record resolves the name again) and the error becomes
// ErrUnknownTopic.
func (p *Producer) staleTopic(pt *producerTopic, err error) error {
	t, terr := p.b.Topic(pt.name)
	if errors.Is(terr, ErrClosed) || terr == nil && t == pt.t {
		return err
	}
	p.topicsMu.Lock()
	defer p.topicsMu.Unlock()
	p.last.CompareAndSwap(pt, nil)
	if m := p.topics.Load(); m != nil && (*m)[pt.name] == pt {
		nm := maps.Clone(*m)
		delete(nm, pt.name)
		p.topics.Store(&nm)
		p.retired = append(p.retired, pt)
	}
	return fmt.Errorf("%w: %s was deleted", ErrUnknownTopic, pt.name)
}

func (pb *partBuffer) wrapError(err error) error {
	return fmt.Errorf("commitlog: produce to %s-%d: %w", pb.pt.name, pb.id, err)
}

// finish frees the item's buffer room, runs its records' callbacks in
// order and recycles the batch.
func (p *Producer) finish(it *roundItem) {
	pbat := it.b
	p.mem.release(int64(pbat.mem))
	for i := range pbat.recs {
		pr := &pbat.recs[i]
		rec := pr.rec
		if it.err == nil {
			if p.cfg.Acks != AcksNone {
				rec.Offset = it.base + int64(pr.delta)
			}
			if it.appendTime >= 0 {
				rec.Timestamp = time.UnixMilli(it.appendTime)
			}
		}
		switch {
		case pr.w != nil:
			pr.w.rec, pr.w.err = rec, it.err
			pr.w.ch <- struct{}{}
		case pr.cb != nil:
			pr.cb(rec, it.err)
		}
	}
	it.pb.done.Store(pbat.seq)
	clear(pbat.recs)
	pbat.recs = pbat.recs[:0]
	pbat.mem = 0
	pbat.buildMu.Lock() // a sending goroutine may still be building it
	pbat.built, pbat.buildErr = false, nil
	pbat.buildMu.Unlock()
	pbat.opened = time.Time{}
	if pbat.b.Size() <= maxPooledBytes && cap(pbat.buf) <= maxPooledBytes && cap(pbat.recs) <= maxPooledBytes/64 {
		p.batches.Put(pbat)
	}
}

// memBudget is the producer's buffer space (MaxBufferedBytes). Records take
// room without a lock while no one waits; once someone waits, newcomers
// queue behind, and released room goes to waiters in arrival order, so a
// large record is not starved by a stream of small ones.
type memBudget struct {
	max   int64
	used  atomic.Int64
	nwait atomic.Int32 // len(waiters)

	mu      sync.Mutex // guards waiters
	waiters []*memWaiter
}

type memWaiter struct {
	n       int64
	ch      chan struct{} // closed when granted
	granted bool
}

// tryTake takes n bytes if they fit and no one is waiting.
func (m *memBudget) tryTake(n int64) bool {
	if m.nwait.Load() != 0 {
		return false
	}
	return m.take(n)
}

func (m *memBudget) take(n int64) bool {
	for {
		u := m.used.Load()
		if u+n > m.max {
			return false
		}
		if m.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// acquire takes n bytes, waiting for room unless failFast, until ctx is
// done or closing is closed. full runs when it starts to wait.
func (m *memBudget) acquire(ctx context.Context, n int64, failFast bool, closing <-chan struct{}, full func()) error {
	if m.tryTake(n) {
		return nil
	}
	if failFast {
		return ErrBufferFull
	}
	w := &memWaiter{n: n, ch: make(chan struct{})}
	m.mu.Lock()
	m.waiters = append(m.waiters, w)
	m.nwait.Add(1)
	m.grantLocked()
	m.mu.Unlock()
	full()
	var err error
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-closing:
		err = ErrClosed
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w.granted {
		m.used.Add(-n)
	} else {
		m.waiters = slices.DeleteFunc(m.waiters, func(x *memWaiter) bool { return x == w })
		m.nwait.Add(-1)
	}
	m.grantLocked()
	return err
}

// release gives back n bytes.
func (m *memBudget) release(n int64) {
	if n == 0 {
		return
	}
	m.used.Add(-n)
	if m.nwait.Load() != 0 {
		m.mu.Lock()
		m.grantLocked()
		m.mu.Unlock()
	}
}

// grantLocked gives room to waiters, first come first served.
func (m *memBudget) grantLocked() {
	for len(m.waiters) > 0 {
		w := m.waiters[0]
		if !m.take(w.n) {
			return
		}
		w.granted = true
		close(w.ch)
		m.waiters[0] = nil
		m.waiters = m.waiters[1:]
		m.nwait.Add(-1)
	}
}
