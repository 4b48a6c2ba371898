package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamkit/commitlog"
)

// natsDriver is nats.go's jetstream client against the server at url, in
// the child process. A topic is a stream of the same name; a partition p
// is the subject "<topic>.<p>", a keyed record's partition being Kafka's
// murmur2 of its key, as for the other systems. Producers publish
// asynchronously (PublishAsync, nats.go's default of 4,000 acks pending);
// consumers are pull consumers without acks (AckNone, as Kafka consumers
// do not ack records) that buffer up to 10,000 messages.
type natsDriver struct{ url string }

func (d *natsDriver) close() error { return nil }

func (d *natsDriver) connect(opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(d.url)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

const natsPull = 10000

func (d *natsDriver) produce(ctx context.Context, topic string, s produceSpec) (int64, error) {
	var acked atomic.Int64
	var errs errOnce
	var wg sync.WaitGroup
	per := s.records / int64(s.producers)
	subjects := make([]string, max(1, s.partitions))
	for i := range subjects {
		subjects[i] = fmt.Sprintf("%s.%d", topic, i)
	}
	for p := range s.producers {
		wg.Go(func() {
			var failed atomic.Int64
			nc, js, err := d.connect(jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
				failed.Add(1)
				errs.set(err)
			}))
			if err != nil {
				errs.set(err)
				return
			}
			defer nc.Close()
			val := value(s.size)
			base := int64(p) * per
			var sent int64
			for i := range per {
				if i&1023 == 0 && (time.Now().After(s.deadline) || errs.get() != nil) {
					break
				}
				subj := subjects[0]
				if s.keyed {
					subj = subjects[commitlog.KeyPartition(keyFor(base+i), int32(len(subjects)))]
				}
				if err := publishAsync(ctx, js, subj, val); err != nil {
					errs.set(err)
					break
				}
				sent++
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				errs.set(ctx.Err())
			}
			acked.Add(sent - failed.Load())
		})
	}
	wg.Wait()
	return acked.Load(), errs.get()
}

func (d *natsDriver) consume(ctx context.Context, topic string, n int64, members int) (int64, error) {
	var got atomic.Int64
	done := make(chan struct{})
	var doneOnce sync.Once
	handler := func(m jetstream.Msg) {
		if got.Add(1) == n {
			doneOnce.Do(func() { close(done) })
		}
	}
	var stops []func()
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	for i := range max(1, members) {
		nc, js, err := d.connect()
		if err != nil {
			return got.Load(), err
		}
		stops = append(stops, nc.Close)
		var cons jetstream.Consumer
		if members == 0 {
			cons, err = js.OrderedConsumer(ctx, topic, jetstream.OrderedConsumerConfig{})
		} else if i == 0 {
			cons, err = js.CreateOrUpdateConsumer(ctx, topic, jetstream.ConsumerConfig{Durable: "g-" + topic, AckPolicy: jetstream.AckNonePolicy})
		} else {
			cons, err = js.Consumer(ctx, topic, "g-"+topic)
		}
		if err != nil {
			return got.Load(), err
		}
		cc, err := cons.Consume(handler, jetstream.PullMaxMessages(natsPull))
		if err != nil {
			return got.Load(), err
		}
		stops = append(stops, cc.Stop)
	}
	select {
	case <-done:
		return got.Load(), nil
	case <-ctx.Done():
		return got.Load(), ctx.Err()
	}
}

func (d *natsDriver) latency(ctx context.Context, topic string, rate int, dur time.Duration, size int) ([]time.Duration, error) {
	cnc, cjs, err := d.connect()
	if err != nil {
		return nil, err
	}
	defer cnc.Close()
	col := newLatCollector(int(float64(rate) * dur.Seconds()))
	cons, err := cjs.OrderedConsumer(ctx, topic, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { col.add(m.Data()) }, jetstream.PullMaxMessages(natsPull))
	if err != nil {
		return nil, err
	}
	defer cc.Stop()
	var errs errOnce
	nc, js, err := d.connect(jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { errs.set(err) }))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	subj := topic + ".0"
	send := func(v []byte) error {
		if err := publishAsync(ctx, js, subj, v); err != nil {
			return err
		}
		return errs.get()
	}
	lat, err := col.run(ctx, rate, dur, size, send)
	return lat, errors.Join(err, errs.get())
}

// publishAsync publishes without waiting for the ack; when the acks pending
// reach the client's limit it waits for room (a durable stream acks slowly)
// instead of failing.
func publishAsync(ctx context.Context, js jetstream.JetStream, subj string, v []byte) error {
	for {
		_, err := js.PublishAsync(subj, v, jetstream.WithStallWait(time.Second))
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
