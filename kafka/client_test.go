package kafka

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// TestProduceConsume produces synchronously to several partitions with
// each compression codec through franz-go, then consumes everything from
// the start with another client and checks records, order and offsets.
func TestProduceConsume(t *testing.T) {
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	e := newEnv(t, envOptions{})
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			ctx := testContext(t)
			topic := "orders-" + c.name
			const partitions, n = 3, 200
			e.createTopic(topic, commitlog.TopicConfig{Partitions: partitions})

			producer := e.client(kgo.ProducerBatchCompression(c.codec))
			base := time.UnixMilli(1_700_000_000_000)
			var recs []*kgo.Record
			for i := range n {
				recs = append(recs, &kgo.Record{
					Topic:     topic,
					Key:       []byte("key-" + strconv.Itoa(i%17)),
					Value:     []byte(fmt.Sprintf("value %d %s", i, c.name)),
					Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}},
					Timestamp: base.Add(time.Duration(i) * time.Millisecond),
				})
			}
			if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			// The offsets the producer learned are each partition's
			// sequence 0, 1, 2, ...
			produced := map[int32][]*kgo.Record{}
			for _, r := range recs {
				if r.Offset != int64(len(produced[r.Partition])) {
					t.Fatalf("partition %d: record offset %d, want %d", r.Partition, r.Offset, len(produced[r.Partition]))
				}
				produced[r.Partition] = append(produced[r.Partition], r)
			}
			if len(produced) < 2 {
				t.Fatalf("records went to %d partitions, want several", len(produced))
			}

			consumer := e.client(kgo.ConsumeTopics(topic))
			got := map[int32][]*kgo.Record{}
			for total := 0; total < n; {
				fetches := consumer.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("consumed %d of %d records: %v", total, n, err)
				}
				fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
				fetches.EachRecord(func(r *kgo.Record) {
					got[r.Partition] = append(got[r.Partition], r)
					total++
				})
			}
			for p, want := range produced {
				if len(got[p]) != len(want) {
					t.Fatalf("partition %d: consumed %d records, want %d", p, len(got[p]), len(want))
				}
				for i, w := range want {
					g := got[p][i]
					if g.Offset != w.Offset || string(g.Key) != string(w.Key) || string(g.Value) != string(w.Value) ||
						!g.Timestamp.Equal(w.Timestamp) || len(g.Headers) != 1 || string(g.Headers[0].Value) != string(w.Headers[0].Value) {
						t.Fatalf("partition %d record %d: got offset %d %q=%q at %v, want offset %d %q=%q at %v",
							p, i, g.Offset, g.Key, g.Value, g.Timestamp, w.Offset, w.Key, w.Value, w.Timestamp)
					}
				}
			}
		})
	}
}

// TestProduceAcks checks acks=1 and acks=0 through franz-go (whose
// idempotent producer, the default, needs acks=all).
func TestProduceAcks(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createTopic("acks", commitlog.TopicConfig{})
	ctx := testContext(t)
	for _, acks := range []kgo.Acks{kgo.LeaderAck(), kgo.NoAck()} {
		cl := e.client(kgo.RequiredAcks(acks), kgo.DisableIdempotentWrite())
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "acks", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// acks=0 answers nothing: wait for the record to land.
	p := partition(t, e, "acks", 0)
	waitCtx := testContext(t)
	if err := p.Wait(waitCtx, 1); err != nil {
		t.Fatal(err)
	}
}

func partition(t testing.TB, e *testEnv, topic string, i int32) *commitlog.Partition {
	t.Helper()
	tp, err := e.broker.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tp.Partition(i)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMessageTooLarge produces a batch larger than the topic's
// max.message.bytes: the record fails with MESSAGE_TOO_LARGE and the same
// connection goes on serving.
func TestMessageTooLarge(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testContext(t)
	cl := e.client(kgo.ProducerBatchMaxBytes(1 << 20))
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("4096")}, "small"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "small", Value: []byte("fits")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	conns := e.ln.accepted.Load()

	// Random bytes, so that compression (snappy by default) keeps them
	// large.
	big := make([]byte, 64<<10)
	rand.Read(big)
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "small", Value: big}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("producing 64 KiB to a 4 KiB topic: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "small", Value: []byte("fits again")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := e.ln.accepted.Load(); got != conns {
		t.Fatalf("%d connections after the rejected batch, want still %d", got, conns)
	}
	if end := partition(t, e, "small", 0).EndOffset(); end != 2 {
		t.Fatalf("end offset %d, want 2", end)
	}
}

// TestListOffsets lists earliest, latest and by-time offsets through kadm.
func TestListOffsets(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testContext(t)
	e.createTopic("times", commitlog.TopicConfig{Partitions: 2})
	cl := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	base := int64(1_700_000_000_000)
	for i := range 10 {
		r := &kgo.Record{Topic: "times", Partition: 0, Value: []byte{byte(i)}, Timestamp: time.UnixMilli(base + int64(i)*1000)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	check := func(what string, l kadm.ListedOffsets, err error, p int32, offset, ts int64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		o, ok := l.Lookup("times", p)
		if !ok || o.Err != nil || o.Offset != offset || o.Timestamp != ts {
			t.Fatalf("%s partition %d: %+v, want offset %d timestamp %d", what, p, o, offset, ts)
		}
	}
	start, err := adm.ListStartOffsets(ctx, "times")
	check("start", start, err, 0, 0, -1)
	check("start", start, err, 1, 0, -1)
	end, err := adm.ListEndOffsets(ctx, "times")
	check("end", end, err, 0, 10, -1)
	check("end", end, err, 1, 0, -1)
	at, err := adm.ListOffsetsAfterMilli(ctx, base+3000, "times")
	check("at a record's time", at, err, 0, 3, base+3000)
	between, err := adm.ListOffsetsAfterMilli(ctx, base+3500, "times")
	check("between records", between, err, 0, 4, base+4000)
	// KIP-734 (v7): the record with the largest timestamp, here not the
	// last one; none in an empty partition.
	r := &kgo.Record{Topic: "times", Partition: 0, Value: []byte("old"), Timestamp: time.UnixMilli(base)}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	maxTS, err := adm.ListMaxTimestampOffsets(ctx, "times")
	check("max timestamp", maxTS, err, 0, 9, base+9000)
	check("max timestamp", maxTS, err, 1, -1, -1)
	// KIP-405 (v8): every offset is local.
	local, err := adm.ListLocalLogStartOffsets(ctx, "times")
	check("earliest local", local, err, 0, 0, -1)

	// After every record, Kafka answers offset and timestamp -1; the
	// special timestamps need their versions.
	for _, tc := range []struct {
		version   int16
		ts        int64
		code      int16
		offset    int64
		timestamp int64
	}{
		{8, base + 60_000, 0, -1, -1},
		{6, -3, errUnsupportedVersion, -1, -1},
		{7, -3, 0, 9, base + 9000},
		{7, -4, errUnsupportedVersion, -1, -1},
		{8, -4, 0, 0, -1},
	} {
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version = tc.version
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "times"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = tc.ts
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		p := roundTrip[*kmsg.ListOffsetsResponse](e.dial(), req, 1).Topics[0].Partitions[0]
		if p.ErrorCode != tc.code || p.Offset != tc.offset || p.Timestamp != tc.timestamp {
			t.Errorf("v%d timestamp %d: %+v, want error %d offset %d timestamp %d", tc.version, tc.ts, p, tc.code, tc.offset, tc.timestamp)
		}
	}

	// franz-go does not send requests for partitions it does not know.
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 6
	for _, topic := range []string{"times", "missing"} {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = 7
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	resp := roundTrip[*kmsg.ListOffsetsResponse](e.dial(), req, 1)
	for _, tr := range resp.Topics {
		if p := tr.Partitions[0]; p.ErrorCode != errUnknownTopicOrPartition {
			t.Fatalf("%s partition 7: error %d, want UNKNOWN_TOPIC_OR_PARTITION", tr.Topic, p.ErrorCode)
		}
	}
}

// TestMetadataAutoCreate checks that a Metadata request creates an unknown
// topic when both the server and the client allow it, answering
// LEADER_NOT_AVAILABLE for that request as Kafka does.
func TestMetadataAutoCreate(t *testing.T) {
	metadata := func(cl *kgo.Client, allow bool, topics ...string) *kmsg.MetadataResponse {
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = allow
		for _, name := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(name)
			req.Topics = append(req.Topics, rt)
		}
		return send[*kmsg.MetadataResponse](t, cl, req)
	}

	t.Run("enabled", func(t *testing.T) {
		e := newEnv(t, envOptions{broker: commitlog.Options{AutoCreateTopics: true, DefaultPartitions: 3}, server: Config{NodeID: 7}})
		cl := e.client()
		resp := metadata(cl, true, "auto", "not allowed", "bad/name")
		want := []int16{errLeaderNotAvailable, errInvalidTopic, errInvalidTopic}
		for i, tr := range resp.Topics {
			if tr.ErrorCode != want[i] {
				t.Fatalf("topic %q: error %d, want %d", *tr.Topic, tr.ErrorCode, want[i])
			}
		}
		resp = metadata(cl, false, "auto", "other")
		if tr := resp.Topics[0]; tr.ErrorCode != 0 || len(tr.Partitions) != 3 {
			t.Fatalf("auto-created topic: %+v", tr)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.Leader != 7 || p.LeaderEpoch != 0 || len(p.Replicas) != 1 || p.Replicas[0] != 7 || len(p.ISR) != 1 || p.ISR[0] != 7 {
				t.Fatalf("partition %+v: want leader, replica and ISR 7 at epoch 0", p)
			}
		}
		if tr := resp.Topics[1]; tr.ErrorCode != errUnknownTopicOrPartition {
			t.Fatalf("topic not allowed to be created: error %d", tr.ErrorCode)
		}
		if _, err := e.broker.Topic("other"); err == nil {
			t.Fatal("topic created although the client did not allow it")
		}
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 7 || resp.ControllerID != 7 || resp.ClusterID == nil || *resp.ClusterID != e.broker.ClusterID() || len(*resp.ClusterID) != 22 {
			t.Fatalf("brokers %+v, controller %d, cluster %v", resp.Brokers, resp.ControllerID, resp.ClusterID)
		}
		host, port := resp.Brokers[0].Host, resp.Brokers[0].Port
		if addr := fmt.Sprintf("%s:%d", host, port); addr != e.addr {
			t.Fatalf("advertised %s, want %s", addr, e.addr)
		}
		// Every topic.
		all := send[*kmsg.MetadataResponse](t, cl, kmsg.NewPtrMetadataRequest())
		if len(all.Topics) != 1 || *all.Topics[0].Topic != "auto" {
			t.Fatalf("all topics: %+v", all.Topics)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		resp := metadata(e.client(), true, "auto")
		if tr := resp.Topics[0]; tr.ErrorCode != errUnknownTopicOrPartition {
			t.Fatalf("error %d, want UNKNOWN_TOPIC_OR_PARTITION", tr.ErrorCode)
		}
	})
	t.Run("producer", func(t *testing.T) {
		e := newEnv(t, envOptions{broker: commitlog.Options{AutoCreateTopics: true}})
		ctx := testContext(t)
		cl := e.client(kgo.AllowAutoTopicCreation())
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "made-by-producer", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if end := partition(t, e, "made-by-producer", 0).EndOffset(); end != 1 {
			t.Fatalf("end offset %d, want 1", end)
		}
	})
}

// TestAdmin creates, validates, describes, grows and deletes topics
// through kadm.
func TestAdmin(t *testing.T) {
	e := newEnv(t, envOptions{broker: commitlog.Options{DefaultPartitions: 2}})
	ctx := testContext(t)
	cl := e.client()
	adm := kadm.NewClient(cl)

	configs := map[string]*string{
		"retention.ms":           kadm.StringPtr("3600000"),
		"cleanup.policy":         kadm.StringPtr("compact,delete"),
		"segment.bytes":          kadm.StringPtr("1048576"),
		"message.timestamp.type": kadm.StringPtr("LogAppendTime"),
		"max.message.bytes":      kadm.StringPtr("65536"),
	}
	// Validation alone creates nothing.
	v, err := adm.ValidateCreateTopics(ctx, 4, 1, configs, "events")
	if err != nil || v["events"].Err != nil {
		t.Fatalf("validate: %v %+v", err, v)
	}
	if _, err := e.broker.Topic("events"); err == nil {
		t.Fatal("validate-only created the topic")
	}
	created, err := adm.CreateTopic(ctx, 4, 1, configs, "events")
	if err != nil {
		t.Fatal(err)
	}
	retention := created.Configs["retention.ms"]
	if created.NumPartitions != 4 || created.ReplicationFactor != 1 || retention.MaybeValue() != "3600000" {
		t.Fatalf("created %+v", created)
	}
	cfg := func() commitlog.TopicConfig {
		tp, err := e.broker.Topic("events")
		if err != nil {
			t.Fatal(err)
		}
		return tp.Config()
	}()
	if cfg.RetentionTime != time.Hour || cfg.CleanupPolicy != commitlog.CleanupCompactDelete || cfg.SegmentBytes != 1<<20 ||
		cfg.TimestampType != commitlog.LogAppendTime || cfg.MaxMessageBytes != 65536 || cfg.Partitions != 4 {
		t.Fatalf("topic config %+v", cfg)
	}
	// Validation fills in the broker's defaults and checks the values as
	// creation would.
	vd, err := adm.ValidateCreateTopics(ctx, -1, -1, map[string]*string{"retention.ms": kadm.StringPtr("60000")}, "defaults")
	if err != nil || vd["defaults"].Err != nil || vd["defaults"].NumPartitions != 2 || vd["defaults"].ReplicationFactor != 1 {
		t.Fatalf("validate with defaults: %v %+v", err, vd)
	}
	maxBytes, retention, segment := vd["defaults"].Configs["max.message.bytes"], vd["defaults"].Configs["retention.ms"], vd["defaults"].Configs["segment.bytes"]
	if maxBytes.MaybeValue() != "1048588" || retention.MaybeValue() != "60000" ||
		retention.Source != kmsg.ConfigSourceDynamicTopicConfig || segment.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("validate with defaults: configs %+v", vd["defaults"].Configs)
	}
	if v, _ := adm.ValidateCreateTopics(ctx, 1, 1, map[string]*string{"segment.bytes": kadm.StringPtr("10")}, "tiny"); !errors.Is(v["tiny"].Err, kerr.InvalidConfig) {
		t.Fatalf("validate segment.bytes=10: %+v", v)
	}
	defaults, err := adm.CreateTopic(ctx, -1, -1, nil, "defaults")
	if err != nil || defaults.NumPartitions != 2 {
		t.Fatalf("default partitions: %+v %v", defaults, err)
	}

	// Errors, one per topic.
	for _, c := range []struct {
		topic      string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       error
	}{
		{"events", 1, 1, nil, kerr.TopicAlreadyExists},
		{"bad name", 1, 1, nil, kerr.InvalidTopicException},
		{"zero", 0, 1, nil, kerr.InvalidPartitions},
		{"three", 1, 3, nil, kerr.InvalidReplicationFactor},
		{"config", 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("soon")}, kerr.InvalidConfig},
		{"unknown", 1, 1, map[string]*string{"no.such.config": kadm.StringPtr("1")}, kerr.InvalidConfig},
		{"range", 1, 1, map[string]*string{"segment.bytes": kadm.StringPtr("10")}, kerr.InvalidConfig},
	} {
		_, err := adm.CreateTopic(ctx, c.partitions, c.rf, c.configs, c.topic)
		if !errors.Is(err, c.want) {
			t.Errorf("create %q: %v, want %v", c.topic, err, c.want)
		}
	}

	described, err := adm.DescribeTopicConfigs(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := described.On("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	sources := map[string]kmsg.ConfigSource{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
		sources[c.Key] = c.Source
	}
	for name, want := range map[string]string{
		"retention.ms": "3600000", "cleanup.policy": "compact,delete", "segment.bytes": "1048576",
		"message.timestamp.type": "LogAppendTime", "max.message.bytes": "65536", "retention.bytes": "-1",
		"segment.ms": "604800000", "min.insync.replicas": "1", "compression.type": "producer",
	} {
		if got[name] != want {
			t.Errorf("config %s = %q, want %q", name, got[name], want)
		}
	}
	if sources["retention.ms"] != kmsg.ConfigSourceDynamicTopicConfig || sources["retention.bytes"] != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("sources %v", sources)
	}
	if rcs, err := adm.DescribeTopicConfigs(ctx, "missing"); err != nil || !errors.Is(rcs[0].Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("describing a missing topic: %v %+v", err, rcs)
	}
	brokerCfg, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil || len(brokerCfg) != 1 || brokerCfg[0].Err != nil || len(brokerCfg[0].Configs) == 0 {
		t.Fatalf("broker configs: %v %+v", err, brokerCfg)
	}
	// The broker's options, defaults filled in.
	brokerValues := map[string]string{}
	for _, c := range brokerCfg[0].Configs {
		brokerValues[c.Key] = c.MaybeValue()
	}
	for name, want := range map[string]string{
		"num.partitions": "2", "message.max.bytes": "1048588", "auto.create.topics.enable": "false", "broker.id": "1",
	} {
		if brokerValues[name] != want {
			t.Errorf("broker config %s = %q, want %q", name, brokerValues[name], want)
		}
	}

	// Partitions grow, never shrink.
	if resp, err := adm.UpdatePartitions(ctx, 6, "events"); err != nil || resp["events"].Err != nil {
		t.Fatalf("grow: %v %+v", err, resp)
	}
	if n := partitionCount(t, e, "events"); n != 6 {
		t.Fatalf("%d partitions, want 6", n)
	}
	if resp, _ := adm.UpdatePartitions(ctx, 3, "events"); !errors.Is(resp["events"].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrink: %+v", resp)
	}
	if resp, _ := adm.ValidateUpdatePartitions(ctx, 8, "events"); resp["events"].Err != nil || partitionCount(t, e, "events") != 6 {
		t.Fatalf("validate grow: %+v", resp)
	}
	if resp, _ := adm.UpdatePartitions(ctx, 3, "missing"); !errors.Is(resp["missing"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("grow missing: %+v", resp)
	}

	deleted, err := adm.DeleteTopics(ctx, "events", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if deleted["events"].Err != nil || !errors.Is(deleted["missing"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete: %+v", deleted)
	}
	if _, err := e.broker.Topic("events"); err == nil {
		t.Fatal("topic still there after DeleteTopics")
	}

	// DescribeCluster.
	dc := send[*kmsg.DescribeClusterResponse](t, cl, kmsg.NewPtrDescribeClusterRequest())
	if dc.ErrorCode != 0 || dc.ClusterID != e.broker.ClusterID() || len(dc.Brokers) != 1 || dc.Brokers[0].NodeID != 1 {
		t.Fatalf("DescribeCluster: %+v", dc)
	}
}

func partitionCount(t *testing.T, e *testEnv, topic string) int32 {
	t.Helper()
	tp, err := e.broker.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	return tp.NumPartitions()
}

// TestFetchLongPoll checks that a Fetch at the end of a partition waits for
// an append, and answers as soon as one comes.
func TestFetchLongPoll(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createTopic("poll", commitlog.TopicConfig{})
	cl := e.client()
	ctx := testContext(t)

	fetch := func(offset int64, wait time.Duration) *kmsg.FetchRequest {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = int32(wait / time.Millisecond)
		req.MinBytes = 1
		req.MaxBytes = 1 << 20
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "poll"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset = offset
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return req
	}

	// Nothing comes: the wait runs out and the answer is empty.
	start := time.Now()
	resp := send[*kmsg.FetchResponse](t, cl, fetch(0, 50*time.Millisecond))
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 0 {
		t.Fatalf("empty fetch: %+v", p)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("fetch answered before its MaxWait without data")
	}

	// An append wakes a waiting fetch long before its MaxWait.
	type result struct {
		resp *kmsg.FetchResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := cl.Request(ctx, fetch(0, time.Hour))
		r := result{err: err}
		if err == nil {
			r.resp = resp.(*kmsg.FetchResponse)
		}
		done <- r
	}()
	p := partition(t, e, "poll", 0)
	// The append may come before the fetch arrives; either way the fetch
	// answers with the record.
	if _, err := p.Append(commitlog.Record{Value: []byte("wake up")}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		part := r.resp.Topics[0].Partitions[0]
		if part.ErrorCode != 0 || len(part.RecordBatches) == 0 || part.HighWatermark != 1 || part.LastStableOffset != 1 || part.LogStartOffset != 0 {
			t.Fatalf("woken fetch: %+v", part)
		}
	case <-ctx.Done():
		t.Fatal("the fetch did not wake up")
	}

	// Out of range.
	resp = send[*kmsg.FetchResponse](t, cl, fetch(5, time.Hour))
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != errOffsetOutOfRange || p.HighWatermark != 1 {
		t.Fatalf("out of range: %+v", p)
	}
	// Sessions are not kept.
	req := fetch(0, 0)
	req.SessionID = 42
	req.SessionEpoch = 3
	if resp := send[*kmsg.FetchResponse](t, cl, req); resp.ErrorCode != errFetchSessionIDNotFound {
		t.Fatalf("session: error %d", resp.ErrorCode)
	}
}

// TestFetchLimits checks KIP-74: the first partition with records returns
// a batch larger than the limits; later ones return only what fits.
func TestFetchLimits(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createTopic("big", commitlog.TopicConfig{Partitions: 3})
	for i := range int32(3) {
		p := partition(t, e, "big", i)
		for range 2 {
			if _, err := p.Append(commitlog.Record{Value: make([]byte, 1000)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxBytes = 1500
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "big"
	for i := range int32(3) {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = i
		rp.PartitionMaxBytes = 100
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := send[*kmsg.FetchResponse](t, e.client(), req)
	ps := resp.Topics[0].Partitions
	first := len(ps[0].RecordBatches)
	if first < 1000 || first > 1200 {
		t.Fatalf("first partition: %d bytes, want exactly its first batch", first)
	}
	for _, p := range ps[1:] {
		if len(p.RecordBatches) != 0 || p.HighWatermark != 2 {
			t.Fatalf("partition %d: %d bytes, high watermark %d; want none, 2", p.Partition, len(p.RecordBatches), p.HighWatermark)
		}
	}
}
