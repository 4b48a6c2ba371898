package main

import (
	"strings"
)

// commitlog over the Kafka protocol: the Broker served by kafka.NewServer
// on 127.0.0.1 in this process; the franz-go client runs in a child
// process, so this process's CPU time is the broker's. W6 runs three
// brokers in this process, each with its own listener, following one
// in-process controller and replicating through those listeners
// (kafka.Transport: Fetch with a replica id over loopback TCP); the
// client's seeds are all three, and this process's CPU time is the three
// brokers'.
var sysCommitlogKafka = system{
	name:       "commitlog (Kafka protocol)",
	key:        "commitlog-kafka",
	ours:       true,
	client:     "kgo",
	durability: commitlogDurability("replicating over loopback TCP"),
	supports:   func(*scenario) string { return "" },
	start: func(sc *scenario, dir string) (*instance, error) {
		c, err := openCommitlog(sc, dir, true)
		if err != nil {
			return nil, err
		}
		return &instance{addr: strings.Join(c.addrs, ","), close: c.close}, nil
	},
}
