package main

import (
	"github.com/twmb/franz-go/pkg/kfake"
)

// franz-go's kfake with its on-disk persistence (DataDir), in this process;
// the franz-go client runs in a child process, as for commitlog's Kafka
// protocol row.
var sysKfake = system{
	name:   "kfake (DataDir)",
	key:    "kfake",
	peer:   true,
	client: "kgo",
	durability: func(sc *scenario) string {
		if sc.durable {
			return "SyncWrites: fsync per produced batch"
		}
		return "DataDir without SyncWrites: page cache, no fsync"
	},
	supports: func(sc *scenario) string {
		if sc.replicas > 1 {
			return "not applicable: kfake does not replicate data between its brokers"
		}
		return ""
	},
	start: func(sc *scenario, dir string) (*instance, error) {
		opts := []kfake.Opt{
			kfake.NumBrokers(1),
			kfake.DataDir(dir),
			kfake.SeedTopics(int32(sc.partitions), "warm", "bench"),
		}
		if sc.durable {
			opts = append(opts, kfake.SyncWrites())
		}
		c, err := kfake.NewCluster(opts...)
		if err != nil {
			return nil, err
		}
		return &instance{addr: c.ListenAddrs()[0], close: func() error { c.Close(); return nil }}, nil
	},
}
