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
// Not served: KIP-848's ConsumerGroupHeartbeat (68), since clients switch
// to the new group protocol when it is advertised. OffsetForLeaderEpoch
// (23) is served by brokers of a cluster only, where leader epochs change.
// The transactions' keys (AddPartitionsToTxn
// 24, AddOffsetsToTxn 25, EndTxn 26, TxnOffsetCommit 28, ...) are not
// served: InitProducerId refuses transactional ids.
func (s *Server) defaultHandlers() map[int16]handler {
	h := s.singleBrokerHandlers()
	if s.opts.Cluster != nil {
		// Leader epochs change in a cluster: followers and clients
		// (KIP-320) ask where an epoch ended.
		h[23] = serve(0, 4, s.handleOffsetForLeaderEpoch)
	}
	return h
}

func (s *Server) singleBrokerHandlers() map[int16]handler {
	return map[int16]handler{
		0:  serve(3, 9, s.handleProduce).advertiseFrom(0),
		1:  serve(4, 12, s.handleFetch),
		2:  serve(1, 8, s.handleListOffsets),
		3:  serve(0, 12, s.handleMetadata),
		8:  serve(2, 8, s.handleOffsetCommit),
		9:  serve(1, 8, s.handleOffsetFetch),
		10: serve(0, 4, s.handleFindCoordinator),
		11: serve(0, 9, s.handleJoinGroup),
		12: serve(0, 4, s.handleHeartbeat),
		13: serve(0, 4, s.handleLeaveGroup),
		14: serve(0, 5, s.handleSyncGroup),
		15: serve(0, 5, s.handleDescribeGroups),
		16: serve(0, 4, s.handleListGroups),
		18: serve(0, 3, s.handleApiVersions),
		19: serve(0, 7, s.handleCreateTopics),
		20: serve(0, 6, s.handleDeleteTopics),
		22: serve(0, 4, s.handleInitProducerID),
		32: serve(0, 4, s.handleDescribeConfigs),
		33: serve(0, 2, s.handleAlterConfigs),
		37: serve(0, 3, s.handleCreatePartitions),
		42: serve(0, 2, s.handleDeleteGroups),
		44: serve(0, 1, s.handleIncrementalAlterConfigs),
		47: serve(0, 0, s.handleOffsetDelete),
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
