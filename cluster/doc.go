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
// puts it back, after it caught up.
//
// # Eligible leader replicas
//
// Each topic has a min.insync.replicas (TopicSpec.MinInsyncReplicas,
// copied into every PartitionState as MinISR; CreateTopic uses 1). The
// replication layer never advances the high watermark while the ISR is
// smaller, so every replica that was in the ISR when it fell below the
// minimum holds every acknowledged record. The controller keeps those
// replicas as the partition's eligible leader replicas (ELR, Kafka's
// KIP-966), so that an unclean restart of the last ISR member does not
// leave the partition offline while another replica has all the data:
//
//   - a broker leaving an ISR (a leader's AlterISR shrink, fencing,
//     UnregisterBroker, a re-registration after a clean stop) joins the
//     ELR when the ISR is, or becomes, smaller than MinISR;
//   - a broker registering after an unclean stop leaves every ISR and
//     every ELR;
//   - a fenced or shut down ELR member stays one, and so does one that
//     registers again after a clean stop;
//   - a broker added to the ISR leaves the ELR; the ELR is cleared when the
//     ISR has MinISR members again;
//   - a partition with no live ISR member elects its first live ELR member
//     (replica order) with an ISR of just itself; it leaves the ELR, the
//     others stay, and the ISR members it replaces (none live, all stopped
//     cleanly) join the ELR.
//
// Only when no ISR or ELR member is live does a partition stay without a
// leader. With MinISR 1 the ELR is always empty: the last ISR member is
// kept after a clean stop or a fencing, and an ISR emptied by an unclean
// restart leaves nobody eligible. Unclean leader election, off by
// default, trades the remaining unavailability for data loss: it elects
// any live replica and clears the ELR.
//
// Leaders report their followers' progress to the controller only as ISR
// changes, through the ISRUpdater interface (AlterISR): the replication
// package depends on that interface and on the types in types.go, never
// on a concrete controller.
//
// Every partition state carries two epochs: LeaderEpoch is bumped on each
// change of leader, PartitionEpoch on each change at all (leader, ISR or
// ELR). Brokers stamp
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
