package cluster_test

import (
	"context"
	"fmt"
	"time"

	"github.com/streamkit/commitlog/cluster"
)

// A three-broker cluster in one process: the leader of a partition stops
// heartbeating and the controller moves the leadership to an in-sync
// follower, bumping the epochs.
func ExampleLocal() {
	ctx := context.Background()
	now := time.Unix(0, 0)
	c := cluster.NewLocal(cluster.LocalConfig{Now: func() time.Time { return now }})
	defer c.Close()

	incarnations := map[int32]int64{}
	for id := range int32(3) {
		inc, _ := c.RegisterBroker(ctx, cluster.BrokerInfo{ID: id, Host: "localhost", Port: 9092 + id}, true)
		incarnations[id] = inc
	}
	parts, _ := c.CreateTopic(ctx, "orders", 1, 3)
	fmt.Printf("replicas %v leader %d\n", parts[0].Replicas, parts[0].Leader)

	// Two seconds pass; only the followers heartbeat.
	now = now.Add(2 * time.Second)
	for _, id := range parts[0].Replicas[1:] {
		_ = c.Heartbeat(ctx, id, incarnations[id])
	}
	c.Tick(now)

	st, _ := c.Partition(cluster.TopicPartition{Topic: "orders", Partition: 0})
	fmt.Printf("leader %d isr %v leader epoch %d partition epoch %d\n", st.Leader, st.ISR, st.LeaderEpoch, st.PartitionEpoch)
	// Output:
	// replicas [0 1 2] leader 0
	// leader 1 isr [1 2] leader epoch 1 partition epoch 1
}
