package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// maxFetchBytes caps a Fetch response's records, as Kafka's broker setting
// fetch.max.bytes does (55 MiB), whatever the client asks for.
const maxFetchBytes = 55 << 20

// isolationReadCommitted is the read_committed isolation level of Fetch
// and ListOffsets requests.
const isolationReadCommitted = 1

// fetchPart is one partition of a Fetch request: what was asked, where its
// answer goes, and the slice of the log the answer holds.
type fetchPart struct {
	topic     string
	req       *kmsg.FetchRequestTopicPartition
	out       *kmsg.FetchResponseTopicPartition
	partition *commitlog.Partition // nil when it could not be resolved
	slice     commitlog.Slice
}

// handleFetch answers a Fetch with the record batches of each partition
// from the one holding the fetch offset on, exactly as stored.
//
// Limits (KIP-74): a partition's records stop at its PartitionMaxBytes and
// the response's at MaxBytes (at most 55 MiB), except that the first
// partition with records returns at least one whole batch however large;
// after it, a partition whose next batch does not fit returns none.
//
// Long poll: when fewer than MinBytes are available, no partition failed
// and MaxWaitMillis allows, it waits for appends to the partitions (woken by
// Partition.NotifyData, never polling) until MinBytes are there, the wait is
// over or the server shuts down, then answers with what there is.
//
// Fetch sessions (KIP-227) are not kept: the response's SessionID is 0,
// which makes clients send full fetches; a request naming a session gets
// FETCH_SESSION_ID_NOT_FOUND.
//
// Every partition is read (planned) before anything is written: the
// partitions' RecordBatches alias the log's mapping, and the response, a
// *fetchResponse, carries the Slices they come from. The connection frames
// it itself and sends the records from the segment files (writeFetch,
// fetchframe.go), or with Config.DisableZeroCopy has kmsg copy them into
// the response buffer. The slices are released once the response is
// written.
func (s *Server) handleFetch(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.FetchRequest)
	resp := &fetchResponse{FetchResponse: req.ResponseKind().(*kmsg.FetchResponse)}
	resp.SessionID = 0
	if req.Version >= 7 {
		switch {
		case req.SessionID != 0:
			resp.ErrorCode = errFetchSessionIDNotFound
			return resp, nil
		case req.SessionEpoch != 0 && req.SessionEpoch != -1:
			resp.ErrorCode = errInvalidFetchSessionEpoch
			return resp, nil
		}
	}

	var parts []*fetchPart
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		tr := &resp.Topics[i]
		*tr = kmsg.NewFetchResponseTopic()
		tr.Topic = rt.Topic
		tr.TopicID = rt.TopicID
		tr.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			out := &tr.Partitions[j]
			*out = kmsg.NewFetchResponseTopicPartition()
			out.Partition = rt.Partitions[j].Partition
			if req.IsolationLevel == isolationReadCommitted {
				// Nothing is ever aborted; read_uncommitted gets null,
				// as from Kafka.
				out.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			}
			parts = append(parts, &fetchPart{topic: rt.Topic, req: &rt.Partitions[j], out: out})
		}
	}
	resp.parts = parts
	r.release = append(r.release, func() {
		for _, fp := range parts {
			fp.slice.Release()
		}
	})

	maxBytes := maxFetchBytes
	if req.MaxBytes >= 0 {
		maxBytes = min(maxBytes, int(req.MaxBytes))
	}
	n, failed := s.readFetch(parts, req.ReplicaID, maxBytes)
	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if failed || n >= int(req.MinBytes) || wait <= 0 || len(parts) == 0 {
		return resp, nil
	}

	ch := make(chan struct{}, 1)
	for _, fp := range parts {
		if fp.partition != nil {
			stop := fp.partition.NotifyData(ch)
			defer stop()
		}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// Read again first: appends between the last read and the
		// registration above sent no notification.
		n, failed = s.readFetch(parts, req.ReplicaID, maxBytes)
		if failed || n >= int(req.MinBytes) {
			return resp, nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return resp, nil
		case <-ctx.Done():
			return resp, nil
		}
	}
}

// readFetch reads every partition of a Fetch, releasing what an earlier
// pass read, and fills in the responses. It returns the bytes of records
// read and whether a partition failed (which answers the request at once).
func (s *Server) readFetch(parts []*fetchPart, replica int32, maxBytes int) (n int, failed bool) {
	for _, fp := range parts {
		fp.slice.Release()
		out := fp.out
		out.RecordBatches = noRecords
		out.ErrorCode = errNone
		out.HighWatermark, out.LastStableOffset, out.LogStartOffset = -1, -1, -1

		p, code := s.resolveLeader(fp.topic, fp.req.Partition, fp.req.CurrentLeaderEpoch)
		fp.partition = p
		if code != errNone {
			out.ErrorCode = code
			failed = true
			continue
		}
		// Only the first partition with records may exceed the limits,
		// by its first batch (Read returns at least one).
		limit := max(0, min(int(fp.req.PartitionMaxBytes), maxBytes-n))
		var sl commitlog.Slice
		var hw, logStart int64
		var err error
		if replica >= 0 {
			// A follower: its fetch offset is its log end, which moves
			// the high watermark; it reads past the high watermark.
			hw, logStart, err = p.FollowerFetch(replica, fp.req.FetchOffset, fp.req.CurrentLeaderEpoch)
			if err == nil {
				sl, err = p.ReadForFollower(fp.req.FetchOffset, limit)
			}
		} else {
			sl, err = p.Read(fp.req.FetchOffset, limit)
			// The high watermark is read after the records, so that it
			// is never below the end of what is returned.
			hw, logStart = p.EndOffset(), p.StartOffset()
		}
		if err == nil && n > 0 && len(sl.Bytes) > limit {
			sl.Release()
			sl = commitlog.Slice{}
		}
		out.HighWatermark = hw
		out.LastStableOffset = hw // no transactions: nothing is unstable
		out.LogStartOffset = logStart
		if err != nil {
			out.ErrorCode = errorCode(err)
			failed = true
			continue
		}
		fp.slice = sl
		if len(sl.Bytes) > 0 {
			out.RecordBatches = sl.Bytes
		}
		n += len(sl.Bytes)
	}
	return n, failed
}

// noRecords is what a partition without records answers: empty, not null,
// as Kafka sends it.
var noRecords = []byte{}

// resolve finds a partition, or the error code saying why not.
func (s *Server) resolve(topic string, partition int32) (*commitlog.Partition, int16) {
	t, err := s.b.Topic(topic)
	if err != nil {
		return nil, errorCode(err)
	}
	p, err := t.Partition(partition)
	if err != nil {
		return nil, errorCode(err)
	}
	return p, errNone
}
