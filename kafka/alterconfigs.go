package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// handleIncrementalAlterConfigs changes topics' configs live
// (commitlog.Broker.AlterTopicConfig): per config SET, DELETE (back to the
// default), and for list configs (cleanup.policy) APPEND and SUBTRACT, which
// other configs answer with INVALID_CONFIG, as Kafka's controller does.
// Each resource succeeds or fails whole; ValidateOnly checks without
// changing anything. Broker resources are refused: every broker setting
// here is static (INVALID_REQUEST, "Cannot update these configs
// dynamically", as Kafka answers for its static ones).
func (s *Server) handleIncrementalAlterConfigs(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, res := range req.Resources {
		out := kmsg.NewIncrementalAlterConfigsResponseResource()
		out.ResourceType = res.ResourceType
		out.ResourceName = res.ResourceName
		names := make([]string, len(res.Configs))
		for i, c := range res.Configs {
			names[i] = c.Name
		}
		out.ErrorCode, out.ErrorMessage = s.alterResource(ctx, res.ResourceType, res.ResourceName, names, req.ValidateOnly, func(cfg *commitlog.TopicConfig) error {
			for _, c := range res.Configs {
				if err := s.applyIncremental(cfg, c); err != nil {
					return err
				}
			}
			return nil
		})
		resp.Resources = append(resp.Resources, out)
	}
	return resp, nil
}

// handleAlterConfigs is the older, non-incremental form: a topic's configs
// become exactly those given, the others going back to their defaults.
func (s *Server) handleAlterConfigs(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, res := range req.Resources {
		out := kmsg.NewAlterConfigsResponseResource()
		out.ResourceType = res.ResourceType
		out.ResourceName = res.ResourceName
		names := make([]string, len(res.Configs))
		for i, c := range res.Configs {
			names[i] = c.Name
		}
		out.ErrorCode, out.ErrorMessage = s.alterResource(ctx, res.ResourceType, res.ResourceName, names, req.ValidateOnly, func(cfg *commitlog.TopicConfig) error {
			for i := range topicConfigs {
				tc := &topicConfigs[i]
				if err := s.setTopicConfig(cfg, tc, tc.def(&s.opts)); err != nil {
					return err
				}
			}
			for _, c := range res.Configs {
				tc, err := knownTopicConfig(c.Name)
				if err != nil {
					return err
				}
				if c.Value != nil {
					if err := s.setTopicConfig(cfg, tc, *c.Value); err != nil {
						return err
					}
				}
			}
			return nil
		})
		resp.Resources = append(resp.Resources, out)
	}
	return resp, nil
}

// alterResource changes one resource's configs with edit, which sees the
// topic's current configuration; names are the configs the request names.
// It returns the resource's error code and message.
func (s *Server) alterResource(ctx context.Context, typ kmsg.ConfigResourceType, name string, names []string, validateOnly bool, edit func(*commitlog.TopicConfig) error) (int16, *string) {
	fail := func(code int16, err error) (int16, *string) { return code, errorMessage(err) }
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			return fail(errInvalidRequest, fmt.Errorf("error due to duplicate config keys: %s", n))
		}
	}
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
	case kmsg.ConfigResourceTypeBroker:
		if name != "" && name != strconv.Itoa(int(s.cfg.NodeID)) {
			return fail(errInvalidRequest, fmt.Errorf("this is broker %d, not %s", s.cfg.NodeID, name))
		}
		if len(names) == 0 {
			return errNone, nil
		}
		return fail(errInvalidRequest, &configError{errInvalidRequest, fmt.Sprintf("Cannot update these configs dynamically: Set(%s)", strings.Join(names, ", "))})
	default:
		return fail(errInvalidRequest, fmt.Errorf("config resource type %d is not supported", typ))
	}
	if commitlog.IsInternalTopic(name) {
		return fail(errInvalidRequest, fmt.Errorf("%s is internal: its configs are the broker's", name))
	}
	alter := s.b.AlterTopicConfig
	if validateOnly {
		alter = s.b.ValidateTopicConfigChange
	}
	if _, err := alter(ctx, name, edit); err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			return fail(ce.code, err)
		}
		return fail(errorCode(err), err)
	}
	return errNone, nil
}

// applyIncremental applies one operation of IncrementalAlterConfigs.
func (s *Server) applyIncremental(cfg *commitlog.TopicConfig, c kmsg.IncrementalAlterConfigsRequestResourceConfig) error {
	tc, err := knownTopicConfig(c.Name)
	if err != nil {
		return err
	}
	switch c.Op {
	case kmsg.IncrementalAlterConfigOpSet:
		if c.Value == nil {
			return &configError{errInvalidRequest, fmt.Sprintf("null value not supported for: %s", c.Name)}
		}
		return s.setTopicConfig(cfg, tc, *c.Value)
	case kmsg.IncrementalAlterConfigOpDelete:
		return s.setTopicConfig(cfg, tc, tc.def(&s.opts))
	case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
		if tc.typ != kmsg.ConfigTypeList {
			return &configError{errInvalidConfig, fmt.Sprintf("Can't %s to key %s because its type is not LIST.", c.Op, c.Name)}
		}
		var parts []string
		for p := range strings.SplitSeq(tc.get(cfg), ",") {
			if p != "" {
				parts = append(parts, p)
			}
		}
		var values []string
		if c.Value != nil {
			values = strings.Split(*c.Value, ",")
		}
		for _, v := range values {
			i := slices.Index(parts, v)
			switch {
			case c.Op == kmsg.IncrementalAlterConfigOpAppend && i < 0:
				parts = append(parts, v)
			case c.Op == kmsg.IncrementalAlterConfigOpSubtract && i >= 0:
				parts = slices.Delete(parts, i, i+1)
			}
		}
		return s.setTopicConfig(cfg, tc, strings.Join(parts, ","))
	default:
		return &configError{errInvalidRequest, fmt.Sprintf("unknown operation %d on %s", c.Op, c.Name)}
	}
}

// knownTopicConfig finds a topic config by name, or answers
// INVALID_CONFIG as Kafka does for an unknown one.
func knownTopicConfig(name string) (*topicConfig, error) {
	tc, ok := findTopicConfig(name)
	if !ok {
		return nil, &configError{errInvalidConfig, fmt.Sprintf("unknown topic config name: %s", name)}
	}
	return tc, nil
}

// setTopicConfig sets one config from its Kafka value.
func (s *Server) setTopicConfig(cfg *commitlog.TopicConfig, tc *topicConfig, v string) error {
	if err := tc.set(cfg, v); err != nil {
		return &configError{errInvalidConfig, fmt.Sprintf("invalid value %q for configuration %s: %v", v, tc.name, err)}
	}
	return nil
}
