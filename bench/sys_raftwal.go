package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
)

// hashicorp/raft-wal: Raft's log store as a plain log in this process, for
// the raw single-log rows. It fsyncs every StoreLogs call and has no option
// not to, so its W1 row is durable per batch of rawBatch entries: W1's
// durability is not matched for this row, and W5's is.
var sysRaftWAL = system{
	name: "hashicorp/raft-wal (raw log)",
	key:  "raft-wal",
	raw:  true,
	durability: func(*scenario) string {
		return "fsync per StoreLogs of 1,000 entries (always; cannot be turned off)"
	},
	supports: rawSupports,
	start: func(sc *scenario, dir string) (*instance, error) {
		return &instance{drv: &raftWALDriver{dir: dir, logs: map[string]*raftwal.WAL{}}, close: func() error { return nil }}, nil
	},
}

type raftWALDriver struct {
	dir  string
	logs map[string]*raftwal.WAL
}

func (d *raftWALDriver) log(topic string) (*raftwal.WAL, error) {
	if l, ok := d.logs[topic]; ok {
		return l, nil
	}
	dir := filepath.Join(d.dir, topic)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := raftwal.Open(dir)
	if err != nil {
		return nil, err
	}
	d.logs[topic] = l
	return l, nil
}

func (d *raftWALDriver) close() error {
	for _, l := range d.logs {
		if err := l.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (d *raftWALDriver) produce(_ context.Context, topic string, s produceSpec) (int64, error) {
	l, err := d.log(topic)
	if err != nil {
		return 0, err
	}
	last, err := l.LastIndex()
	if err != nil {
		return 0, err
	}
	val := value(s.size)
	entries := make([]raft.Log, rawBatch)
	ptrs := make([]*raft.Log, rawBatch)
	for i := range entries {
		ptrs[i] = &entries[i]
	}
	var n int64
	for n < s.records && !time.Now().After(s.deadline) {
		k := min(rawBatch, s.records-n)
		for i := range k {
			last++
			entries[i] = raft.Log{Index: last, Term: 1, Type: raft.LogCommand, Data: val}
		}
		if err := l.StoreLogs(ptrs[:k]); err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

func (d *raftWALDriver) consume(_ context.Context, topic string, n int64, _ int) (int64, error) {
	l, err := d.log(topic)
	if err != nil {
		return 0, err
	}
	first, err := l.FirstIndex()
	if err != nil {
		return 0, err
	}
	var got int64
	var e raft.Log
	for i := first; got < n; i++ {
		if err := l.GetLog(i, &e); err != nil {
			return got, err
		}
		got++
	}
	return got, nil
}

func (d *raftWALDriver) latency(context.Context, string, int, time.Duration, int) ([]time.Duration, error) {
	return nil, errUnsupported
}
