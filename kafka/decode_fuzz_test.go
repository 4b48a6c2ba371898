package kafka

import (
	"encoding/binary"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
)

// FuzzDecodeRequest feeds arbitrary request frames (after the size
// prefix) to the request decoder: it must answer with a request or an
// error, never panic, and never allocate from a length it has not checked.
//
// Flexible versions are fuzzed only with inputs whose varints are short:
// kmsg reads the count of tagged fields without bounding it by the bytes
// left, so a five-byte count loops billions of times before failing
// (documented at conn.decode); that is a slow decode, not a crash, and
// would make the fuzzer report hangs.
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
		key := int16(binary.BigEndian.Uint16(buf))
		version := int16(binary.BigEndian.Uint16(buf[2:]))
		if req := kmsg.RequestForKey(key); req != nil {
			req.SetVersion(version)
			if req.IsFlexible() && longVarint(buf) {
				return
			}
		}
		r, err := c.decode(buf)
		if err == nil && r == nil {
			t.Fatal("no request and no error")
		}
	})
}

// longVarint reports whether b holds three bytes in a row with the
// continuation bit set: a varint of more than 21 bits.
func longVarint(b []byte) bool {
	run := 0
	for _, x := range b {
		if x >= 0x80 {
			run++
			if run >= 3 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}
