package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoDriver is franz-go's kgo client against a Kafka protocol server at
// addr (comma-separated seed brokers), with the settings of issue 7 for
// every Kafka protocol row: 5 ms linger, 1 MiB batches, acks=all and
// idempotence on (kgo's defaults). It runs in the child process.
type kgoDriver struct{ addr string }

func (d *kgoDriver) close() error { return nil }

func (d *kgoDriver) client(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(d.addr, ",")...)}, opts...)...)
}

func (d *kgoDriver) produce(ctx context.Context, topic string, s produceSpec) (int64, error) {
	var acked atomic.Int64
	var errs errOnce
	var wg sync.WaitGroup
	per := s.records / int64(s.producers)
	for p := range s.producers {
		wg.Go(func() {
			cl, err := d.client(
				kgo.DefaultProduceTopic(topic),
				kgo.RequiredAcks(kgo.AllISRAcks()), // the default, which idempotence needs
				kgo.ProducerLinger(5*time.Millisecond),
				kgo.ProducerBatchMaxBytes(1<<20),
				// Room for about ten 1 MiB batches of 100 B records; kgo's
				// default of 10,000 records holds one.
				kgo.MaxBufferedRecords(100000),
			)
			if err != nil {
				errs.set(err)
				return
			}
			defer cl.Close()
			val := value(s.size)
			promise := func(_ *kgo.Record, err error) {
				if err != nil {
					errs.set(err)
					return
				}
				acked.Add(1)
			}
			base := int64(p) * per
			for i := range per {
				if i&1023 == 0 && (time.Now().After(s.deadline) || errs.get() != nil) {
					break
				}
				r := &kgo.Record{Value: val}
				if s.keyed {
					r.Key = keyFor(base + i)
				}
				cl.Produce(ctx, r, promise)
			}
			errs.set(cl.Flush(ctx))
		})
	}
	wg.Wait()
	return acked.Load(), errs.get()
}

func (d *kgoDriver) consume(ctx context.Context, topic string, n int64, members int) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got atomic.Int64
	var errs errOnce
	var wg sync.WaitGroup
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if members > 0 {
		opts = append(opts, kgo.ConsumerGroup("g-"+topic), kgo.DisableAutoCommit())
	}
	for range max(1, members) {
		wg.Go(func() {
			cl, err := d.client(opts...)
			if err != nil {
				errs.set(err)
				cancel()
				return
			}
			defer cl.Close()
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					return
				}
				fs.EachError(func(t string, p int32, err error) { errs.set(err); cancel() })
				if got.Add(int64(fs.NumRecords())) >= n {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if err := errs.get(); err != nil && !errors.Is(err, context.Canceled) {
		return got.Load(), err
	}
	return got.Load(), nil
}

func (d *kgoDriver) latency(ctx context.Context, topic string, rate int, dur time.Duration, size int) ([]time.Duration, error) {
	cons, err := d.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	// No linger here: a latency test with 5 ms linger measures the linger.
	prod, err := d.client(kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	col := newLatCollector(int(float64(rate) * dur.Seconds()))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			fs.EachRecord(func(r *kgo.Record) { col.add(r.Value) })
		}
	}()
	var errs errOnce
	promise := func(_ *kgo.Record, err error) { errs.set(err) }
	send := func(v []byte) error {
		prod.Produce(ctx, &kgo.Record{Value: v}, promise)
		return errs.get()
	}
	lat, err := col.run(ctx, rate, dur, size, send)
	cancel()
	<-consumerDone
	return lat, errors.Join(err, errs.get())
}
