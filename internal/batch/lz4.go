package batch

import (
	"encoding/binary"
	"fmt"

	"github.com/pierrec/lz4/v4"
)

// LZ4 frame format (https://github.com/lz4/lz4/blob/dev/doc/lz4_Frame_format.md),
// little-endian:
//
//	magic        uint32  0x184D2204 (0x184D2A50-5F: skippable frame, uint32 size, data)
//	FLG          byte    version 01 (bits 7-6), block independence 0x20,
//	                     block checksum 0x10, content size 0x08,
//	                     content checksum 0x04, reserved 0x02, dictID 0x01
//	BD           byte    block max size in bits 6-4: 4=64K 5=256K 6=1M 7=4M
//	contentSize  uint64  if FLG 0x08 (ignored: never trusted)
//	dictID       uint32  if FLG 0x01 (unsupported)
//	HC           byte    header checksum
//	blocks       uint32 size (high bit: stored uncompressed), data,
//	             uint32 checksum if FLG 0x10; a zero size ends the frame
//	checksum     uint32  if FLG 0x04
//
// The frames are decoded here, block by block straight into the output
// buffer, rather than with lz4.Reader: that keeps every allocation under the
// caller's limit, lets linked blocks use the output itself as their
// dictionary, and avoids lz4.Reader carrying a previous stream's dictionary
// across Reset into the next one. The xxHash32 checksums are skipped: the
// batch CRC-32C already covers every compressed byte. Frames are written with
// lz4.Writer.

const (
	lz4Magic          = 0x184D2204
	lz4SkippableMagic = 0x184D2A50 // low 4 bits free
	lz4MaxOffset      = 64 << 10   // how far back a match can reach
)

func lz4Corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: lz4: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// lz4Decode appends the decoding of the LZ4 frames in src to dst, failing
// with ErrTooLarge once the output would pass limit bytes.
func lz4Decode(dst, src []byte, limit int) ([]byte, error) {
	le := binary.LittleEndian
	p := 0
	for frames := 0; frames == 0 || p < len(src); frames++ {
		if len(src)-p < 4 {
			return dst, lz4Corrupt("frame magic truncated")
		}
		magic := le.Uint32(src[p:])
		p += 4
		if magic&^0xF == lz4SkippableMagic {
			if len(src)-p < 4 {
				return dst, lz4Corrupt("skippable frame size truncated")
			}
			n := le.Uint32(src[p:])
			p += 4
			if uint64(n) > uint64(len(src)-p) {
				return dst, lz4Corrupt("skippable frame of %d bytes, %d left", n, len(src)-p)
			}
			p += int(n)
			continue
		}
		if magic != lz4Magic {
			return dst, lz4Corrupt("bad frame magic %#08x", magic)
		}
		if len(src)-p < 3 {
			return dst, lz4Corrupt("frame descriptor truncated")
		}
		flg, bd := src[p], src[p+1]
		p += 2
		if flg>>6 != 1 || flg&0x02 != 0 || bd&0x8F != 0 {
			return dst, lz4Corrupt("unsupported frame descriptor %#02x %#02x", flg, bd)
		}
		if flg&0x01 != 0 {
			return dst, lz4Corrupt("dictionaries are not supported")
		}
		id := bd >> 4 & 7
		if id < 4 {
			return dst, lz4Corrupt("bad block size id %d", id)
		}
		blockMax := 1 << (8 + 2*id) // 4: 64 KiB ... 7: 4 MiB
		extra := 1                  // header checksum
		if flg&0x08 != 0 {
			extra += 8 // content size
		}
		if len(src)-p < extra {
			return dst, lz4Corrupt("frame descriptor truncated")
		}
		p += extra
		linked := flg&0x20 == 0
		blockChecksum := 0
		if flg&0x10 != 0 {
			blockChecksum = 4
		}
		frameStart := len(dst)
		for {
			if len(src)-p < 4 {
				return dst, lz4Corrupt("block size truncated")
			}
			bs := le.Uint32(src[p:])
			p += 4
			if bs == 0 {
				break // end mark
			}
			n := int(bs & 0x7fffffff)
			if n > blockMax || n > len(src)-p-blockChecksum {
				return dst, lz4Corrupt("block of %d bytes (max %d, %d left)", n, blockMax, len(src)-p)
			}
			block := src[p : p+n]
			p += n + blockChecksum
			if bs&0x80000000 != 0 { // stored uncompressed
				if n > limit-len(dst) {
					return dst, fmt.Errorf("%w: decompressed records exceed %d bytes", ErrTooLarge, limit)
				}
				dst = append(growCapped(dst, n, limit), block...)
				continue
			}
			// A block decodes to at most blockMax bytes; offer no more
			// room than the limit leaves (plus one byte, to tell "too
			// large" from "exactly at the limit").
			room := min(blockMax, limit+1-len(dst))
			dst = growCapped(dst, room, limit+1)
			var dict []byte
			if linked {
				dict = dst[max(frameStart, len(dst)-lz4MaxOffset):]
			}
			start := len(dst)
			m, err := lz4.UncompressBlockWithDict(block, dst[start:start+room], dict)
			if err != nil {
				if room < blockMax {
					return dst, fmt.Errorf("%w: lz4 block does not fit the %d bytes left under the limit, or is corrupt", ErrTooLarge, limit-len(dst))
				}
				return dst, lz4Corrupt("%v", err)
			}
			if m > limit-len(dst) {
				return dst, fmt.Errorf("%w: decompressed records exceed %d bytes", ErrTooLarge, limit)
			}
			dst = dst[:start+m]
		}
		if flg&0x04 != 0 {
			if len(src)-p < 4 {
				return dst, lz4Corrupt("content checksum truncated")
			}
			p += 4
		}
	}
	return dst, nil
}
