package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/kafka"
	"github.com/streamkit/commitlog/replication"
)

// commitlog in-process: the Broker inside this process, driven through its
// Producer and Consumer. Client and broker share the process, so the CPU
// column is the whole process. W6 runs three brokers in this process
// following one in-process controller (cluster.Local) and replicating over
// an in-memory network (replication.MemNetwork); the producer runs on the
// broker leading the topic's partition.
var sysCommitlog = system{
	name:       "commitlog (in-process)",
	key:        "commitlog",
	ours:       true,
	durability: commitlogDurability("replicating over an in-memory network"),
	supports:   func(*scenario) string { return "" },
	start: func(sc *scenario, dir string) (*instance, error) {
		c, err := openCommitlog(sc, dir, false)
		if err != nil {
			return nil, err
		}
		return &instance{drv: &commitlogDriver{c: c}, close: c.close}, nil
	},
}

func commitlogDurability(replicated string) func(sc *scenario) string {
	return func(sc *scenario) string {
		switch {
		case sc.durable:
			return "SyncGroupCommit (default): acked after fdatasync, shared by concurrent appends"
		case sc.replicas > 1:
			return fmt.Sprintf("R%d (%d brokers, one process, %s), min.insync.replicas 2, SyncNone: no fsync (the replicas give durability)",
				sc.replicas, sc.replicas, replicated)
		}
		return "SyncNone: page cache, no fsync"
	}
}

// commitlogCluster is the brokers of one run: one, or sc.replicas brokers
// of a cluster (ids 1 to n) following one in-process controller.
type commitlogCluster struct {
	ctrl    *cluster.Local // nil for a single broker
	brokers []*commitlog.Broker
	addrs   []string                     // Kafka listeners, with listeners
	leaders map[string]*commitlog.Broker // topic -> the broker leading its partition 0
	closers []func() error               // run in reverse order by close
}

// broker returns the broker to produce to and consume from for topic: the
// leader of its partition 0 (W6 has one partition).
func (c *commitlogCluster) broker(topic string) *commitlog.Broker {
	if b := c.leaders[topic]; b != nil {
		return b
	}
	return c.brokers[0]
}

func (c *commitlogCluster) close() error {
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		errs = append(errs, c.closers[i]())
	}
	c.closers = nil
	return errors.Join(errs...)
}

// openCommitlog opens the scenario's brokers in dir with its durability
// and the topics "warm" and "bench". With listeners each broker serves the
// Kafka protocol on 127.0.0.1 (and a cluster replicates through those
// listeners, with kafka.Transport); otherwise a cluster replicates over
// replication.MemNetwork.
func openCommitlog(sc *scenario, dir string, listeners bool) (c *commitlogCluster, err error) {
	c = &commitlogCluster{leaders: map[string]*commitlog.Broker{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.close())
		}
	}()
	opts := commitlog.Options{SyncPolicy: commitlog.SyncNone}
	if sc.durable {
		opts.SyncPolicy = commitlog.SyncGroupCommit
	}
	n := max(1, sc.replicas)
	var memNet *replication.MemNetwork
	if n > 1 {
		c.ctrl = cluster.NewLocal(cluster.LocalConfig{})
		go c.ctrl.Run(context.Background()) // fences brokers that stop heartbeating; Close stops it
		c.closers = append(c.closers, c.ctrl.Close)
		if !listeners {
			memNet = replication.NewMemNetwork(1)
		}
	}
	for i := range n {
		id := int32(i + 1)
		o := opts
		var ln net.Listener
		if listeners {
			if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				return c, err
			}
		}
		if c.ctrl != nil {
			cc := &commitlog.ClusterConfig{BrokerID: id, Controller: c.ctrl, Host: "127.0.0.1",
				Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
			if listeners {
				cc.Port = int32(ln.Addr().(*net.TCPAddr).Port)
				tr := kafka.NewTransport(kafka.TransportConfig{Addr: kafka.ControllerAddrs(c.ctrl)})
				c.closers = append(c.closers, tr.Close) // after the broker closed
				cc.Transport = tr
			} else {
				cc.Transport = memNet.Transport(id)
			}
			o.Cluster = cc
		}
		b, err := commitlog.Open(filepath.Join(dir, fmt.Sprint(id)), o)
		if err != nil {
			if ln != nil {
				err = errors.Join(err, ln.Close())
			}
			return c, err
		}
		c.brokers = append(c.brokers, b)
		c.closers = append(c.closers, b.Close)
		if memNet != nil {
			memNet.Register(id, b.ReplicaHandler())
			c.closers = append(c.closers, func() error { memNet.Unregister(id); return nil })
		}
		if listeners {
			srv, err := kafka.NewServer(b, kafka.Config{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return c, errors.Join(err, ln.Close())
			}
			go func() { _ = srv.Serve(ln) }()
			c.closers = append(c.closers, srv.Close) // before the broker closes
			c.addrs = append(c.addrs, ln.Addr().String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, t := range []string{"warm", "bench"} {
		cfg := commitlog.TopicConfig{Partitions: int32(sc.partitions)}
		if n > 1 {
			cfg.ReplicationFactor, cfg.MinInsyncReplicas = int16(n), 2
		}
		if _, err := c.brokers[0].CreateTopic(ctx, t, cfg); err != nil {
			return c, err
		}
		if n > 1 {
			if c.leaders[t], err = c.waitLeader(ctx, t); err != nil {
				return c, err
			}
		}
	}
	return c, nil
}

// waitLeader waits until the controller has a leader for topic's
// partition 0 and its whole replica set in sync, and that broker knows it
// leads.
func (c *commitlogCluster) waitLeader(ctx context.Context, topic string) (*commitlog.Broker, error) {
	tp := cluster.TopicPartition{Topic: topic, Partition: 0}
	for {
		if st, ok := c.ctrl.Partition(tp); ok && st.Leader >= 1 && int(st.Leader) <= len(c.brokers) && len(st.ISR) == len(c.brokers) {
			b := c.brokers[st.Leader-1]
			if t, err := b.Topic(topic); err == nil {
				if p, err := t.Partition(0); err == nil && p.Leader() {
					return b, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader with a full ISR for %s/0: %w", topic, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

type commitlogDriver struct{ c *commitlogCluster }

func (d *commitlogDriver) close() error { return nil }

func (d *commitlogDriver) produce(ctx context.Context, topic string, s produceSpec) (int64, error) {
	var acked atomic.Int64
	var errs errOnce
	var wg sync.WaitGroup
	per := s.records / int64(s.producers)
	for p := range s.producers {
		wg.Go(func() {
			// The same batching as the franz-go rows: 5 ms linger, 1 MiB batches.
			// acks=all, the default: on a cluster, acknowledged once every
			// in-sync replica has the record.
			pr, err := d.c.broker(topic).NewProducer(commitlog.ProducerConfig{Acks: commitlog.AcksAll, Linger: 5 * time.Millisecond, BatchBytes: 1 << 20})
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
		c, err := d.c.broker(topic).NewConsumer(commitlog.ConsumerConfig{Topics: []string{topic}})
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
			c, err := d.c.broker(topic).NewConsumer(commitlog.ConsumerConfig{Group: "g-" + topic, Topics: []string{topic}})
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
	c, err := d.c.broker(topic).NewConsumer(commitlog.ConsumerConfig{Topics: []string{topic}})
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
	pr, err := d.c.broker(topic).NewProducer(commitlog.ProducerConfig{}) // no linger
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
