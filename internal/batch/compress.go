package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec is a batch compression codec, bits 0-2 of the attributes.
type Codec int8

// The codecs Kafka defines.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

var codecNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

// String returns the codec's Kafka name ("none", "gzip", ...).
func (c Codec) String() string {
	if c.Valid() {
		return codecNames[c]
	}
	return "codec(" + strconv.Itoa(int(c)) + ")"
}

// Valid reports whether c is one of the codecs Kafka defines.
func (c Codec) Valid() bool { return c >= CodecNone && c <= CodecZstd }

// Decompression limits that do not depend on the caller.
const (
	// zstdMinWindow is the window every zstd decoder should accept (RFC 8878
	// recommends supporting 8 MiB); windows up to the caller's limit are
	// accepted too, up to zstdMaxWindow (libzstd's default cap, 2^27).
	zstdMinWindow = 8 << 20
	zstdMaxWindow = 128 << 20
	// snappyMaxRatio bounds how much a snappy block can expand: the densest
	// element, a 3-byte copy, yields 64 bytes. A block whose header claims
	// more than this is rejected before anything is allocated for it.
	snappyMaxRatio = 22
	// maxDecompressed caps any caller limit so limit+1 cannot overflow,
	// even with a 32-bit int.
	maxDecompressed = math.MaxInt32 - 1
	// readChunk is the smallest step by which the output buffer grows.
	readChunk = 32 << 10
)

// xerialMagic opens a xerial-framed snappy stream; 8 bytes of version
// information follow, then blocks of (uint32 big-endian size, raw snappy).
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16

// xerialBlockSize is the uncompressed block size xerial.Encode uses.
const xerialBlockSize = 32 << 10

// appender is an io.Writer that appends to b.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

type gzipEncoder struct {
	out appender
	w   *gzip.Writer
}

type lz4Encoder struct {
	out appender
	w   *lz4.Writer
}

var (
	gzipEncoders = sync.Pool{New: func() any {
		e := &gzipEncoder{}
		// DefaultCompression is a valid level: no error possible.
		e.w, _ = gzip.NewWriterLevel(&e.out, gzip.DefaultCompression)
		return e
	}}
	lz4Encoders = sync.Pool{New: func() any {
		e := &lz4Encoder{}
		e.w = lz4.NewWriter(&e.out)
		// Like Kafka's Java client: 64 KiB independent blocks, no content
		// checksum (older Java readers do not verify it).
		_ = e.w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false), lz4.ConcurrencyOption(1))
		return e
	}}
	zstdEncoders = sync.Pool{New: func() any {
		// These options are all valid: no error possible.
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
		return e
	}}
)

// compress appends src compressed with codec c to dst.
func compress(dst []byte, c Codec, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		e := gzipEncoders.Get().(*gzipEncoder)
		defer gzipEncoders.Put(e)
		return compressStream(dst, &e.out, e.w, src, "gzip")
	case CodecSnappy:
		return snappyEncode(dst, src), nil
	case CodecLZ4:
		e := lz4Encoders.Get().(*lz4Encoder)
		defer lz4Encoders.Put(e)
		return compressStream(dst, &e.out, e.w, src, "lz4")
	case CodecZstd:
		e := zstdEncoders.Get().(*zstd.Encoder)
		dst = e.EncodeAll(src, dst)
		zstdEncoders.Put(e)
		return dst, nil
	}
	return dst, fmt.Errorf("%w: %d", ErrUnknownCodec, int8(c))
}

// streamWriter is a pooled streaming compressor (gzip, lz4).
type streamWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// compressStream appends src compressed by w to dst, through out, which w
// writes to; out is left empty so the pooled encoder keeps no reference.
func compressStream(dst []byte, out *appender, w streamWriter, src []byte, name string) ([]byte, error) {
	out.b = dst
	w.Reset(out)
	_, err := w.Write(src)
	if err == nil {
		err = w.Close()
	}
	dst, out.b = out.b, nil
	if err != nil {
		return dst, fmt.Errorf("batch: %s: %w", name, err)
	}
	return dst, nil
}

// snappyEncode appends src in xerial framing, as the Java client writes it.
// It reserves the worst case first so xerial.Encode writes in place.
func snappyEncode(dst, src []byte) []byte {
	need := xerialHeaderSize
	for n := len(src); n > 0; n -= xerialBlockSize {
		need += s2.MaxEncodedLen(min(n, xerialBlockSize)) + 4
	}
	dst = slices.Grow(dst, need)
	start := len(dst)
	out := xerial.Encode(dst[start:start], src)
	if len(out) > 0 && cap(dst) > start && &out[0] == &dst[:start+1][start] {
		return dst[:start+len(out)]
	}
	return append(dst, out...)
}

// decompressor holds the pooled streaming decoders (gzip, zstd; snappy and
// lz4 decode block by block without state). src is the reader the codec
// reads from; it points at the caller's bytes only during one call.
type decompressor struct {
	src  bytes.Reader
	gzip gzip.Reader
	zstd *zstd.Decoder
	// zstdWindow is the window limit zstd was last configured with.
	zstdWindow uint64
}

var decompressors [CodecZstd + 1]sync.Pool

// decompress decompresses src (compressed with codec c) into dst's storage,
// returning the result. It fails with ErrTooLarge as soon as the output
// would exceed limit bytes, and with ErrCorrupt on undecodable input.
func decompress(dst []byte, c Codec, src []byte, limit int) ([]byte, error) {
	limit = max(0, min(limit, maxDecompressed))
	switch c {
	case CodecSnappy:
		return snappyDecode(dst[:0], src, limit)
	case CodecLZ4:
		return lz4Decode(dst[:0], src, limit)
	}
	if !c.Valid() || c == CodecNone {
		return dst[:0], fmt.Errorf("%w: cannot decompress codec %d", ErrUnknownCodec, int8(c))
	}
	d, _ := decompressors[c].Get().(*decompressor)
	if d == nil {
		d = &decompressor{}
	}
	defer func() {
		d.src.Reset(nil) // drop the reference to the caller's bytes
		decompressors[c].Put(d)
	}()
	d.src.Reset(src)

	var r io.Reader
	switch c {
	case CodecGzip:
		if err := d.gzip.Reset(&d.src); err != nil {
			return dst[:0], codecError(c, err)
		}
		r = &d.gzip
	case CodecZstd:
		window := uint64(max(zstdMinWindow, min(limit, zstdMaxWindow)))
		if d.zstd == nil {
			z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxWindow(window), zstd.WithDecoderMaxMemory(window))
			if err != nil {
				return dst[:0], fmt.Errorf("batch: zstd: %w", err)
			}
			d.zstd, d.zstdWindow = z, window
		}
		var err error
		if d.zstdWindow != window {
			err = d.zstd.ResetWithOptions(&d.src, zstd.WithDecoderMaxWindow(window), zstd.WithDecoderMaxMemory(window))
			d.zstdWindow = window
		} else {
			err = d.zstd.Reset(&d.src)
		}
		if err != nil {
			return dst[:0], codecError(c, err)
		}
		r = d.zstd
	}
	out, err := readCapped(r, dst[:0], limit, 2*len(src))
	if err != nil {
		return out, codecError(c, err)
	}
	return out, nil
}

// errNoProgress is returned by readCapped when a reader keeps returning
// nothing.
var errNoProgress = errors.New("reader makes no progress")

// readCapped reads r to EOF into dst's storage and fails with ErrTooLarge as
// soon as more than limit bytes come out. The buffer grows geometrically
// from hint and never beyond limit+1 bytes, whatever the stream claims.
func readCapped(r io.Reader, dst []byte, limit, hint int) ([]byte, error) {
	stalls := 0
	for {
		if len(dst) == cap(dst) {
			dst = growCapped(dst, min(max(cap(dst), hint, readChunk), limit+1-len(dst)), limit+1)
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), limit+1)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst[:0], fmt.Errorf("%w: decompressed records exceed %d bytes", ErrTooLarge, limit)
		}
		switch {
		case err == io.EOF:
			return dst, nil
		case err != nil:
			return dst[:0], err
		case n == 0:
			if stalls++; stalls > 100 {
				return dst[:0], errNoProgress
			}
		default:
			stalls = 0
		}
	}
}

// codecError classifies a decompression error: our own sentinels and zstd's
// memory limits are passed on or mapped to ErrTooLarge; anything else means
// the compressed data is bad.
func codecError(c Codec, err error) error {
	switch {
	case errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt):
		return err
	case errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded):
		return fmt.Errorf("%w: zstd: %v", ErrTooLarge, err)
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %s: compressed data truncated", ErrCorrupt, c)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, c, err)
}

// snappyDecode decodes xerial-framed snappy (the Java client, sarama,
// franz-go) or a raw snappy block (librdkafka), appending to dst.
func snappyDecode(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < len(xerialMagic) || !bytes.Equal(src[:len(xerialMagic)], xerialMagic) {
		return snappyBlock(dst, src, limit)
	}
	if len(src) < xerialHeaderSize {
		return dst, fmt.Errorf("%w: snappy: xerial header truncated", ErrCorrupt)
	}
	for p := xerialHeaderSize; p < len(src); {
		if len(src)-p < 4 {
			return dst, fmt.Errorf("%w: snappy: xerial block size truncated", ErrCorrupt)
		}
		n := binary.BigEndian.Uint32(src[p:])
		p += 4
		if uint64(n) > uint64(len(src)-p) {
			return dst, fmt.Errorf("%w: snappy: xerial block of %d bytes, %d left", ErrCorrupt, n, len(src)-p)
		}
		var err error
		if dst, err = snappyBlock(dst, src[p:p+int(n)], limit); err != nil {
			return dst, err
		}
		p += int(n)
	}
	return dst, nil
}

// snappyBlock appends the decoding of one raw snappy block to dst. The
// block's claimed length is checked against the format's maximum expansion
// and the remaining limit before any allocation.
func snappyBlock(dst, block []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return dst, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	if int64(n) > snappyMaxRatio*int64(len(block))+16 {
		return dst, fmt.Errorf("%w: snappy: block of %d bytes claims %d", ErrCorrupt, len(block), n)
	}
	if n > limit-len(dst) {
		return dst, fmt.Errorf("%w: decompressed records exceed %d bytes", ErrTooLarge, limit)
	}
	dst = growCapped(dst, n, limit)
	start := len(dst)
	out, err := snappy.Decode(dst[start:start+n], block)
	if err != nil {
		return dst, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	if len(out) != n {
		return dst, fmt.Errorf("%w: snappy: decoded %d bytes, header said %d", ErrCorrupt, len(out), n)
	}
	return dst[:start+n], nil
}

// growCapped makes room for at least n more bytes, at least doubling the
// capacity (so a buffer filled in small steps is copied O(log size) times)
// but aiming for no more than limit in total. slices.Grow may round the
// capacity up to an allocation size class.
func growCapped(dst []byte, n, limit int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	newCap := min(max(2*cap(dst), len(dst)+n), limit)
	newCap = max(newCap, len(dst)+n)
	return slices.Grow(dst, newCap-len(dst))
}
