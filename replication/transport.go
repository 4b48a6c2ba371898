package replication

import (
	"context"
	"slices"
	"time"

	"github.com/streamkit/commitlog/cluster"
)

// The wire between brokers: what a follower asks its leader for. A
// Transport carries requests to a peer's Handler; Node is a Handler, so a
// transport's server side only decodes requests and calls it. MemNetwork is
// the in-memory transport; the kafka package carries the same requests as
// Kafka Fetch (with a replica id) and OffsetForLeaderEpoch.
//
// Errors: a Transport method fails as a whole (the peer is unreachable);
// per-partition errors travel in the answers as the package's sentinel
// errors (a wire transport maps them to Kafka error codes and back).

// Transport sends requests to peer brokers. Implementations must be safe
// for concurrent use.
type Transport interface {
	// Fetch sends a follower fetch to broker to.
	Fetch(ctx context.Context, to int32, req *FetchRequest) (*FetchResponse, error)
	// OffsetForLeaderEpoch asks broker to where epochs ended in its log.
	OffsetForLeaderEpoch(ctx context.Context, to int32, req *EpochRequest) (*EpochResponse, error)
}

// Handler is what a broker serves its peers; Node implements it.
type Handler interface {
	// HandleFetch serves a follower fetch, long-polling up to req.MaxWait
	// when no partition has records to return.
	HandleFetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error)
	// HandleOffsetForLeaderEpoch answers where epochs ended.
	HandleOffsetForLeaderEpoch(ctx context.Context, req *EpochRequest) (*EpochResponse, error)
}

// FetchRequest is a follower fetch (Kafka Fetch with a replica id).
type FetchRequest struct {
	ReplicaID  int32         // the fetching broker
	MaxWait    time.Duration // long-poll: how long to wait for records
	MaxBytes   int           // bound on the records of all partitions together (at least one batch is sent)
	Partitions []FetchPartition
}

// FetchPartition is one partition of a FetchRequest.
type FetchPartition struct {
	Partition          cluster.TopicPartition
	CurrentLeaderEpoch int32 // the leader epoch the follower knows, for fencing
	FetchOffset        int64 // the follower's LEO
	MaxBytes           int   // bound on this partition's records (at least one batch is sent)
}

// FetchResponse answers a FetchRequest, one entry per partition asked.
type FetchResponse struct {
	Partitions []FetchedPartition
}

// FetchedPartition is one partition of a FetchResponse.
type FetchedPartition struct {
	Partition      cluster.TopicPartition
	Err            error // a sentinel of this package, wrapped; nil on success
	HighWatermark  int64
	LogStartOffset int64
	Records        []byte // whole record batches from FetchOffset's, possibly none
}

// EpochRequest asks where leader epochs ended (Kafka
// OffsetForLeaderEpoch from a replica).
type EpochRequest struct {
	ReplicaID  int32
	Partitions []EpochQuery
}

// EpochQuery is one partition of an EpochRequest.
type EpochQuery struct {
	Partition          cluster.TopicPartition
	CurrentLeaderEpoch int32 // for fencing, as in FetchPartition
	LeaderEpoch        int32 // the epoch asked about
}

// EpochResponse answers an EpochRequest, one entry per partition asked.
type EpochResponse struct {
	Partitions []EpochAnswer
}

// EpochAnswer is one partition of an EpochResponse: the largest epoch <=
// the one asked and the offset where it ended (see EpochCache.EndOffsetFor).
type EpochAnswer struct {
	Partition   cluster.TopicPartition
	Err         error
	LeaderEpoch int32
	EndOffset   int64
}

// Clone returns a deep copy of req.
func (req *FetchRequest) Clone() *FetchRequest {
	if req == nil {
		return nil
	}
	c := *req
	c.Partitions = slices.Clone(req.Partitions)
	return &c
}

// Clone returns a deep copy of resp, records included.
func (resp *FetchResponse) Clone() *FetchResponse {
	if resp == nil {
		return nil
	}
	c := &FetchResponse{Partitions: slices.Clone(resp.Partitions)}
	for i := range c.Partitions {
		c.Partitions[i].Records = slices.Clone(c.Partitions[i].Records)
	}
	return c
}

// Clone returns a deep copy of req.
func (req *EpochRequest) Clone() *EpochRequest {
	if req == nil {
		return nil
	}
	c := *req
	c.Partitions = slices.Clone(req.Partitions)
	return &c
}

// Clone returns a deep copy of resp.
func (resp *EpochResponse) Clone() *EpochResponse {
	if resp == nil {
		return nil
	}
	return &EpochResponse{Partitions: slices.Clone(resp.Partitions)}
}
