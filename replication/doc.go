// Package replication replicates partitions between brokers with Kafka's
// in-sync-replica (ISR) protocol: one leader per partition, followers that
// fetch from it, a high watermark (HW) that marks what every in-sync
// replica holds, and leader epochs that let a follower find where its log
// diverges from the leader's (KIP-101, KIP-279).
//
// It does not import the root package: the root's partitions satisfy Log,
// and the controller (package cluster) is reached through
// cluster.ISRUpdater.
//
// # Pieces
//
//   - EpochCache (epochcache.go): leader epoch -> start offset, checkpointed
//     in the partition directory as "leader-epoch-checkpoint" in Kafka's
//     text format; answers OffsetForLeaderEpoch.
//   - Replica (replica.go, leader.go, follower.go): the state machine of one
//     partition on one broker. It is deterministic: no goroutines, sockets or
//     timers; time comes in as arguments. As leader it tracks each
//     follower's log end offset and last caught-up time, computes the HW
//     over the maximal ISR (committed ISR plus proposed additions), freezes
//     it while the ISR is below MinInsyncReplicas, and proposes ISR shrinks
//     (a follower lagging more than ReplicaLagTime) and expansions (a
//     follower that reached the HW and the start of the leader's epoch).
//     As follower it truncates by the leader's epoch answer before fetching
//     and appends what it fetches as the leader wrote it.
//   - Transport and Handler (transport.go): the two requests brokers send
//     each other, Fetch and OffsetForLeaderEpoch, with per-partition errors
//     carried as this package's sentinels.
//   - MemNetwork (memnet.go): an in-memory Transport with seeded fault
//     injection (drops, duplicates, delays, partitions, paused brokers) for
//     tests.
//   - Node (node.go, fetcher.go): the thin driver of one broker's Replicas:
//     it serves its peers (long-polling fetches), runs one fetcher goroutine
//     per leader broker, and a ticker that sends ISR proposals to the
//     controller. Close joins every goroutine.
//
// # How the root package drives it
//
// For each local partition: OpenEpochCache(dir/EpochCheckpointFile),
// NewReplica, Node.Add, then Node.Apply with every state the controller
// publishes. Produce as leader: Replica.CheckProduce(acksAll), append
// (stamped with the epoch given to Log.SetLeaderEpoch), Replica.Appended,
// and for acks=all Replica.WaitHighWatermark(ctx, end). Consumers read up
// to Replica.HighWatermark (OnHighWatermark wakes them). Retention calls
// EpochCache.TruncateBefore with the new log start.
//
// # Safety
//
// The HW never decreases on a leader, never passes a log end offset of the
// maximal ISR, and never advances while the committed ISR is below
// MinInsyncReplicas. ISR changes take effect only once the controller
// accepted them (removals count for the HW until then, additions count
// from the moment they are proposed). Requests carry the leader epoch the
// sender knows and are fenced (ErrFencedLeaderEpoch, ErrUnknownLeaderEpoch).
// A follower truncates where the leader's epoch answer says, never to its
// HW when it has epoch information.
package replication
