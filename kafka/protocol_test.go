package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// TestApiVersions checks the advertised table and KIP-511: a version
// above ours is answered in version 0 with UNSUPPORTED_VERSION and the
// ApiVersions range.
func TestApiVersions(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()

	for v := int16(0); v <= 3; v++ {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "raw-test", "1.0"
		resp := roundTrip[*kmsg.ApiVersionsResponse](c, req, int32(v))
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d: error %d", v, resp.ErrorCode)
		}
		got := map[int16][2]int16{}
		for _, k := range resp.ApiKeys {
			got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
		}
		want := map[int16][2]int16{
			0: {0, 9}, 1: {4, 12}, 2: {1, 8}, 3: {0, 12}, 18: {0, 3},
			19: {0, 7}, 20: {0, 6}, 22: {0, 4}, 32: {0, 4}, 33: {0, 2}, 37: {0, 3}, 44: {0, 1}, 60: {0, 2},
			8: {2, 8}, 9: {1, 8}, 10: {0, 4}, 11: {0, 9}, 12: {0, 4}, 13: {0, 4}, 14: {0, 5},
			15: {0, 5}, 16: {0, 4}, 42: {0, 2}, 47: {0, 0},
		}
		if len(got) != len(want) {
			t.Fatalf("v%d: advertised %v, want %v", v, got, want)
		}
		for k, r := range want {
			if got[k] != r {
				t.Fatalf("v%d: key %d advertised %v, want %v", v, k, got[k], r)
			}
		}
	}

	// A bad client software name is INVALID_REQUEST (v3+).
	bad := kmsg.NewPtrApiVersionsRequest()
	bad.Version = 3
	bad.ClientSoftwareName, bad.ClientSoftwareVersion = "-bad-", "1"
	if resp := roundTrip[*kmsg.ApiVersionsResponse](c, bad, 9); resp.ErrorCode != errInvalidRequest {
		t.Fatalf("bad software name: error %d", resp.ErrorCode)
	}

	// Version 99: a header we cannot parse past the client id, answered
	// in version 0.
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, apiVersionsKey)
	b = binary.BigEndian.AppendUint16(b, 99)
	b = binary.BigEndian.AppendUint32(b, 1234)
	b = binary.BigEndian.AppendUint16(b, 0xffff) // null client id
	b = append(b, 0xde, 0xad, 0xbe, 0xef)        // whatever v99 has
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	c.write(b)
	v0 := kmsg.NewPtrApiVersionsRequest()
	v0.Version = 0
	resp := readResponse[*kmsg.ApiVersionsResponse](c, v0, 1234)
	if resp.ErrorCode != errUnsupportedVersion || len(resp.ApiKeys) != 1 || resp.ApiKeys[0].ApiKey != apiVersionsKey ||
		resp.ApiKeys[0].MinVersion != 0 || resp.ApiKeys[0].MaxVersion != 3 {
		t.Fatalf("v99: %+v", resp)
	}
	// The connection goes on.
	roundTrip[*kmsg.ApiVersionsResponse](c, kmsg.NewPtrApiVersionsRequest(), 5)
}

// TestUnsupportedRequests checks that keys and versions not served close
// the connection, as Kafka does, Produce v0-2 included.
func TestUnsupportedRequests(t *testing.T) {
	e := newEnv(t, envOptions{})
	produce := kmsg.NewPtrProduceRequest()
	produce.Version = 2
	produce.Acks = 1
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version = 10
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 13
	for _, req := range []kmsg.Request{produce, join, fetch} {
		c := e.dial()
		c.write(frame(req, 1))
		c.expectClosed()
	}
	// An unknown key.
	c := e.dial()
	b := binary.BigEndian.AppendUint32(nil, 10)
	b = binary.BigEndian.AppendUint16(b, 9999)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, 0xffff)
	c.write(b)
	c.expectClosed()
}

// TestHostileFrames sends size prefixes out of range: the connection closes
// and nothing close to the claimed size is allocated.
func TestHostileFrames(t *testing.T) {
	e := newEnv(t, envOptions{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, size := range []uint32{1<<31 - 1, 0xffffffff, 0x80000000, DefaultMaxRequestBytes + 1, 0, 3, 9} {
		c := e.dial()
		c.write(binary.BigEndian.AppendUint32(nil, size))
		c.expectClosed()
	}
	// A size within the limit with few bytes behind it costs what arrived,
	// not what was claimed.
	c := e.dial()
	b := binary.BigEndian.AppendUint32(nil, DefaultMaxRequestBytes)
	b = append(b, make([]byte, 1000)...)
	c.write(b)
	c.nc.Close()
	// Wait until the server is done with that connection.
	c = e.dial()
	roundTrip[*kmsg.ApiVersionsResponse](c, kmsg.NewPtrApiVersionsRequest(), 1)
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("allocated %d MiB for hostile frames", grew>>20)
	}
}

// TestGarbageRequests sends damaged and random bodies under every served
// key and version: each gets an answer or a closed connection, never a
// panic (the test logger fails the test on one).
//
// Flexible versions are only cut short, never given random bytes: kmsg
// loops over a tagged-field count without checking it against the bytes
// left, so a random count costs up to 2^32 empty iterations (seconds to
// minutes of CPU) before the decode fails. See the comment on
// conn.decode.
func TestGarbageRequests(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createTopic("t", commitlog.TopicConfig{Partitions: 2})
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	keys := make([]int16, 0, len(e.srv.handlers))
	for k := range e.srv.handlers {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	// Valid requests to start from; other keys start from their empty
	// request.
	valid := map[int16]func() kmsg.Request{
		0: func() kmsg.Request {
			r := kmsg.NewPtrProduceRequest()
			r.Acks = -1
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "t"
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Records = appendBatch(t, "a", "b")
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		},
		1: func() kmsg.Request {
			r := kmsg.NewPtrFetchRequest()
			r.SessionEpoch = -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "t"
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes = 1 << 20
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		},
		3: func() kmsg.Request {
			r := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr("t")
			r.Topics = append(r.Topics, rt)
			return r
		},
	}
	for i := range 500 {
		key := keys[rng.IntN(len(keys))]
		h := e.srv.handlers[key]
		version := h.min + int16(rng.IntN(int(h.max-h.min)+1))
		var req kmsg.Request
		if mk, ok := valid[key]; ok {
			req = mk()
		} else {
			req = kmsg.RequestForKey(key)
		}
		req.SetVersion(version)
		body := req.AppendTo(nil)
		switch n := rng.IntN(4); {
		case n == 0 || req.IsFlexible():
			body = body[:rng.IntN(len(body)+1)]
		case n == 1:
			body = make([]byte, rng.IntN(64))
			for j := range body {
				body[j] = byte(rng.IntN(256))
			}
		default:
			for range 1 + rng.IntN(4) {
				if len(body) > 0 {
					body[rng.IntN(len(body))] ^= byte(1 + rng.IntN(255))
				}
			}
		}
		f := binary.BigEndian.AppendUint32(nil, 0)
		f = binary.BigEndian.AppendUint16(f, uint16(key))
		f = binary.BigEndian.AppendUint16(f, uint16(version))
		f = binary.BigEndian.AppendUint32(f, uint32(i))
		f = binary.BigEndian.AppendUint16(f, 0xffff)
		if req.IsFlexible() {
			f = append(f, 0)
		}
		f = append(f, body...)
		binary.BigEndian.PutUint32(f, uint32(len(f)-4))

		// An ApiVersions behind it makes every outcome answer something:
		// its response, the damaged request's (before it) or a closed
		// connection; an acks=0 Produce answers nothing.
		c := e.dial()
		c.write(append(f, frame(kmsg.NewPtrApiVersionsRequest(), 1<<30)...))
		if buf, err := c.readFrame(); err == nil {
			if got := int32(binary.BigEndian.Uint32(buf)); got != int32(i) && got != 1<<30 {
				t.Fatalf("request %d (key %d v%d): response correlation id %d", i, key, version, got)
			}
		}
		c.nc.Close()
	}
	// The server still serves.
	roundTrip[*kmsg.ApiVersionsResponse](e.dial(), kmsg.NewPtrApiVersionsRequest(), 1)
}

// TestPipelining sends many requests in one write, an acks=0 Produce among
// them: the answers come in order, and none for the acks=0 one.
func TestPipelining(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createTopic("pipe", commitlog.TopicConfig{})
	c := e.dial()

	produce := func(acks int16) kmsg.Request {
		r := kmsg.NewPtrProduceRequest()
		r.Version = 9
		r.Acks = acks
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "pipe"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = appendBatch(t, "x")
		rt.Partitions = append(rt.Partitions, rp)
		r.Topics = append(r.Topics, rt)
		return r
	}
	metadata := kmsg.NewPtrMetadataRequest()
	metadata.Version = 1
	reqs := []kmsg.Request{
		kmsg.NewPtrApiVersionsRequest(), produce(1), metadata, produce(0), produce(-1),
		kmsg.NewPtrApiVersionsRequest(), produce(1), kmsg.NewPtrDescribeClusterRequest(),
	}
	var all []byte
	for i, r := range reqs {
		all = append(all, frame(r, int32(100+i))...)
	}
	c.write(all)
	var offsets []int64
	for i, r := range reqs {
		if p, ok := r.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
			continue
		}
		resp := readResponse[kmsg.Response](c, r, int32(100+i))
		if p, ok := resp.(*kmsg.ProduceResponse); ok {
			part := p.Topics[0].Partitions[0]
			if part.ErrorCode != 0 {
				t.Fatalf("produce %d: error %d", i, part.ErrorCode)
			}
			offsets = append(offsets, part.BaseOffset)
		}
	}
	// The acks=0 batch took offset 1 in between.
	if !slices.Equal(offsets, []int64{0, 2, 3}) {
		t.Fatalf("base offsets %v, want [0 2 3]", offsets)
	}
}

// TestProduceErrors checks per-partition errors of raw Produce requests.
func TestProduceErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createTopic("p", commitlog.TopicConfig{MaxMessageBytes: 2048})
	c := e.dial()
	good := appendBatch(t, "ok")
	corrupt := appendBatch(t, "crc")
	corrupt[len(corrupt)-1] ^= 0xff
	two := append(appendBatch(t, "one"), appendBatch(t, "two")...)
	big := appendBatch(t, string(make([]byte, 4096)))
	badMagic := appendBatch(t, "magic")
	badMagic[16] = 1

	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	req.Acks = 1
	cases := []struct {
		topic   string
		part    int32
		records []byte
		want    int16
	}{
		{"p", 0, good, 0},
		{"p", 0, corrupt, errCorruptMessage},
		{"p", 0, two, errInvalidRecord},
		{"p", 0, big, errMessageTooLarge},
		{"p", 0, badMagic, errInvalidRecord},
		{"p", 0, nil, errInvalidRecord},
		{"p", 1, good, errUnknownTopicOrPartition},
		{"nope", 0, good, errUnknownTopicOrPartition},
	}
	for _, cs := range cases {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = cs.topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = cs.part
		rp.Records = cs.records
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	resp := roundTrip[*kmsg.ProduceResponse](c, req, 1)
	for i, cs := range cases {
		if got := resp.Topics[i].Partitions[0].ErrorCode; got != cs.want {
			t.Errorf("case %d (%s/%d): error %d, want %d", i, cs.topic, cs.part, got, cs.want)
		}
	}
	req.Acks = 2
	resp = roundTrip[*kmsg.ProduceResponse](c, req, 2)
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != errInvalidRequiredAcks {
		t.Fatalf("acks=2: error %d", got)
	}
	// acks=0 with an error closes the connection.
	req.Acks = 0
	c.write(frame(req, 3))
	c.expectClosed()
}

// TestShutdown checks that Shutdown answers a waiting Fetch at once, closes
// idle connections and ends every goroutine the server and the broker
// started.
func TestShutdown(t *testing.T) {
	baseline := runtime.NumGoroutine()
	func() {
		e := newEnv(t, envOptions{})
		e.createTopic("s", commitlog.TopicConfig{})
		e.createTopic("empty", commitlog.TopicConfig{})
		ctx := testContext(t)
		cl := e.client(kgo.ConsumeTopics("s"))
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "s", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if fs := cl.PollFetches(ctx); fs.NumRecords() != 1 {
			t.Fatalf("polled %d records", fs.NumRecords())
		}
		idle := e.dial()

		// A fetch that would wait an hour.
		waiting := e.dial()
		fetch := kmsg.NewPtrFetchRequest()
		fetch.Version = 12
		fetch.MaxWaitMillis = int32(time.Hour / time.Millisecond)
		fetch.MinBytes = 1
		fetch.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "empty"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		fetch.Topics = append(fetch.Topics, rt)
		waiting.write(frame(fetch, 77))
		cl.Close()
		// Shut down only once the fetch is being served (waiting for data),
		// since a request still unread when Shutdown begins is not answered.
		waitBusy(t, e.srv, waiting.nc.LocalAddr().String())

		shutdownDone := make(chan error, 1)
		go func() {
			sctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			shutdownDone <- e.srv.Shutdown(sctx)
		}()
		resp := readResponse[*kmsg.FetchResponse](waiting, fetch, 77)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
			t.Fatalf("fetch cut short by shutdown: %+v", p)
		}
		if err := <-shutdownDone; err != nil {
			t.Fatal(err)
		}
		idle.expectClosed()
		e.stop()
	}()
	deadline := time.Now().Add(testTimeout)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// TestClose checks that Close ends connections at once, even one in the
// middle of a request.
func TestClose(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	// Half a request.
	b := frame(kmsg.NewPtrApiVersionsRequest(), 1)
	c.write(b[:len(b)-2])
	roundTrip[*kmsg.ApiVersionsResponse](e.dial(), kmsg.NewPtrApiVersionsRequest(), 1)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	if _, err := net.Dial("tcp", e.addr); err == nil {
		t.Fatal("the listener still accepts after Close")
	}
}

// waitBusy waits until the server is processing a request of the
// connection from remote.
func waitBusy(t *testing.T, s *Server, remote string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		s.mu.Lock()
		busy := false
		for c := range s.conns {
			if c.nc.RemoteAddr().String() == remote && !c.idle {
				busy = true
			}
		}
		s.mu.Unlock()
		if busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request of %s being processed", remote)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIdleTimeout checks that a connection silent for IdleTimeout closes.
func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, envOptions{server: Config{IdleTimeout: 20 * time.Millisecond}})
	c := e.dial()
	roundTrip[*kmsg.ApiVersionsResponse](c, kmsg.NewPtrApiVersionsRequest(), 1)
	c.expectClosed()
}

// TestListenAndServe checks ListenAndServe, Addr, and that serving after
// Shutdown fails.
func TestListenAndServe(t *testing.T) {
	b, err := commitlog.Open(t.TempDir(), commitlog.Options{SyncPolicy: commitlog.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv, err := NewServer(b, Config{Addr: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != nil {
		t.Fatal("Addr before serving")
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	deadline := time.Now().Add(testTimeout)
	for srv.Addr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no address")
		}
		time.Sleep(time.Millisecond)
	}
	e := &testEnv{t: t, addr: srv.Addr().String()}
	roundTrip[*kmsg.ApiVersionsResponse](e.dial(), kmsg.NewPtrApiVersionsRequest(), 1)
	if err := srv.Shutdown(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	if err := srv.ListenAndServe(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe after Shutdown: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	b, err := commitlog.Open(t.TempDir(), commitlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, cfg := range []Config{{NodeID: -1}, {AdvertisedPort: 70000}, {MaxRequestBytes: 10}} {
		if _, err := NewServer(b, cfg); err == nil {
			t.Errorf("NewServer(%+v): no error", cfg)
		}
	}
	if _, err := NewServer(nil, Config{}); err == nil {
		t.Error("NewServer(nil): no error")
	}
}
