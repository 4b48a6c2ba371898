package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// Consumer groups: the handlers of the classic group protocol relay each
// request to the broker's GroupCoordinator (commitlog.Broker.Groups), which
// holds the state machine; they translate versions, nullable fields and
// errors as Kafka's KafkaApis does.
//
// This broker coordinates every group: FindCoordinator names it for any
// group id. Transactions are not supported, so FindCoordinator refuses
// transactional ids as InitProducerId does.
//
// JoinGroup and SyncGroup wait for the rest of the group (a rebalance ends
// when every member has joined, or at the rebalance timeout). The
// connection's goroutine waits with them, so later requests on that
// connection are answered after the JoinGroup, in order, as Kafka answers
// them; franz-go and the Java client talk to the coordinator on a
// connection of their own for that reason. Shutdown ends the wait: the
// member is answered NOT_COORDINATOR, which Kafka answers the members of a
// group it stops coordinating, and the client looks for the coordinator
// again (Close ends it too, closing the connection unanswered). Requests
// that do not wait (Heartbeat, LeaveGroup, commits, fetches, deletions) run
// to the end when Shutdown begins: a commit being written is answered with
// its outcome.

// Coordinator key types of FindCoordinator.
const (
	coordinatorGroup       int8 = 0
	coordinatorTransaction int8 = 1
)

// groupAuthorizedOperations is what DescribeGroups reports a client may do
// with a group when it asks (IncludeAuthorizedOperations, KIP-430): every
// operation on groups (READ, DELETE, DESCRIBE), as Kafka reports without
// an authorizer.
const groupAuthorizedOperations = 1<<kmsg.ACLOperationRead | 1<<kmsg.ACLOperationDelete | 1<<kmsg.ACLOperationDescribe

// handleFindCoordinator answers that this broker coordinates every group
// (version 4 and later look up several keys in one request). Transactional
// ids get TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients treat as
// fatal, rather than a retriable coordinator error they would retry
// forever; unknown key types get INVALID_REQUEST, as in Kafka.
func (s *Server) handleFindCoordinator(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	var code int16
	var msg *string
	switch req.CoordinatorType {
	case coordinatorGroup:
	case coordinatorTransaction:
		code = errTransactionalIDAuthz
		msg = errorMessage(errors.New("transactions are not supported"))
	default:
		code = errInvalidRequest
		msg = errorMessage(fmt.Errorf("unknown coordinator key type %d", req.CoordinatorType))
	}
	nodeID, host, port := s.cfg.NodeID, r.c.adv.host, r.c.adv.port
	if ctrl := s.controller(); ctrl != nil && code == errNone {
		// Groups are not replicated yet: every broker of a cluster
		// sends them all to one, the live broker with the lowest id, so
		// that a group's members meet there. Its groups and committed
		// offsets are lost when it goes.
		if live := ctrl.Brokers(); len(live) > 0 {
			nodeID, host, port = live[0].ID, live[0].Host, live[0].Port
		} else {
			code = errCoordinatorNotAvailable
		}
	}
	if code != errNone {
		nodeID, host, port = -1, "", -1 // Kafka's Node.noNode
	}
	if req.Version < 4 {
		resp.ErrorCode, resp.ErrorMessage = code, msg
		resp.NodeID, resp.Host, resp.Port = nodeID, host, port
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		c.ErrorCode, c.ErrorMessage = code, msg
		c.NodeID, c.Host, c.Port = nodeID, host, port
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp, nil
}

// handleJoinGroup adds a member to a group, or renews its membership, and
// waits for the rebalance to complete. MEMBER_ID_REQUIRED (KIP-394) is
// answered only from version 4, which clients of older versions (kafka-go
// sends 1 and 2) do not understand; SkipAssignment (KIP-814) only from
// version 9.
func (s *Server) handleJoinGroup(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.JoinGroupRequest)
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	jr := commitlog.JoinRequest{
		Group:                  req.Group,
		MemberID:               req.MemberID,
		InstanceID:             strOrEmpty(req.InstanceID),
		ClientID:               clientName(r),
		ClientHost:             clientHost(r),
		ProtocolType:           req.ProtocolType,
		Protocols:              make([]commitlog.GroupProtocol, len(req.Protocols)),
		SessionTimeout:         durationMs(req.SessionTimeoutMillis),
		RequireKnownMemberID:   req.Version >= 4, // for dynamic members only
		SupportsSkipAssignment: req.Version >= 9,
	}
	if req.Version >= 1 {
		jr.RebalanceTimeout = durationMs(req.RebalanceTimeoutMillis)
	} // else the session timeout, as in Kafka
	for i, p := range req.Protocols {
		jr.Protocols[i] = commitlog.GroupProtocol{Name: p.Name, Metadata: p.Metadata}
	}
	res, err := s.b.Groups().Join(ctx, jr)
	// A failed join answers the member id the request had, except
	// MEMBER_ID_REQUIRED, which carries the id to join with.
	resp.MemberID = cmp.Or(res.MemberID, req.MemberID)
	if err != nil {
		resp.ErrorCode = groupErrorCode(err)
		resp.Generation = -1
		return resp, nil
	}
	resp.Generation = res.Generation
	resp.ProtocolType = &res.ProtocolType
	resp.Protocol = &res.Protocol
	resp.LeaderID = res.LeaderID
	resp.SkipAssignment = res.SkipAssignment
	for _, m := range res.Members {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.MemberID
		jm.InstanceID = nullIfEmpty(m.InstanceID)
		jm.ProtocolMetadata = m.Metadata
		resp.Members = append(resp.Members, jm)
	}
	return resp, nil
}

// handleSyncGroup relays the leader's assignment, or waits for it and
// returns the member's. From version 5 the request must name the group's
// protocol type and protocol (INCONSISTENT_GROUP_PROTOCOL otherwise, as in
// Kafka), and the response repeats them.
func (s *Server) handleSyncGroup(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.SyncGroupRequest)
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	resp.MemberAssignment = []byte{}
	if req.Version >= 5 && (req.ProtocolType == nil || req.Protocol == nil) {
		resp.ErrorCode = errInconsistentGroupProtocol
		return resp, nil
	}
	sr := commitlog.SyncRequest{
		Group:        req.Group,
		Generation:   req.Generation,
		MemberID:     req.MemberID,
		InstanceID:   strOrEmpty(req.InstanceID),
		ProtocolType: strOrEmpty(req.ProtocolType),
		Protocol:     strOrEmpty(req.Protocol),
	}
	if len(req.GroupAssignment) > 0 {
		sr.Assignments = make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			sr.Assignments[a.MemberID] = a.MemberAssignment
		}
	}
	assignment, err := s.b.Groups().Sync(ctx, sr)
	if err != nil {
		resp.ErrorCode = groupErrorCode(err)
		return resp, nil
	}
	resp.MemberAssignment = assignment
	// Checked against the group's by Sync.
	resp.ProtocolType, resp.Protocol = req.ProtocolType, req.Protocol
	return resp, nil
}

// handleHeartbeat keeps a member's session alive; REBALANCE_IN_PROGRESS
// tells it to join again.
func (s *Server) handleHeartbeat(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	err := s.b.Groups().Heartbeat(context.WithoutCancel(ctx), commitlog.HeartbeatRequest{
		Group:      req.Group,
		Generation: req.Generation,
		MemberID:   req.MemberID,
		InstanceID: strOrEmpty(req.InstanceID),
	})
	resp.ErrorCode = groupErrorCode(err)
	return resp, nil
}

// handleLeaveGroup removes members from a group. Versions 0-2 name one
// member and answer its outcome as the response's error; from version 3
// several members, static ones by instance id alone, each with its own
// error, the top-level error being for the request as a whole (Kafka's
// LeaveGroupResponse).
func (s *Server) handleLeaveGroup(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	var members []commitlog.MemberIdentity
	if req.Version < 3 {
		members = []commitlog.MemberIdentity{{MemberID: req.MemberID}}
	} else {
		members = make([]commitlog.MemberIdentity, len(req.Members))
		for i, m := range req.Members {
			members[i] = commitlog.MemberIdentity{MemberID: m.MemberID, InstanceID: strOrEmpty(m.InstanceID)}
		}
	}
	errs, err := s.b.Groups().Leave(context.WithoutCancel(ctx), req.Group, members...)
	if err != nil {
		resp.ErrorCode = groupErrorCode(err)
		return resp, nil
	}
	if req.Version < 3 {
		resp.ErrorCode = groupErrorCode(errs[0])
		return resp, nil
	}
	for i, m := range req.Members {
		out := kmsg.NewLeaveGroupResponseMember()
		out.MemberID = m.MemberID
		out.InstanceID = m.InstanceID
		out.ErrorCode = groupErrorCode(errs[i])
		resp.Members = append(resp.Members, out)
	}
	return resp, nil
}

// handleDescribeGroups describes groups. As in Kafka, a group the
// coordinator does not know is answered with the state Dead and no error,
// and the protocol, the members' metadata and their assignments are
// reported only while the group is Stable (during a rebalance they are not
// settled; Kafka's GroupMetadata.summary).
func (s *Server) handleDescribeGroups(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		out := kmsg.NewDescribeGroupsResponseGroup()
		out.Group = id
		d, err := s.b.Groups().DescribeGroup(id)
		switch {
		case errors.Is(err, commitlog.ErrGroupIDNotFound):
			out.State = commitlog.GroupDead.String()
		case err != nil:
			out.ErrorCode = groupErrorCode(err)
		default:
			out.State = d.State.String()
			out.ProtocolType = d.ProtocolType
			stable := d.State == commitlog.GroupStable
			if stable {
				out.Protocol = d.Protocol
			}
			for _, m := range d.Members {
				om := kmsg.NewDescribeGroupsResponseGroupMember()
				om.MemberID = m.MemberID
				om.InstanceID = nullIfEmpty(m.InstanceID)
				om.ClientID = m.ClientID
				om.ClientHost = m.ClientHost
				om.ProtocolMetadata, om.MemberAssignment = []byte{}, []byte{}
				if stable {
					om.ProtocolMetadata, om.MemberAssignment = m.Metadata, m.Assignment
				}
				out.Members = append(out.Members, om)
			}
		}
		if out.ErrorCode == errNone && req.IncludeAuthorizedOperations {
			out.AuthorizedOperations = groupAuthorizedOperations
		}
		resp.Groups = append(resp.Groups, out)
	}
	return resp, nil
}

// handleListGroups lists the groups; from version 4 only those in the
// states asked for, if any (matched without regard to case; an unknown
// state matches nothing).
func (s *Server) handleListGroups(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	var states []commitlog.GroupState
	if req.Version >= 4 && len(req.StatesFilter) > 0 {
		for st := commitlog.GroupEmpty; st <= commitlog.GroupDead; st++ {
			for _, want := range req.StatesFilter {
				if strings.EqualFold(want, st.String()) {
					states = append(states, st)
					break
				}
			}
		}
		if len(states) == 0 {
			return resp, nil // no group is in a state that does not exist
		}
	}
	for _, g := range s.b.Groups().ListGroups(states...) {
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group = g.Group
		lg.ProtocolType = g.ProtocolType
		lg.GroupState = g.State.String()
		resp.Groups = append(resp.Groups, lg)
	}
	return resp, nil
}

// handleDeleteGroups deletes groups without members, with their committed
// offsets: NON_EMPTY_GROUP for a group with members, GROUP_ID_NOT_FOUND for
// one the coordinator does not know. A group named twice is answered once,
// as in Kafka.
func (s *Server) handleDeleteGroups(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	groups := make([]string, 0, len(req.Groups))
	seen := make(map[string]bool, len(req.Groups))
	for _, id := range req.Groups {
		if !seen[id] {
			seen[id] = true
			groups = append(groups, id)
		}
	}
	errs := s.b.Groups().DeleteGroups(context.WithoutCancel(ctx), groups...)
	for i, id := range groups {
		out := kmsg.NewDeleteGroupsResponseGroup()
		out.Group = id
		out.ErrorCode = groupErrorCode(errs[i])
		if errs[i] == nil {
			s.log.Info("kafka: deleted group", "group", id, "client", clientName(r))
		}
		resp.Groups = append(resp.Groups, out)
	}
	return resp, nil
}

// groupErrorCode maps an error of the group coordinator onto the code
// Kafka's coordinator answers with. Its own errors map as errorCode maps
// them. A failure to write __consumer_offsets maps as Kafka's
// GroupMetadataManager maps one: a storage error or a closed log is
// NOT_COORDINATOR (the client finds the coordinator again and retries), a
// record too large UNKNOWN_SERVER_ERROR, anything else
// COORDINATOR_NOT_AVAILABLE. A wait cut short by Shutdown is
// NOT_COORDINATOR, as Kafka answers the members of a group it unloads.
func groupErrorCode(err error) int16 {
	if err == nil {
		return errNone
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errNotCoordinator
	}
	switch code := errorCode(err); code {
	case errInvalidGroupID, errGroupIDNotFound, errUnknownMemberID, errIllegalGeneration,
		errRebalanceInProgress, errInconsistentGroupProtocol, errInvalidSessionTimeout,
		errNonEmptyGroup, errFencedInstanceID, errMemberIDRequired, errGroupMaxSizeReached,
		errGroupSubscribedToTopic, errOffsetMetadataTooLarge, errCoordinatorNotAvailable:
		return code
	case errNotLeaderOrFollower, errKafkaStorageError:
		return errNotCoordinator
	case errMessageTooLarge:
		return errUnknownServerError
	default:
		return errCoordinatorNotAvailable
	}
}

// clientHost is the client's address as Kafka reports it in
// DescribeGroups: a slash and the IP address.
func clientHost(r *request) string {
	addr := r.c.nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return "/" + addr
}

// durationMs converts a protocol duration in milliseconds.
func durationMs(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }

// strOrEmpty returns *s, or "" for nil.
func strOrEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// nullIfEmpty returns nil for "", else &s.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
