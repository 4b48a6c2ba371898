package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS JetStream: nats-server embedded in this process as a library, file
// storage; nats.go runs in a child process over loopback, so this process's
// CPU time is the server's. W6 runs three servers in this process,
// clustered over loopback, and a stream with three replicas.
var sysJetStream = system{
	name:   "NATS JetStream (embedded)",
	key:    "jetstream",
	peer:   true,
	client: "nats",
	durability: func(sc *scenario) string {
		switch {
		case sc.durable:
			return "SyncAlways: fsync per message"
		case sc.replicas > 1:
			return "R3 (3 servers, one process), default file storage sync (every 2 min)"
		}
		return "default file storage sync (every 2 min), no fsync per write"
	},
	supports: func(*scenario) string { return "" },
	start:    startJetStream,
}

func startJetStream(sc *scenario, dir string) (*instance, error) {
	n := sc.replicas
	var routes []*url.URL
	var clusterPorts []int
	if n > 1 {
		for range n {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			clusterPorts = append(clusterPorts, p)
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
		}
	}
	var servers []*server.Server
	stop := func() error {
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
		return nil
	}
	for i := range n {
		opts := &server.Options{
			ServerName:             fmt.Sprintf("bench-%d", i),
			Host:                   "127.0.0.1",
			Port:                   server.RANDOM_PORT,
			JetStream:              true,
			StoreDir:               filepath.Join(dir, fmt.Sprint(i)),
			SyncAlways:             sc.durable,
			NoLog:                  true,
			NoSigs:                 true,
			DisableJetStreamBanner: true,
		}
		if n > 1 {
			opts.Cluster = server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: clusterPorts[i]}
			opts.Routes = routes
		}
		s, err := server.NewServer(opts)
		if err != nil {
			return nil, errors.Join(err, stop())
		}
		servers = append(servers, s)
		s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			return nil, errors.Join(errors.New("nats-server did not start"), stop())
		}
	}
	addr := servers[0].ClientURL()
	if err := createStreams(addr, n, sc.partitions); err != nil {
		return nil, errors.Join(err, stop())
	}
	return &instance{addr: addr, close: stop}, nil
}

// createStreams creates the streams "warm" and "bench", retrying while a
// cluster elects its meta leader.
func createStreams(addr string, replicas, partitions int) error {
	nc, err := nats.Connect(addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range []string{"warm", "bench"} {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = js.CreateStream(ctx, jetstream.StreamConfig{
				Name:     name,
				Subjects: []string{name + ".>"},
				Storage:  jetstream.FileStorage,
				Replicas: replicas,
			})
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("create stream %s: %w", name, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
