package main

import (
	"errors"
	"log/slog"
	"net"

	"github.com/streamkit/commitlog/kafka"
)

// commitlog over the Kafka protocol: the Broker served by kafka.NewServer
// on 127.0.0.1 in this process; the franz-go client runs in a child
// process, so this process's CPU time is the broker's.
var sysCommitlogKafka = system{
	name:       "commitlog (Kafka protocol)",
	key:        "commitlog-kafka",
	ours:       true,
	client:     "kgo",
	durability: commitlogDurability,
	supports:   commitlogSupports,
	start: func(sc *scenario, dir string) (*instance, error) {
		b, err := openCommitlog(sc, dir)
		if err != nil {
			return nil, err
		}
		srv, err := kafka.NewServer(b, kafka.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, errors.Join(err, b.Close())
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Join(err, b.Close())
		}
		go func() { _ = srv.Serve(ln) }()
		return &instance{addr: ln.Addr().String(), close: func() error {
			return errors.Join(srv.Close(), b.Close())
		}}, nil
	},
}
