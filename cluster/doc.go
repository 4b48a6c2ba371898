// Package cluster is the controller side of replication: the metadata
// authority that decides, for every partition, which brokers hold it
// (replicas), which of them are in sync (ISR) and which one leads, and
// that fences stale decisions with epochs. It plays the part of Kafka's
// KRaft controller.
//
// # Model
//
// Brokers register (RegisterBroker) and get an incarnation number, then
// keep their session alive with Heartbeat. A broker that stops
// heartbeating for SessionTimeout is fenced by Tick; a broker that stops
// cleanly says so with UnregisterBroker. Either way its leaderships move
// to other live ISR members, in replica order, and it leaves the ISRs,
// except that the last member of an ISR stays in it (the partition then
// has no leader, NoLeader, until that broker returns). A broker that
// restarts after an unclean stop may have lost bytes it had acknowledged,
// so registering with cleanShutdown false also removes it from the ISRs
// where it was the last member (KIP-966's rule): only a leader's AlterISR
// puts it back, after it caught up. Unclean leader election, off by
// default, trades that unavailability for data loss.
//
// Leaders report their followers' progress to the controller only as ISR
// changes, through the ISRUpdater interface (AlterISR): the replication
// package depends on that interface and on the types in types.go, never
// on a concrete controller.
//
// Every partition state carries two epochs: LeaderEpoch is bumped on each
// change of leader, PartitionEpoch on each change at all. Brokers stamp
// record batches with the leader epoch and present both epochs to the
// controller, which refuses proposals made on a state that moved on
// (ErrStaleState). PartitionState.Validate lists the invariants of one
// state.
//
// Brokers learn about changes through Watch: an ordered, never dropped
// stream of events that starts with a snapshot of every topic.
//
// # Implementations
//
// Local keeps the metadata in memory, for a cluster whose brokers live in
// one process (tests, embedded use). A quorum of controllers on
// hashicorp/raft, for brokers on several machines, will offer the same
// methods.
//
// # Time
//
// Local reads no clock by itself: Tick(now) fences expired sessions, so a
// test drives failover deterministically with a fake clock
// (LocalConfig.Now) and explicit Ticks; Run is a thin loop that calls Tick
// on a ticker for real use.
package cluster
