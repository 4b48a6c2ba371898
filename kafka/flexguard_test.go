package kafka

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFlexibleLayoutMatchesKmsg checks the layout learned for every served
// flexible request version: kmsg's encoding of randomly filled requests,
// unknown tagged fields included, must walk to exactly its end, so that the
// walk checks every tag count where kmsg reads one.
func TestFlexibleLayoutMatchesKmsg(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	versions := 0
	for key, h := range (&Server{}).defaultHandlers() {
		for v := h.min; v <= h.max; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			if !req.IsFlexible() {
				continue
			}
			versions++
			lay, err := flexibleLayout(key, v)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				req := kmsg.RequestForKey(key)
				fill(rng, reflect.ValueOf(req).Elem(), 0, true)
				req.SetVersion(v)
				body := req.AppendTo(nil)
				rest, err := lay.skip(body)
				if err != nil || len(rest) != 0 {
					t.Fatalf("%s v%d, request %d: walk left %d of %d bytes, err %v", kmsg.NameForKey(key), v, i, len(rest), len(body), err)
				}
				dec := kmsg.RequestForKey(key)
				dec.SetVersion(v)
				if err := dec.ReadFrom(body); err != nil {
					t.Fatalf("%s v%d: kmsg cannot read its own encoding: %v", kmsg.NameForKey(key), v, err)
				}
			}
		}
	}
	if versions < 20 {
		t.Fatalf("only %d flexible versions served", versions)
	}
}

// fill sets the exported fields of v to random values: short strings and
// arrays, and a few unknown tagged fields in each structure.
func fill(rng *rand.Rand, v reflect.Value, depth int, top bool) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == tagsType {
			var tags kmsg.Tags
			for range rng.IntN(3) {
				val := make([]byte, rng.IntN(4))
				tags.Set(uint32(100+rng.IntN(50)), val)
			}
			v.Set(reflect.ValueOf(tags))
			return
		}
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if !sf.IsExported() || top && sf.Name == "Version" {
				continue
			}
			fill(rng, v.Field(i), depth+1, false)
		}
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(rng.Uint64()) >> (64 - v.Type().Bits()))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(rng.Uint64() >> (64 - v.Type().Bits()))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(rng.Float64())
	case reflect.String:
		v.SetString(randString(rng))
	case reflect.Array:
		for i := range v.Len() {
			v.Index(i).SetUint(uint64(rng.IntN(256)))
		}
	case reflect.Pointer:
		if v.Type().Elem().Kind() == reflect.String && rng.IntN(3) > 0 {
			s := randString(rng)
			v.Set(reflect.ValueOf(&s))
		}
	case reflect.Slice:
		if depth > 6 {
			return
		}
		n := rng.IntN(4)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			e := newDefault(v.Type().Elem())
			fill(rng, e, depth+1, false)
			s.Index(i).Set(e)
		}
		v.Set(s)
	}
}

func randString(rng *rand.Rand) string {
	b := make([]byte, rng.IntN(8))
	for i := range b {
		b[i] = byte('a' + rng.IntN(26))
	}
	return string(b)
}

// hostileRequests are tiny flexible requests whose count of tagged fields
// is far above the bytes left: unguarded, kmsg loops up to 2^32 times on
// each before failing (about ten seconds without the race detector).
var hostileRequests = map[string][]byte{
	// ApiVersions v3: two empty compact strings, then 2^32-1 tagged fields.
	"ApiVersions v3 body": {0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
	// Metadata v12: a null topic array, the two booleans, then the count.
	"Metadata v12 body": {0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	// Fetch v12 whose tagged ReplicaState (tag 1, a structure kmsg decodes
	// from the field's bytes) holds a count far above its own 17 bytes.
	"Fetch v12 tagged structure": append([]byte{0, 1, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0,
		0xff, 0xff, 0xff, 0xff, // replica id
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // max wait, min bytes, max bytes
		0,          // isolation level
		0, 0, 0, 0, // session id
		0, 0, 0, 0, // session epoch
		1,     // no topics
		1,     // no forgotten topics
		1,     // empty rack
		1,     // one tagged field
		1, 17, // tag 1, 17 bytes
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // id, epoch
	}, 0xff, 0xff, 0xff, 0xff, 0x0f),
}

// TestDecodeHostileTagCounts is the regression test for tag counts above
// the bytes left: each request is refused at once.
func TestDecodeHostileTagCounts(t *testing.T) {
	c := &conn{s: &Server{}}
	c.s.handlers = c.s.defaultHandlers()
	for name, buf := range hostileRequests {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := c.decode(buf)
			var ce *errCloseConn
			if !errors.As(err, &ce) {
				t.Fatalf("decode: %v, want the connection closed", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("refused after %v", d)
			}
			t.Log(err)
		})
	}
}

// TestHostileTagCountClosesConnection sends one over a connection: the
// server closes it at once, and serves other connections meanwhile.
func TestHostileTagCountClosesConnection(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := e.dial()
	body := hostileRequests["ApiVersions v3 body"]
	rc.write(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
	rc.write(body)
	if _, err := rc.readFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v, want the connection closed", err)
	}
	other := e.dial()
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "raw", "1"
	other.write(frame(req, 1))
	if _, err := other.readFrame(); err != nil {
		t.Fatal(err)
	}
}

func TestFlexUvarintMatchesKmsg(t *testing.T) {
	for _, in := range [][]byte{
		{0}, {0x7f}, {0x80, 1}, {0xff, 0xff, 0xff, 0xff, 0x0f}, {0xff, 0xff, 0xff, 0xff, 0x10},
		{0x80}, {}, {0xff, 0xff, 0xff, 0xff}, {0x81, 0x80, 0x80, 0x80, 0x01},
	} {
		got, rest, err := flexUvarint(in)
		// kmsg's reader, through a compact string: length u-1.
		want, n := binary.Uvarint(in)
		if n > 5 || n > 0 && want > 0xffffffff {
			n = -1
		}
		switch {
		case n <= 0 && err == nil:
			t.Errorf("%x: read %d, want an error", in, got)
		case n > 0 && (err != nil || uint64(got) != want || len(rest) != len(in)-n):
			t.Errorf("%x: read %d, %v, want %d", in, got, err, want)
		}
	}
}
