package kafka

import (
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// FuzzDecodeRequest feeds arbitrary request frames (after the size
// prefix) to the request decoder: it must answer with a request or an
// error, never panic, never allocate from a length it has not checked, and
// never loop on a count of tagged fields above the bytes left (checkFlexible
// refuses those; hostileRequests seeds such inputs).
func FuzzDecodeRequest(f *testing.F) {
	for _, req := range []kmsg.Request{
		kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrMetadataRequest(), kmsg.NewPtrProduceRequest(),
		kmsg.NewPtrFetchRequest(), kmsg.NewPtrJoinGroupRequest(), kmsg.NewPtrOffsetCommitRequest(),
	} {
		for _, v := range []int16{0, 3, 9} {
			req.SetVersion(v)
			f.Add(frame(req, 7)[4:])
		}
	}
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff})
	f.Add([]byte{0, 1, 0, 12, 0, 0, 0, 1, 0, 0, 0})
	for _, buf := range hostileRequests {
		f.Add(buf)
	}
	b, err := commitlog.Open(f.TempDir(), commitlog.Options{SyncPolicy: commitlog.SyncNone})
	if err != nil {
		f.Fatal(err)
	}
	defer b.Close()
	srv, err := NewServer(b, Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	c := &conn{s: srv} // decode needs only the server, which never serves here
	f.Fuzz(func(t *testing.T, buf []byte) {
		if len(buf) < requestHeaderMin {
			return
		}
		r, err := c.decode(buf)
		if err == nil && r == nil {
			t.Fatal("no request and no error")
		}
	})
}
