package kafka

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// topicConfigs are the Kafka topic configs a topic can be created with and
// DescribeConfigs reports, each mapped onto a commitlog.TopicConfig field.
//
// Where Kafka gives 0 a meaning and TopicConfig reads 0 as "the default"
// (retention.ms, retention.bytes, delete.retention.ms,
// min.cleanable.dirty.ratio), 0 is stored as the smallest positive value,
// which behaves the same.
var topicConfigs = []topicConfig{
	{
		name: "cleanup.policy", typ: kmsg.ConfigTypeList, def: fixed(commitlog.CleanupDelete),
		doc: `"delete" removes old segments by retention.ms and retention.bytes; "compact" keeps the latest record of each key; "compact,delete" does both.`,
		set: func(c *commitlog.TopicConfig, v string) error {
			var del, compact bool
			for p := range strings.SplitSeq(v, ",") {
				switch strings.TrimSpace(p) {
				case "delete":
					del = true
				case "compact":
					compact = true
				default:
					return fmt.Errorf("unknown policy %q", strings.TrimSpace(p))
				}
			}
			switch {
			case del && compact:
				c.CleanupPolicy = commitlog.CleanupCompactDelete
			case compact:
				c.CleanupPolicy = commitlog.CleanupCompact
			default:
				c.CleanupPolicy = commitlog.CleanupDelete
			}
			return nil
		},
		get: func(c *commitlog.TopicConfig) string { return c.CleanupPolicy },
	},
	{
		name: "compression.type", typ: kmsg.ConfigTypeString, def: fixed("producer"),
		doc: `Batches are stored compressed as the producer sent them ("producer"); no other value is supported.`,
		set: func(_ *commitlog.TopicConfig, v string) error {
			if v != "producer" {
				return fmt.Errorf("only %q is supported: batches are stored as produced", "producer")
			}
			return nil
		},
		get: func(*commitlog.TopicConfig) string { return "producer" },
	},
	{
		name: "delete.retention.ms", typ: kmsg.ConfigTypeLong, def: fixed(msString(commitlog.DefaultDeleteRetention)),
		doc: "How long a compacted topic keeps tombstones (records with a null value), in milliseconds.",
		set: func(c *commitlog.TopicConfig, v string) error {
			d, err := parseMillis(v, false)
			c.DeleteRetention = d
			return err
		},
		get: func(c *commitlog.TopicConfig) string { return msString(c.DeleteRetention) },
	},
	{
		name: "max.message.bytes", typ: kmsg.ConfigTypeInt, def: func(o *commitlog.Options) string { return strconv.Itoa(o.MaxMessageBytes) },
		doc: "The largest record batch the topic accepts, in bytes; the broker's message.max.bytes by default.",
		set: func(c *commitlog.TopicConfig, v string) error {
			n, err := parseInt(v, 1, math.MaxInt32)
			c.MaxMessageBytes = int(n)
			return err
		},
		get: func(c *commitlog.TopicConfig) string { return strconv.Itoa(c.MaxMessageBytes) },
	},
	{
		name: "message.timestamp.type", typ: kmsg.ConfigTypeString, def: fixed(commitlog.CreateTime.String()),
		doc: `"CreateTime" keeps the producers' timestamps; "LogAppendTime" replaces them with the time of the append.`,
		set: func(c *commitlog.TopicConfig, v string) error {
			switch v {
			case commitlog.CreateTime.String():
				c.TimestampType = commitlog.CreateTime
			case commitlog.LogAppendTime.String():
				c.TimestampType = commitlog.LogAppendTime
			default:
				return fmt.Errorf("want %q or %q", commitlog.CreateTime, commitlog.LogAppendTime)
			}
			return nil
		},
		get: func(c *commitlog.TopicConfig) string { return c.TimestampType.String() },
	},
	{
		name: "min.cleanable.dirty.ratio", typ: kmsg.ConfigTypeDouble, def: fixed("0.5"),
		doc: "The share of a compacted partition's log not yet compacted above which the cleaner compacts it.",
		set: func(c *commitlog.TopicConfig, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				return fmt.Errorf("want a number in [0, 1]")
			}
			if f == 0 {
				f = math.SmallestNonzeroFloat64
			}
			c.MinCleanableDirtyRatio = f
			return nil
		},
		get: func(c *commitlog.TopicConfig) string {
			if c.MinCleanableDirtyRatio == math.SmallestNonzeroFloat64 {
				return "0"
			}
			return strconv.FormatFloat(c.MinCleanableDirtyRatio, 'g', -1, 64)
		},
	},
	{
		name: "min.insync.replicas", typ: kmsg.ConfigTypeInt, def: fixed("1"),
		doc: "The number of in-sync replicas an acks=all write needs.",
		set: func(c *commitlog.TopicConfig, v string) error {
			n, err := parseInt(v, 1, math.MaxInt32)
			c.MinInsyncReplicas = int(n)
			return err
		},
		get: func(c *commitlog.TopicConfig) string { return strconv.Itoa(c.MinInsyncReplicas) },
	},
	{
		name: "retention.bytes", typ: kmsg.ConfigTypeLong, def: func(o *commitlog.Options) string { return strconv.FormatInt(o.RetentionBytes, 10) },
		doc: "The size each partition is kept below by deleting its oldest segments, in bytes; -1 for no limit.",
		set: func(c *commitlog.TopicConfig, v string) error {
			n, err := parseInt(v, -1, math.MaxInt64)
			if n == 0 {
				n = 1
			}
			c.RetentionBytes = n
			return err
		},
		get: func(c *commitlog.TopicConfig) string { return strconv.FormatInt(c.RetentionBytes, 10) },
	},
	{
		name: "retention.ms", typ: kmsg.ConfigTypeLong, def: func(o *commitlog.Options) string { return msString(o.RetentionTime) },
		doc: "How long records are kept, in milliseconds; -1 keeps them forever.",
		set: func(c *commitlog.TopicConfig, v string) error {
			d, err := parseMillis(v, true)
			c.RetentionTime = d
			return err
		},
		get: func(c *commitlog.TopicConfig) string { return msString(c.RetentionTime) },
	},
	{
		name: "segment.bytes", typ: kmsg.ConfigTypeInt, def: fixed(strconv.Itoa(commitlog.DefaultSegmentBytes)),
		doc: "The size at which a partition's active segment rolls, in bytes.",
		set: func(c *commitlog.TopicConfig, v string) error {
			n, err := parseInt(v, 1, math.MaxInt32)
			c.SegmentBytes = n
			return err
		},
		get: func(c *commitlog.TopicConfig) string { return strconv.FormatInt(c.SegmentBytes, 10) },
	},
	{
		name: "segment.ms", typ: kmsg.ConfigTypeLong, def: fixed(msString(commitlog.DefaultSegmentAge)),
		doc: "The age at which a partition's active segment rolls, in milliseconds.",
		set: func(c *commitlog.TopicConfig, v string) error {
			n, err := parseInt(v, 1, math.MaxInt64/int64(time.Millisecond))
			c.SegmentAge = time.Duration(n) * time.Millisecond
			return err
		},
		get: func(c *commitlog.TopicConfig) string { return msString(c.SegmentAge) },
	},
}

// topicConfig maps one Kafka topic config onto TopicConfig.
type topicConfig struct {
	name string
	typ  kmsg.ConfigType
	// def is the value of a topic created without it: Kafka's default, or
	// the broker's for a setting that Options holds.
	def func(o *commitlog.Options) string
	doc string
	set func(c *commitlog.TopicConfig, v string) error
	get func(c *commitlog.TopicConfig) string
}

// fixed is the default of a topic config that the broker's options do not
// change.
func fixed(v string) func(*commitlog.Options) string {
	return func(*commitlog.Options) string { return v }
}

func findTopicConfig(name string) (*topicConfig, bool) {
	i := slices.IndexFunc(topicConfigs, func(tc topicConfig) bool { return tc.name == name })
	if i < 0 {
		return nil, false
	}
	return &topicConfigs[i], true
}

// msString formats a duration as Kafka's milliseconds; negative is -1
// (forever).
func msString(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// parseMillis parses milliseconds: at least 0, or -1 when forever is
// allowed. 0 becomes the smallest positive duration, since a zero
// TopicConfig field means the default.
func parseMillis(v string, forever bool) (time.Duration, error) {
	lo := int64(0)
	if forever {
		lo = -1
	}
	n, err := parseInt(v, lo, math.MaxInt64/int64(time.Millisecond))
	switch {
	case err != nil:
		return 0, err
	case n == -1:
		return -1, nil
	case n == 0:
		return 1, nil
	}
	return time.Duration(n) * time.Millisecond, nil
}

func parseInt(v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want an integer in [%d, %d]", lo, hi)
	}
	return n, nil
}

// configError is a request-level failure with its Kafka error code.
type configError struct {
	code int16
	msg  string
}

func (e *configError) Error() string { return e.msg }

// topicConfigFrom maps the configs of a CreateTopics entry onto a
// TopicConfig.
func topicConfigFrom(configs []kmsg.CreateTopicsRequestTopicConfig) (commitlog.TopicConfig, error) {
	var cfg commitlog.TopicConfig
	seen := map[string]bool{}
	for _, kv := range configs {
		tc, ok := findTopicConfig(kv.Name)
		switch {
		case !ok:
			return cfg, &configError{errInvalidConfig, fmt.Sprintf("topic config %q is not supported", kv.Name)}
		case seen[kv.Name]:
			return cfg, &configError{errInvalidRequest, fmt.Sprintf("topic config %q given twice", kv.Name)}
		case kv.Value == nil:
			return cfg, &configError{errInvalidConfig, fmt.Sprintf("null value for topic config %q", kv.Name)}
		}
		seen[kv.Name] = true
		if err := tc.set(&cfg, *kv.Value); err != nil {
			return cfg, &configError{errInvalidConfig, fmt.Sprintf("topic config %s=%q: %v", kv.Name, *kv.Value, err)}
		}
	}
	return cfg, nil
}

// handleDescribeConfigs describes topics' configs (every config of
// topicConfigs, or those asked for) and, minimally, this broker's.
func (s *Server) handleDescribeConfigs(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.body.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, res := range req.Resources {
		out := kmsg.NewDescribeConfigsResponseResource()
		out.ResourceType = res.ResourceType
		out.ResourceName = res.ResourceName
		var entries []configEntry
		switch res.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t, err := s.b.Topic(res.ResourceName)
			if err != nil {
				out.ErrorCode = errorCode(err)
				out.ErrorMessage = errorMessage(err)
				break
			}
			cfg := t.Config()
			for i := range topicConfigs {
				tc := &topicConfigs[i]
				v := tc.get(&cfg)
				source := kmsg.ConfigSourceDynamicTopicConfig
				if v == tc.def(&s.opts) {
					source = kmsg.ConfigSourceDefaultConfig
				}
				entries = append(entries, configEntry{name: tc.name, value: v, typ: tc.typ, source: source, doc: tc.doc})
			}
		case kmsg.ConfigResourceTypeBroker:
			if res.ResourceName != "" && res.ResourceName != strconv.Itoa(int(s.cfg.NodeID)) {
				out.ErrorCode = errInvalidRequest
				out.ErrorMessage = errorMessage(fmt.Errorf("this is broker %d, not %s", s.cfg.NodeID, res.ResourceName))
				break
			}
			entries = s.brokerConfigs(r.c.adv)
		default:
			out.ErrorCode = errInvalidRequest
			out.ErrorMessage = errorMessage(fmt.Errorf("config resource type %d is not supported", res.ResourceType))
		}
		for _, e := range entries {
			if res.ConfigNames != nil && !slices.Contains(res.ConfigNames, e.name) {
				continue
			}
			out.Configs = append(out.Configs, e.describe(req))
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp, nil
}

// configEntry is one config as DescribeConfigs reports it.
type configEntry struct {
	name, value string
	typ         kmsg.ConfigType
	source      kmsg.ConfigSource
	readOnly    bool
	doc         string
}

func (e configEntry) describe(req *kmsg.DescribeConfigsRequest) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name = e.name
	c.Value = &e.value
	c.ReadOnly = e.readOnly
	c.IsDefault = e.source == kmsg.ConfigSourceDefaultConfig
	c.Source = e.source
	c.ConfigType = e.typ
	if req.IncludeSynonyms {
		syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		syn.Name = e.name
		syn.Value = &e.value
		syn.Source = e.source
		c.ConfigSynonyms = []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{syn}
	}
	if req.IncludeDocumentation && e.doc != "" {
		c.Documentation = &e.doc
	}
	return c
}

// brokerConfigs are the broker settings DescribeConfigs reports, read-only:
// the server's and the broker's options that Kafka names.
func (s *Server) brokerConfigs(adv advertisedAddr) []configEntry {
	static := func(name, value string, typ kmsg.ConfigType, doc string) configEntry {
		return configEntry{name: name, value: value, typ: typ, source: kmsg.ConfigSourceStaticBrokerConfig, readOnly: true, doc: doc}
	}
	id := strconv.Itoa(int(s.cfg.NodeID))
	return []configEntry{
		static("advertised.listeners", "PLAINTEXT://"+netJoin(adv), kmsg.ConfigTypeList, "The address clients are told to connect to."),
		static("auto.create.topics.enable", strconv.FormatBool(s.opts.AutoCreateTopics), kmsg.ConfigTypeBoolean, "Whether a Metadata request may create the unknown topics it names."),
		static("broker.id", id, kmsg.ConfigTypeInt, "The broker's id."),
		static("connections.max.idle.ms", msString(s.cfg.IdleTimeout), kmsg.ConfigTypeLong, "Idle connections are closed after this many milliseconds."),
		static("default.replication.factor", "1", kmsg.ConfigTypeInt, "The replication factor of topics created without one."),
		static("log.dirs", s.b.Dir(), kmsg.ConfigTypeList, "The broker's data directory."),
		static("message.max.bytes", strconv.Itoa(s.opts.MaxMessageBytes), kmsg.ConfigTypeInt, "The largest record batch a topic created without max.message.bytes accepts, in bytes."),
		static("node.id", id, kmsg.ConfigTypeInt, "The broker's id."),
		static("num.partitions", strconv.Itoa(int(s.opts.DefaultPartitions)), kmsg.ConfigTypeInt, "The partition count of topics created without one."),
		static("socket.request.max.bytes", strconv.Itoa(s.cfg.MaxRequestBytes), kmsg.ConfigTypeInt, "The largest request accepted, in bytes."),
	}
}

func netJoin(adv advertisedAddr) string {
	return net.JoinHostPort(adv.host, strconv.Itoa(int(adv.port)))
}
