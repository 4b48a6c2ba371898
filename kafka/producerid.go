package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleInitProducerID gives an idempotent producer its id
// (Broker.InitProducerID: unique across restarts, epoch 0). The log then
// checks the producer's sequence numbers on every batch (see
// handleProduce).
//
// As in Kafka, a request without a transactional id always gets a new id:
// the producer id and epoch that a client sends from version 3 on, to bump
// its epoch after an error (KIP-360), are ignored, though a request with
// only one of the two set is INVALID_REQUEST.
//
// Transactions are not supported, and their APIs are not advertised. A
// request with a transactional id gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
// every client treats it as fatal and reports it from the call that
// initialises transactions, where the coordinator errors (NOT_COORDINATOR,
// COORDINATOR_NOT_AVAILABLE) would make it retry forever. Redpanda answers
// transactional requests the same way when its transactions are disabled.
func (s *Server) handleInitProducerID(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	switch {
	case req.TransactionalID != nil:
		resp.ErrorCode = errTransactionalIDAuthz
		return resp, nil
	case (req.ProducerID == -1) != (req.ProducerEpoch == -1):
		resp.ErrorCode = errInvalidRequest
		return resp, nil
	}
	// A request being handled when Shutdown begins is still answered.
	id, epoch, err := s.b.InitProducerID(context.WithoutCancel(ctx))
	if err != nil {
		s.log.Error("kafka: allocating a producer id", "err", err)
		resp.ErrorCode = errorCode(err)
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, epoch
	return resp, nil
}
