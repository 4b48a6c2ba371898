package kafka

import (
	"context"
	"regexp"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// defaultHandlers is the table of the API keys served, with the versions of
// each; ApiVersions advertises exactly this table. To serve a new key, add
// its entry here; advertise a key only once it is implemented in full,
// since clients switch behaviour on what ApiVersions says.
//
// Still to come: InitProducerId (22, versions 0-4, for idempotent
// producers) and the group coordinator's keys: OffsetCommit (8, 2-8),
// OffsetFetch (9, 1-8), FindCoordinator (10, 0-4), JoinGroup (11, 0-7),
// Heartbeat (12, 0-4), LeaveGroup (13, 0-4), SyncGroup (14, 0-5),
// DescribeGroups (15), ListGroups (16), DeleteGroups (42).
// OffsetForLeaderEpoch (23) waits for leader epochs that change.
func (s *Server) defaultHandlers() map[int16]handler {
	return map[int16]handler{
		0:  serve(3, 9, s.handleProduce).advertiseFrom(0),
		1:  serve(4, 12, s.handleFetch),
		2:  serve(1, 6, s.handleListOffsets),
		3:  serve(0, 12, s.handleMetadata),
		18: serve(0, 3, s.handleApiVersions),
		19: serve(0, 7, s.handleCreateTopics),
		20: serve(0, 6, s.handleDeleteTopics),
		32: serve(0, 4, s.handleDescribeConfigs),
		37: serve(0, 3, s.handleCreatePartitions),
		60: serve(0, 2, s.handleDescribeCluster),
	}
}

// serve is the handler of versions [lo, hi] of a key, all advertised.
func serve(lo, hi int16, fn func(context.Context, *request) (kmsg.Response, error)) handler {
	return handler{min: lo, max: hi, advertisedMin: lo, handle: fn}
}

// advertiseFrom makes ApiVersions advertise the key from version v, below
// the versions served.
func (h handler) advertiseFrom(v int16) handler {
	h.advertisedMin = v
	return h
}

// apiKeys is the ApiVersions table: every key served with its advertised
// range, in key order.
func (s *Server) apiKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(s.handlers))
	for key, h := range s.handlers {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey = key
		k.MinVersion = h.advertisedMin
		k.MaxVersion = h.max
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b kmsg.ApiVersionsResponseApiKey) int { return int(a.ApiKey) - int(b.ApiKey) })
	return keys
}

// clientSoftware is what ApiVersions v3+ accepts as a client's software
// name and version (Kafka's ApiVersionsRequest.isValid).
var clientSoftware = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$`)

func (s *Server) handleApiVersions(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if req.Version >= 3 && (!clientSoftware.MatchString(req.ClientSoftwareName) || !clientSoftware.MatchString(req.ClientSoftwareVersion)) {
		resp.ErrorCode = errInvalidRequest
		return resp, nil
	}
	resp.ApiKeys = s.apiKeys()
	return resp, nil
}

// apiVersionsUnsupported answers an ApiVersions request of a version above
// ours as Kafka does (KIP-511): in version 0, with UNSUPPORTED_VERSION and
// the ApiVersions range alone, so the client retries within it.
func (s *Server) apiVersionsUnsupported() kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = errUnsupportedVersion
	h := s.handlers[apiVersionsKey]
	k := kmsg.NewApiVersionsResponseApiKey()
	k.ApiKey = apiVersionsKey
	k.MinVersion = h.min
	k.MaxVersion = h.max
	resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{k}
	return resp
}
