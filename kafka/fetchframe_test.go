package kafka

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// kmsgFrame is the reference encoding of a response frame: size,
// correlation id, the flexible header's empty tags, and kmsg's body, the
// records copied in.
func kmsgFrame(corrID int32, resp kmsg.Response) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(corrID))
	if resp.IsFlexible() {
		b = append(b, 0)
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// firstDiff describes where two frames part.
func firstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	for i := range n {
		if got[i] != want[i] {
			return fmt.Sprintf("byte %d of %d (want %d): got %#x, want %#x", i, len(got), len(want), got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d, equal over %d", len(got), len(want), n)
}

// fillFetchTopic creates topic "f" with three partitions: 0 holds many
// small batches, 1 one batch above sendfileMinBytes, 2 nothing.
func fillFetchTopic(t testing.TB, b *commitlog.Broker) {
	t.Helper()
	tp, err := b.CreateTopic(context.Background(), "f", commitlog.TopicConfig{Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	p0, _ := tp.Partition(0)
	for i := range 200 {
		if _, err := p0.AppendBatch(appendBatch(t, fmt.Sprintf("small %d", i), strings.Repeat("x", i))); err != nil {
			t.Fatal(err)
		}
	}
	p1, _ := tp.Partition(1)
	big := make([]string, 40)
	for i := range big {
		big[i] = strings.Repeat(string(rune('a'+i%26)), 2000)
	}
	if _, err := p1.AppendBatch(appendBatch(t, big...)); err != nil {
		t.Fatal(err)
	}
}

// TestFetchFrameEncoding checks the server's Fetch framing byte for byte
// against kmsg's for every version served, with records read from the log
// and written both from their bytes and through their Slices (which copy
// into a bytes.Buffer, the fallback of a writer that is not a socket): several
// topics and partitions, records large and small, empty and null, errors,
// aborted transactions empty, null and present.
func TestFetchFrameEncoding(t *testing.T) {
	b, err := commitlog.Open(t.TempDir(), commitlog.Options{SyncPolicy: commitlog.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fillFetchTopic(t, b)
	tp, err := b.Topic("f")
	if err != nil {
		t.Fatal(err)
	}
	var slices []commitlog.Slice
	for i := range int32(3) {
		p, _ := tp.Partition(i)
		sl, err := p.Read(0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer sl.Release()
		slices = append(slices, sl)
	}
	if len(slices[0].Bytes) < sendfileMinBytes || len(slices[1].Bytes) < sendfileMinBytes || len(slices[2].Bytes) != 0 {
		t.Fatalf("slices of %d, %d and %d bytes", len(slices[0].Bytes), len(slices[1].Bytes), len(slices[2].Bytes))
	}
	small, err := tp.Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	smallSlice, err := small.Read(5, 100) // one small batch
	if err != nil {
		t.Fatal(err)
	}
	defer smallSlice.Release()

	build := func(v int16) (*kmsg.FetchResponse, map[*kmsg.FetchResponseTopicPartition]*commitlog.Slice) {
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = v
		resp.ThrottleMillis = 7
		resp.ErrorCode = 0
		resp.SessionID = 0
		from := map[*kmsg.FetchResponseTopicPartition]*commitlog.Slice{}
		part := func(id int32, records []byte, hw int64) kmsg.FetchResponseTopicPartition {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = id
			p.HighWatermark, p.LastStableOffset, p.LogStartOffset = hw, hw, 0
			p.RecordBatches = records
			return p
		}
		f := kmsg.NewFetchResponseTopic()
		f.Topic = "f"
		f.Partitions = []kmsg.FetchResponseTopicPartition{
			part(0, slices[0].Bytes, 200),
			part(1, slices[1].Bytes, 40),
			part(2, noRecords, 0),
			part(0, smallSlice.Bytes, 200),
		}
		f.Partitions[1].AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
		f.Partitions[1].PreferredReadReplica = 3
		f.Partitions[2].AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{
			{ProducerID: 11, FirstOffset: 12}, {ProducerID: -5, FirstOffset: 1 << 40},
		}
		unknown := part(9, noRecords, -1)
		unknown.ErrorCode = errUnknownTopicOrPartition
		unknown.LastStableOffset, unknown.LogStartOffset = -1, -1
		null := part(10, nil, -1)
		null.ErrorCode = errOffsetOutOfRange
		f.Partitions = append(f.Partitions, unknown, null)
		missing := kmsg.NewFetchResponseTopic()
		missing.Topic = "missing-" + strings.Repeat("m", 200)
		missing.Partitions = []kmsg.FetchResponseTopicPartition{unknown}
		none := kmsg.NewFetchResponseTopic()
		none.Topic = ""
		resp.Topics = []kmsg.FetchResponseTopic{f, missing, none}
		for i, sl := range []*commitlog.Slice{&slices[0], &slices[1], &slices[2], &smallSlice} {
			from[&resp.Topics[0].Partitions[i]] = sl
		}
		return resp, from
	}

	var frame fetchFrame
	for v := int16(4); v <= 12; v++ {
		resp, from := build(v)
		want := kmsgFrame(int32(v)*1000+1, resp)
		for _, viaSlices := range []bool{false, true} {
			sliceFor := func(p *kmsg.FetchResponseTopicPartition) *commitlog.Slice {
				if viaSlices {
					return from[p]
				}
				return nil
			}
			if err := frame.plan(int32(v)*1000+1, resp, sliceFor); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			n, err := frame.writeTo(&got)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(got.Len()) {
				t.Fatalf("v%d: writeTo reported %d bytes, wrote %d", v, n, got.Len())
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("v%d (slices %v): frame differs from kmsg's at %s", v, viaSlices, firstDiff(got.Bytes(), want))
			}
		}
		// The frame decodes to what was encoded.
		dec := kmsg.NewPtrFetchResponse()
		dec.Version = v
		body := want[8:]
		if v >= 12 {
			body = body[1:]
		}
		if err := dec.ReadFrom(body); err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if p := dec.Topics[0].Partitions[1]; !bytes.Equal(p.RecordBatches, slices[1].Bytes) {
			t.Fatalf("v%d: records of partition 1 do not decode", v)
		}
	}

	resp, _ := build(13)
	if err := frame.plan(1, resp, func(*kmsg.FetchResponseTopicPartition) *commitlog.Slice { return nil }); err == nil {
		t.Fatal("version 13 framed")
	}
}

// TestFetchZeroCopyWire sends the same Fetch requests, every version
// served, to two servers of one broker, one zero-copy and one encoding
// through kmsg (DisableZeroCopy): the frames must be identical, byte for
// byte, with records sent by sendfile, by writev from the mapping, and
// none.
func TestFetchZeroCopyWire(t *testing.T) {
	// ZeroCopyLoopback: the test runs over loopback, where sendfile is
	// otherwise not used.
	e := newEnv(t, envOptions{server: Config{ZeroCopyLoopback: true}})
	fillFetchTopic(t, e.broker)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	copySrv := e.serve(ln, Config{DisableZeroCopy: true})
	zc, copying := e.dial(), dialTo(t, ln.Addr().String())
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inlineSrv := e.serve(ln2, Config{}) // loopback default: writev from the mapping
	inline := dialTo(t, ln2.Addr().String())
	var recordBytes, fetches int64

	for v := int16(4); v <= 12; v++ {
		for _, maxBytes := range []int32{1 << 20, 100} {
			req := kmsg.NewPtrFetchRequest()
			req.Version = v
			req.MaxBytes = maxBytes
			req.SessionEpoch = -1
			req.IsolationLevel = int8(v % 2) // read_committed answers empty aborted transactions
			f := kmsg.NewFetchRequestTopic()
			f.Topic = "f"
			for _, p := range []struct {
				id     int32
				offset int64
			}{{0, 0}, {1, 0}, {2, 0}, {0, 150}, {7, 0}, {1, 99}} {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition = p.id
				rp.FetchOffset = p.offset
				rp.PartitionMaxBytes = 1 << 20
				f.Partitions = append(f.Partitions, rp)
			}
			missing := kmsg.NewFetchRequestTopic()
			missing.Topic = "missing"
			missing.Partitions = []kmsg.FetchRequestTopicPartition{kmsg.NewFetchRequestTopicPartition()}
			req.Topics = []kmsg.FetchRequestTopic{f, missing}

			corr := int32(v)*10 + maxBytes%7
			zc.write(frame(req, corr))
			copying.write(frame(req, corr))
			inline.write(frame(req, corr))
			got, err := zc.readFrame()
			if err != nil {
				t.Fatal(err)
			}
			want, err := copying.readFrame()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d max %d: zero-copy frame differs at %s", v, maxBytes, firstDiff(got, want))
			}
			gotInline, err := inline.readFrame()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gotInline, want) {
				t.Fatalf("v%d max %d: loopback (writev) frame differs at %s", v, maxBytes, firstDiff(gotInline, want))
			}
			resp := readBody[*kmsg.FetchResponse](t, req, got)
			fetches++
			for _, tr := range resp.Topics {
				for _, p := range tr.Partitions {
					recordBytes += int64(len(p.RecordBatches))
				}
			}
			ps := resp.Topics[0].Partitions
			if maxBytes == 1<<20 && (len(ps[0].RecordBatches) < sendfileMinBytes || len(ps[1].RecordBatches) < sendfileMinBytes) {
				t.Fatalf("v%d: partitions 0 and 1 answered %d and %d bytes, want both sent by sendfile", v, len(ps[0].RecordBatches), len(ps[1].RecordBatches))
			}
			if ps[4].ErrorCode != errUnknownTopicOrPartition || ps[5].ErrorCode != errOffsetOutOfRange {
				t.Fatalf("v%d: errors %d and %d", v, ps[4].ErrorCode, ps[5].ErrorCode)
			}
		}
	}

	// Stats: one more request on each connection, answered after the
	// counters of the last Fetch were added, then every record byte in
	// exactly one counter.
	for _, c := range []*rawConn{zc, copying, inline} {
		roundTrip[*kmsg.ApiVersionsResponse](c, kmsg.NewPtrApiVersionsRequest(), 1)
	}
	zcStats, copyStats, inlineStats := e.srv.Stats(), copySrv.Stats(), inlineSrv.Stats()
	for name, st := range map[string]Stats{"zero-copy": zcStats, "copying": copyStats, "loopback": inlineStats} {
		if st.FetchResponses != fetches || st.Connections != 1 {
			t.Errorf("%s: %d fetch responses on %d connections, want %d on 1", name, st.FetchResponses, st.Connections, fetches)
		}
		if sum := st.SendfileBytes + st.WritevBytes + st.CopiedBytes; sum != recordBytes {
			t.Errorf("%s: %+v adds up to %d record bytes, want %d", name, st, sum, recordBytes)
		}
	}
	if copyStats.CopiedBytes != recordBytes || inlineStats.WritevBytes != recordBytes {
		t.Errorf("copying %+v, loopback %+v: want every record byte copied and written from the mapping", copyStats, inlineStats)
	}
	if runtime.GOOS == "linux" && (zcStats.SendfileBytes == 0 || zcStats.WritevBytes == 0 || zcStats.CopiedBytes != 0) {
		t.Errorf("zero-copy %+v: want large ranges by sendfile, small ones by writev, none copied", zcStats)
	}
}

// readBody decodes a response frame read by readFrame.
func readBody[R kmsg.Response](t testing.TB, req kmsg.Request, buf []byte) R {
	t.Helper()
	buf = buf[4:]
	if req.IsFlexible() {
		buf = buf[1:]
	}
	resp := req.ResponseKind()
	if err := resp.ReadFrom(buf); err != nil {
		t.Fatalf("decoding %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp.(R)
}

// TestFetchTLS serves over TLS, where Fetch responses cannot use sendfile:
// the frame goes through a buffer, the records copied. franz-go produces
// and consumes records large enough for the zero-copy path.
func TestFetchTLS(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createTopic("secure", commitlog.TopicConfig{Partitions: 2})
	serverCfg, clientCfg := testTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := e.serve(tls.NewListener(ln, serverCfg), Config{})
	ctx := testContext(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(ln.Addr().String()), kgo.DialTLSConfig(clientCfg),
		kgo.ConsumeTopics("secure"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 64
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: "secure", Value: bytes.Repeat([]byte{byte(i)}, 4000)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", got, n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Value) != 4000 || r.Value[0] != r.Value[3999] {
				t.Fatalf("record at %d/%d: %d bytes", r.Partition, r.Offset, len(r.Value))
			}
			got++
		})
	}
	// The records were fetched: they went by copy, whatever the client
	// still has in flight. The server counts a response once its write
	// returned, which can be after the client read it: wait for that.
	st := srv.Stats()
	for st.CopiedBytes < n*4000 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
		st = srv.Stats()
	}
	if st.CopiedBytes < n*4000 || st.SendfileBytes != 0 || st.WritevBytes != 0 || st.ProduceRequests == 0 {
		t.Errorf("stats %+v: want every record byte copied", st)
	}
}

// testTLS makes a self-signed certificate for 127.0.0.1 and the configs
// of a server and a client that trusts it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "commitlog test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}
