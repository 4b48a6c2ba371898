package kafka

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// describeTopic returns a topic's configs by name, with their sources.
func describeTopic(t *testing.T, adm *kadm.Client, topic string) map[string]kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(testContext(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
	}
	out := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		out[c.Key] = c
	}
	return out
}

func checkConfig(t *testing.T, got map[string]kadm.Config, name, value string, source kmsg.ConfigSource) {
	t.Helper()
	c, ok := got[name]
	if !ok || c.Value == nil || *c.Value != value || c.Source != source {
		t.Errorf("%s = %v (source %v), want %q (source %v)", name, c.Value, c.Source, value, source)
	}
}

// TestIncrementalAlterConfigs changes a topic's configs with kadm: the
// changes show in DescribeConfigs as DYNAMIC_TOPIC_CONFIG, apply at once
// (a larger max.message.bytes lets a larger batch in) and survive a
// restart; validateOnly changes nothing; errors are Kafka's.
func TestIncrementalAlterConfigs(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, envOptions{dir: dir})
	e.createTopic("cfg", commitlog.TopicConfig{MaxMessageBytes: 4096, SegmentBytes: 8192})
	ctx := testContext(t)
	cl := e.client(kgo.ProducerBatchMaxBytes(1<<20), kgo.DefaultProduceTopic("cfg"), kgo.RecordRetries(1))
	adm := kadm.NewClient(cl)
	big := make([]byte, 32<<10) // random: the client compresses batches
	rand.Read(big)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: big}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("before: %v, want MESSAGE_TOO_LARGE", err)
	}

	set := func(name, value string) kadm.AlterConfig {
		return kadm.AlterConfig{Op: kadm.SetConfig, Name: name, Value: kadm.StringPtr(value)}
	}
	if rs, err := adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "1000")}, "cfg"); err != nil || rs[0].Err != nil {
		t.Fatalf("validate: %v %v", err, rs)
	}
	checkConfig(t, describeTopic(t, adm, "cfg"), "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)

	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		set("max.message.bytes", "65536"),
		set("retention.ms", "3600000"),
		set("segment.bytes", "1048576"),
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")},
		set("min.cleanable.dirty.ratio", "0.2"),
		set("delete.retention.ms", "60000"),
	}, "cfg")
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, rs)
	}
	got := describeTopic(t, adm, "cfg")
	checkConfig(t, got, "max.message.bytes", "65536", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(t, got, "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(t, got, "segment.bytes", "1048576", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(t, got, "cleanup.policy", "compact,delete", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(t, got, "min.cleanable.dirty.ratio", "0.2", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(t, got, "delete.retention.ms", "60000", kmsg.ConfigSourceDynamicTopicConfig)
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: big}).FirstErr(); err != nil {
		t.Fatalf("after raising max.message.bytes: %v", err)
	}

	// SUBTRACT, then DELETE back to the default.
	rs, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: kadm.StringPtr("delete")},
		{Op: kadm.DeleteConfig, Name: "delete.retention.ms"},
	}, "cfg")
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, rs)
	}
	got = describeTopic(t, adm, "cfg")
	checkConfig(t, got, "cleanup.policy", "compact", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(t, got, "delete.retention.ms", "86400000", kmsg.ConfigSourceDefaultConfig)

	// Errors, each failing its resource whole.
	for _, tc := range []struct {
		configs []kadm.AlterConfig
		topic   string
		want    error
	}{
		{[]kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "retention.ms", Value: kadm.StringPtr("1")}}, "cfg", kerr.InvalidConfig},
		{[]kadm.AlterConfig{set("no.such.config", "1")}, "cfg", kerr.InvalidConfig},
		{[]kadm.AlterConfig{set("retention.ms", "soon"), set("segment.bytes", "2097152")}, "cfg", kerr.InvalidConfig},
		{[]kadm.AlterConfig{set("retention.ms", "1"), set("retention.ms", "2")}, "cfg", kerr.InvalidRequest},
		{[]kadm.AlterConfig{set("message.timestamp.type", "Sometimes")}, "cfg", kerr.InvalidConfig},
		{[]kadm.AlterConfig{set("retention.ms", "1")}, "missing", kerr.UnknownTopicOrPartition},
	} {
		rs, err := adm.AlterTopicConfigs(ctx, tc.configs, tc.topic)
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(rs[0].Err, tc.want) {
			t.Errorf("%+v on %s: %v (%s), want %v", tc.configs, tc.topic, rs[0].Err, rs[0].ErrMessage, tc.want)
		}
	}
	checkConfig(t, describeTopic(t, adm, "cfg"), "segment.bytes", "1048576", kmsg.ConfigSourceDynamicTopicConfig)

	// Broker configs are all static.
	brs, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("message.max.bytes", "2000000")}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(brs[0].Err, kerr.InvalidRequest) || !strings.Contains(brs[0].ErrMessage, "Cannot update these configs dynamically") {
		t.Errorf("broker: %v %q, want INVALID_REQUEST", brs[0].Err, brs[0].ErrMessage)
	}

	// A restart keeps the changes.
	e.stop()
	e = newEnv(t, envOptions{dir: dir})
	got = describeTopic(t, kadm.NewClient(e.client()), "cfg")
	checkConfig(t, got, "max.message.bytes", "65536", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(t, got, "cleanup.policy", "compact", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(t, got, "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
}

// TestAlterConfigsState uses the older AlterConfigs: the configs given are
// set, the others go back to their defaults.
func TestAlterConfigsState(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createTopic("state", commitlog.TopicConfig{SegmentBytes: 8192, RetentionBytes: 1 << 20})
	ctx := testContext(t)
	adm := kadm.NewClient(e.client())
	rs, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kadm.StringPtr("60000")}}, "state")
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, rs)
	}
	got := describeTopic(t, adm, "state")
	checkConfig(t, got, "retention.ms", "60000", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(t, got, "segment.bytes", "1073741824", kmsg.ConfigSourceDefaultConfig)
	checkConfig(t, got, "retention.bytes", "-1", kmsg.ConfigSourceDefaultConfig)
	if rs, err := adm.ValidateAlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: kadm.StringPtr("4096")}}, "state"); err != nil || rs[0].Err != nil {
		t.Fatalf("validate: %v %+v", err, rs)
	}
	checkConfig(t, describeTopic(t, adm, "state"), "retention.ms", "60000", kmsg.ConfigSourceDynamicTopicConfig)
}
