// Command cluster runs three brokers inside the process that replicate a
// topic (three replicas, two of them needed in sync), writes through the
// leader with acks=all, stops the leader, and goes on writing through the
// broker the controller elected in its place.
//
//	go run ./examples/cluster
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/replication"
)

func main() {
	dir, err := os.MkdirTemp("", "commitlog-cluster-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := run(context.Background(), dir, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir string, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	// The controller decides leaders and in-sync replicas; the brokers
	// replicate over an in-memory network (kafka.Transport would carry
	// the same over TCP).
	ctrl := cluster.NewLocal(cluster.LocalConfig{})
	go ctrl.Run(ctx)
	defer func() { err = errors.Join(err, ctrl.Close()) }()
	network := replication.NewMemNetwork(1)

	brokers := map[int32]*commitlog.Broker{}
	defer func() {
		for _, b := range brokers {
			err = errors.Join(err, b.Close())
		}
	}()
	for id := int32(1); id <= 3; id++ {
		b, err := commitlog.Open(filepath.Join(dir, fmt.Sprint(id)), commitlog.Options{
			Cluster: &commitlog.ClusterConfig{BrokerID: id, Controller: ctrl, Transport: network.Transport(id)},
		})
		if err != nil {
			return err
		}
		network.Register(id, b.ReplicaHandler())
		brokers[id] = b
	}
	if _, err := brokers[1].CreateTopic(ctx, "orders", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2}); err != nil {
		return err
	}

	write := func(value string) error {
		for {
			st, _ := ctrl.Partition(cluster.TopicPartition{Topic: "orders", Partition: 0})
			if b := brokers[st.Leader]; b != nil {
				t, err := b.Topic("orders")
				if err != nil {
					return err
				}
				p, err := t.Partition(0)
				if err != nil {
					return err
				}
				// acks=all: returns once every in-sync replica has it.
				off, err := p.Append(commitlog.Record{Value: []byte(value)})
				if err == nil {
					fmt.Fprintf(out, "%s at offset %d, leader broker %d\n", value, off, st.Leader)
					return nil
				}
				if !errors.Is(err, commitlog.ErrNotLeader) && !errors.Is(err, commitlog.ErrNotEnoughReplicas) {
					return err
				}
			}
			select { // the new leader is not known everywhere yet
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if err := write("first"); err != nil {
		return err
	}
	st, _ := ctrl.Partition(cluster.TopicPartition{Topic: "orders", Partition: 0})
	network.Unregister(st.Leader)
	if err := brokers[st.Leader].Close(); err != nil { // leaves the cluster cleanly
		return err
	}
	delete(brokers, st.Leader)
	fmt.Fprintf(out, "stopped broker %d\n", st.Leader)
	return write("second")
}
