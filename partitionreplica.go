package commitlog

import "time"

// A partition's replication, as the Kafka server serves it to the brokers
// that follow this one (Fetch with a replica id, OffsetForLeaderEpoch). On
// a single broker the partition is its own leader at epoch 0 and has no
// followers.

// LeaderEpoch returns the partition's current leader epoch: 0 on a single
// broker.
func (p *Partition) LeaderEpoch() int32 {
	if p.repl == nil {
		return 0
	}
	return p.repl.State().LeaderEpoch
}

// FollowerFetch records that follower replica fetches from offset at the
// leader epoch it knows, and returns the high watermark and log start
// offset to answer with; then ReadForFollower reads the records. It fails
// with ErrNotLeader on a broker that does not lead the partition, and with
// replication's fenced or unknown leader epoch errors when the follower's
// epoch is older or newer than the leader's.
func (p *Partition) FollowerFetch(replica int32, offset int64, currentLeaderEpoch int32) (hw, logStart int64, err error) {
	if p.repl == nil {
		if p.log == nil {
			return 0, 0, p.notHeld()
		}
		return 0, 0, ErrNotLeader // a single broker has no followers
	}
	return p.repl.FollowerFetch(time.Now(), replica, offset, currentLeaderEpoch)
}

// ReadForFollower reads batches from offset up to the log end (followers
// read past the high watermark, which their fetches advance); see Read.
func (p *Partition) ReadForFollower(offset int64, maxBytes int) (Slice, error) {
	if p.log == nil {
		return Slice{}, p.notHeld()
	}
	return p.log.Read(offset, maxBytes)
}

// EndOffsetForEpoch answers a follower's OffsetForLeaderEpoch: the largest
// epoch the leader knows at or below epoch, and the offset where it ended
// (KIP-101, KIP-279); -1, -1 for an epoch older than the leader's oldest.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64, error) {
	if p.repl == nil {
		if p.log == nil {
			return 0, 0, p.notHeld()
		}
		// A single broker's only epoch is 0 and never ended.
		if epoch < 0 {
			return -1, -1, nil
		}
		return 0, p.log.EndOffset(), nil
	}
	return p.repl.EndOffsetForEpoch(epoch)
}
