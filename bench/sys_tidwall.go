package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/tidwall/wal"
)

// tidwall/wal: a plain Go write-ahead log in this process, for the raw
// single-log rows (W1, W2, W5). Records are appended in batches of
// rawBatch entries (WriteBatch) and read one by one (Read, without copy).
var sysTidwall = system{
	name: "tidwall/wal (raw log)",
	key:  "tidwall-wal",
	raw:  true,
	durability: func(sc *scenario) string {
		if sc.durable {
			return "fsync per WriteBatch of 1,000 entries"
		}
		return "NoSync: page cache, no fsync"
	},
	supports: rawSupports,
	start: func(sc *scenario, dir string) (*instance, error) {
		return &instance{drv: &tidwallDriver{dir: dir, durable: sc.durable, logs: map[string]*wal.Log{}}, close: func() error { return nil }}, nil
	},
}

// rawBatch is how many entries a raw log appends per call.
const rawBatch = 1000

// rawSupports: the raw logs have one writer, one log and no consumers.
func rawSupports(sc *scenario) string {
	if sc.rate > 0 || sc.partitions > 1 || sc.replicas > 1 {
		return "not applicable: a single local log"
	}
	return ""
}

type tidwallDriver struct {
	dir     string
	durable bool
	logs    map[string]*wal.Log
}

func (d *tidwallDriver) log(topic string) (*wal.Log, error) {
	if l, ok := d.logs[topic]; ok {
		return l, nil
	}
	l, err := wal.Open(filepath.Join(d.dir, topic), &wal.Options{NoSync: !d.durable, NoCopy: true})
	if err != nil {
		return nil, err
	}
	d.logs[topic] = l
	return l, nil
}

func (d *tidwallDriver) close() error {
	for _, l := range d.logs {
		if err := l.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (d *tidwallDriver) produce(_ context.Context, topic string, s produceSpec) (int64, error) {
	l, err := d.log(topic)
	if err != nil {
		return 0, err
	}
	last, err := l.LastIndex()
	if err != nil {
		return 0, err
	}
	val := value(s.size)
	var b wal.Batch
	var n int64
	for n < s.records && !time.Now().After(s.deadline) {
		k := min(rawBatch, s.records-n)
		for range k {
			last++
			b.Write(last, val)
		}
		if err := l.WriteBatch(&b); err != nil {
			return n, err
		}
		b.Clear()
		n += k
	}
	return n, nil
}

func (d *tidwallDriver) consume(_ context.Context, topic string, n int64, _ int) (int64, error) {
	l, err := d.log(topic)
	if err != nil {
		return 0, err
	}
	first, err := l.FirstIndex()
	if err != nil {
		return 0, err
	}
	var got int64
	for i := first; got < n; i++ {
		if _, err := l.Read(i); err != nil {
			return got, err
		}
		got++
	}
	return got, nil
}

func (d *tidwallDriver) latency(context.Context, string, int, time.Duration, int) ([]time.Duration, error) {
	return nil, errUnsupported
}
