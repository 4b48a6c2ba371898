package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamkit/commitlog"
)

// commitlog in-process: the Broker inside this process, driven through its
// Producer and Consumer. Client and broker share the process, so the CPU
// column is the whole process.
var sysCommitlog = system{
	name:       "commitlog (in-process)",
	key:        "commitlog",
	ours:       true,
	durability: commitlogDurability,
	supports:   commitlogSupports,
	start: func(sc *scenario, dir string) (*instance, error) {
		b, err := openCommitlog(sc, dir)
		if err != nil {
			return nil, err
		}
		return &instance{drv: &commitlogDriver{b: b}, close: b.Close}, nil
	},
}

func commitlogDurability(sc *scenario) string {
	if sc.durable {
		return "SyncGroupCommit (default): acked after fdatasync, shared by concurrent appends"
	}
	return "SyncNone: page cache, no fsync"
}

// commitlogSupports: W6 needs replication, which is being built. Once a
// multi-broker harness exists (commitlogtest.NewCluster or similar), start
// three brokers in openCommitlog when sc.replicas > 1, create the topics
// with ReplicationFactor: 3 and Acks: AcksAll, and drop this check.
func commitlogSupports(sc *scenario) string {
	if sc.replicas > 1 {
		return "not measured: replication is not built yet"
	}
	return ""
}

// openCommitlog opens a broker in dir with the scenario's durability and
// its topics "warm" and "bench".
func openCommitlog(sc *scenario, dir string) (*commitlog.Broker, error) {
	opts := commitlog.Options{SyncPolicy: commitlog.SyncNone}
	if sc.durable {
		opts.SyncPolicy = commitlog.SyncGroupCommit
	}
	b, err := commitlog.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	for _, t := range []string{"warm", "bench"} {
		if _, err := b.CreateTopic(context.Background(), t, commitlog.TopicConfig{Partitions: int32(sc.partitions)}); err != nil {
			return nil, errors.Join(err, b.Close())
		}
	}
	return b, nil
}

type commitlogDriver struct{ b *commitlog.Broker }

func (d *commitlogDriver) close() error { return nil }

func (d *commitlogDriver) produce(ctx context.Context, topic string, s produceSpec) (int64, error) {
	var acked atomic.Int64
	var errs errOnce
	var wg sync.WaitGroup
	per := s.records / int64(s.producers)
	for p := range s.producers {
		wg.Go(func() {
			// The same batching as the franz-go rows: 5 ms linger, 1 MiB batches.
			pr, err := d.b.NewProducer(commitlog.ProducerConfig{Linger: 5 * time.Millisecond, BatchBytes: 1 << 20})
			if err != nil {
				errs.set(err)
				return
			}
			val := value(s.size)
			cb := func(_ commitlog.Record, err error) {
				if err != nil {
					errs.set(err)
					return
				}
				acked.Add(1)
			}
			base := int64(p) * per
			for i := range per {
				if i&1023 == 0 && time.Now().After(s.deadline) {
					break
				}
				r := commitlog.Record{Topic: topic, Value: val}
				if s.keyed {
					r.Key = keyFor(base + i)
				}
				pr.SendAsync(r, cb)
			}
			errs.set(pr.Flush(ctx))
			errs.set(pr.Close())
		})
	}
	wg.Wait()
	return acked.Load(), errs.get()
}

func (d *commitlogDriver) consume(ctx context.Context, topic string, n int64, members int) (int64, error) {
	if members == 0 {
		c, err := d.b.NewConsumer(commitlog.ConsumerConfig{Topics: []string{topic}})
		if err != nil {
			return 0, err
		}
		var got int64
		for got < n {
			recs, err := c.Poll(ctx)
			if err != nil {
				return got, errors.Join(err, c.Close())
			}
			got += int64(len(recs))
		}
		return got, c.Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got atomic.Int64
	var errs errOnce
	var wg sync.WaitGroup
	for range members {
		wg.Go(func() {
			c, err := d.b.NewConsumer(commitlog.ConsumerConfig{Group: "g-" + topic, Topics: []string{topic}})
			if err != nil {
				errs.set(err)
				cancel()
				return
			}
			defer func() { errs.set(c.Close()) }()
			for ctx.Err() == nil {
				recs, err := c.Poll(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs.set(err)
						cancel()
					}
					return
				}
				if got.Add(int64(len(recs))) >= n {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	return got.Load(), errs.get()
}

func (d *commitlogDriver) latency(ctx context.Context, topic string, rate int, dur time.Duration, size int) ([]time.Duration, error) {
	c, err := d.b.NewConsumer(commitlog.ConsumerConfig{Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	col := newLatCollector(int(float64(rate) * dur.Seconds()))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	consumerDone := make(chan error, 1)
	go func() {
		for {
			recs, err := c.Poll(cctx)
			if err != nil {
				consumerDone <- err
				return
			}
			for _, r := range recs {
				col.add(r.Value)
			}
		}
	}()
	pr, err := d.b.NewProducer(commitlog.ProducerConfig{}) // no linger
	if err != nil {
		return nil, err
	}
	var errs errOnce
	cb := func(_ commitlog.Record, err error) { errs.set(err) }
	send := func(v []byte) error {
		pr.SendAsync(commitlog.Record{Topic: topic, Value: v}, cb)
		return errs.get()
	}
	lat, err := col.run(ctx, rate, dur, size, send)
	cancel()
	<-consumerDone
	return lat, errors.Join(err, errs.get(), pr.Close(), c.Close())
}

// errOnce keeps the first error set.
type errOnce struct {
	mu  sync.Mutex
	err error
}

func (e *errOnce) set(err error) {
	if err == nil {
		return
	}
	e.mu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.mu.Unlock()
}

func (e *errOnce) get() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}
