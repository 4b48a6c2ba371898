package kafka

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/internal/invariants"
)

// Fetch responses are the one response the server frames itself instead of
// having kmsg encode it, so that record batches go from the segment files
// to the socket without being copied through user space (sendfile(2)), as
// Kafka's FileRecords.writeTo does.
//
// A frame is planned before any byte is written: the fields around the
// records, encoded into one buffer, and the places in it where each
// partition's records go. The frame's size, which counts the record bytes,
// is then known, and the frame is written in order: runs of the buffer and
// record ranges below sendfileMinBytes, straight from the log's mapping,
// gathered into one writev (net.Buffers); record ranges from
// sendfileMinBytes up with Slice.WriteTo, a sendfile from the segment file.
// A connection that is not a socket (TLS) writes the same plan through a
// bufio.Writer, Slice.WriteTo then copying.
//
// The layout follows kmsg's FetchResponse.AppendTo field for field, for the
// versions served (4-12); big-endian integers:
//
//	size int32 | correlation id int32 | [v12: header tags]
//	throttle ms int32 | [v7+: error code int16 | session id int32]
//	topics array of:
//	  topic string
//	  partitions array of:
//	    partition int32 | error code int16 | high watermark int64
//	    last stable offset int64 | [v5+: log start offset int64]
//	    aborted transactions nullable array of:
//	      producer id int64 | first offset int64 | [v12: tags]
//	    [v11+: preferred read replica int32]
//	    records nullable bytes
//	    [v12: partition tags]
//	  [v12: topic tags]
//	[v12: response tags]
//
// Below version 12 an array length is an int32 (-1 for null), a string an
// int16 length and its bytes, records an int32 length (-1 null) and the
// batches. Version 12 is flexible (KIP-482): lengths are unsigned varints
// of the length + 1 (0 for null), and each structure ends with its tagged
// fields, a varint count; the server sets none (the partitions'
// DivergingEpoch, CurrentLeader and SnapshotID stay at their defaults, and
// there are no Brokers), so each is a 0. Builds with the invariants tag
// check that.

// sendfileMinBytes is the smallest record range sent with sendfile; smaller
// ranges go in the writev of the bytes around them, which costs one copy in
// the kernel but no system call of their own. On loopback (BenchmarkFetch,
// 16 partitions of 8 KiB) one writev is about five times faster than a
// sendfile per range. Loopback flatters writev even for large ranges, since
// the receiver copies every byte anyway; sendfile's gain, no copy at all by
// the sender's CPU, comes with a real network card.
const sendfileMinBytes = 32 << 10

// fetchResponse is a Fetch answer whose partitions' RecordBatches alias
// the log's mapping: the connection writes it with writeFetch.
type fetchResponse struct {
	*kmsg.FetchResponse
	// parts are the partitions read, in response order, with their
	// slices (released once the response is written).
	parts []*fetchPart
}

// recordsCut is where one partition's records go in a planned frame.
type recordsCut struct {
	at    int              // the records follow head[:at]
	bytes []byte           // the records
	slice *commitlog.Slice // where they come from, for sendfile; may be nil
}

// fetchFrame is the plan of one Fetch response frame. Its buffers are
// reused from response to response.
type fetchFrame struct {
	head []byte       // the frame without the records
	cuts []recordsCut // in frame order
	iov  net.Buffers  // scratch for the writev
	// inline sends every record range from the mapping in the writev, with
	// no sendfile: set for loopback peers (see conn.loopback).
	inline bool
	// Record bytes written by the last writeTo: by sendfile, from the
	// mapping in a writev (or the Write of a writer that is not a socket),
	// and copied by Slice.SendTo where sendfile was not possible.
	sentZeroCopy, sentMapped, sentCopied int64
}

// plan encodes resp's frame, the records left out. sliceFor returns the
// Slice that a partition's records come from, or nil to write them from
// their bytes; it is called in response order.
func (f *fetchFrame) plan(corrID int32, resp *kmsg.FetchResponse, sliceFor func(p *kmsg.FetchResponseTopicPartition) *commitlog.Slice) error {
	v := resp.Version
	if v < 4 || v > 12 {
		return fmt.Errorf("kafka: fetch response version %d not framed by the server", v)
	}
	flexible := v >= 12
	b := f.head[:0]
	f.cuts = f.cuts[:0]
	records := 0

	b = append(b, 0, 0, 0, 0) // size, set below
	b = binary.BigEndian.AppendUint32(b, uint32(corrID))
	if flexible {
		b = append(b, 0) // response header tags
	}
	b = appendInt32(b, resp.ThrottleMillis)
	if v >= 7 {
		b = appendInt16(b, resp.ErrorCode)
		b = appendInt32(b, resp.SessionID)
	}
	b = appendArrayLen(b, len(resp.Topics), false, flexible)
	for ti := range resp.Topics {
		t := &resp.Topics[ti]
		b = appendString(b, t.Topic, flexible)
		b = appendArrayLen(b, len(t.Partitions), false, flexible)
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			b = appendInt32(b, p.Partition)
			b = appendInt16(b, p.ErrorCode)
			b = appendInt64(b, p.HighWatermark)
			b = appendInt64(b, p.LastStableOffset)
			if v >= 5 {
				b = appendInt64(b, p.LogStartOffset)
			}
			b = appendArrayLen(b, len(p.AbortedTransactions), p.AbortedTransactions == nil, flexible)
			for _, a := range p.AbortedTransactions {
				b = appendInt64(b, a.ProducerID)
				b = appendInt64(b, a.FirstOffset)
				if flexible {
					b = append(b, 0)
				}
			}
			if v >= 11 {
				b = appendInt32(b, p.PreferredReadReplica)
			}
			n := len(p.RecordBatches)
			switch {
			case p.RecordBatches == nil && flexible:
				b = append(b, 0)
			case p.RecordBatches == nil:
				b = appendInt32(b, -1)
			case flexible:
				b = binary.AppendUvarint(b, uint64(n)+1)
			default:
				b = appendInt32(b, int32(n))
			}
			if n > 0 {
				f.cuts = append(f.cuts, recordsCut{at: len(b), bytes: p.RecordBatches, slice: sliceFor(p)})
				records += n
			}
			if flexible {
				if invariants.Enabled {
					checkNoPartitionTags(p)
				}
				b = append(b, 0)
			}
		}
		if flexible {
			invariants.Check(t.UnknownTags.Len() == 0, "fetch response topic with tags")
			b = append(b, 0)
		}
	}
	if flexible {
		invariants.Check(len(resp.Brokers) == 0 && resp.UnknownTags.Len() == 0, "fetch response with tags")
		b = append(b, 0)
	}
	f.head = b
	size := int64(len(b)) - 4 + int64(records)
	if size > math.MaxInt32 {
		return fmt.Errorf("kafka: fetch response of %d bytes", size)
	}
	binary.BigEndian.PutUint32(b, uint32(size))
	return nil
}

// checkNoPartitionTags checks that a partition has none of the tagged
// fields the frame leaves out.
func checkNoPartitionTags(p *kmsg.FetchResponseTopicPartition) {
	d, l, s := &p.DivergingEpoch, &p.CurrentLeader, &p.SnapshotID
	invariants.Check(d.Epoch == -1 && d.EndOffset == -1 && d.UnknownTags.Len() == 0 &&
		l.LeaderID == -1 && l.LeaderEpoch == -1 && l.UnknownTags.Len() == 0 &&
		s.EndOffset == -1 && s.Epoch == -1 && s.UnknownTags.Len() == 0 &&
		p.UnknownTags.Len() == 0, "fetch response partition %d with tagged fields", p.Partition)
}

// writeTo writes the planned frame to w: the bytes with writev where w
// takes it (net.Buffers), each large enough record range with its slice's
// WriteTo (sendfile when w is a socket).
func (f *fetchFrame) writeTo(w io.Writer) (int64, error) {
	var written int64
	f.sentZeroCopy, f.sentMapped, f.sentCopied = 0, 0, 0
	bufs := f.iov[:0]
	var mapped int64 // record bytes in bufs
	flush := func() error {
		if len(bufs) == 0 {
			return nil
		}
		f.iov = bufs[:0] // keep the array, however far WriteTo advances bufs
		n, err := bufs.WriteTo(w)
		written += n
		if err == nil {
			f.sentMapped += mapped
		}
		bufs, mapped = f.iov[:0], 0
		return err
	}
	prev := 0
	for _, c := range f.cuts {
		if c.at > prev {
			bufs = append(bufs, f.head[prev:c.at])
		}
		prev = c.at
		if f.inline || c.slice == nil || len(c.bytes) < sendfileMinBytes || len(c.slice.Bytes) != len(c.bytes) {
			bufs = append(bufs, c.bytes)
			mapped += int64(len(c.bytes))
			continue
		}
		if err := flush(); err != nil {
			return written, err
		}
		n, zeroCopy, err := c.slice.SendTo(w)
		written += n
		if zeroCopy {
			f.sentZeroCopy += n
		} else {
			f.sentCopied += n
		}
		if err == nil && n != int64(len(c.bytes)) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return written, err
		}
	}
	bufs = append(bufs, f.head[prev:])
	return written, flush()
}

// reset drops what the plan references (the log's mapping) and buffers
// grown past what a connection keeps.
func (f *fetchFrame) reset() {
	clear(f.cuts)
	f.cuts = f.cuts[:0]
	clear(f.iov[:cap(f.iov)])
	if cap(f.head) > keepBufferBytes {
		f.head = nil
	}
	if cap(f.cuts) > 1024 {
		f.cuts = nil
	}
	if cap(f.iov) > 1024 {
		f.iov = nil
	}
}

// writeFetch frames and sends a Fetch response, its records from the
// segment files.
func (c *conn) writeFetch(r *request, resp *fetchResponse) error {
	k := 0
	sliceFor := func(p *kmsg.FetchResponseTopicPartition) *commitlog.Slice {
		// parts are in response order; a response cut short (a session
		// error) has none.
		for ; k < len(resp.parts); k++ {
			if fp := resp.parts[k]; fp.out == p {
				k++
				return &fp.slice
			}
		}
		return nil
	}
	f := &c.fetch
	f.inline = c.loopback
	defer f.reset()
	if err := f.plan(r.corrID, resp.FetchResponse, sliceFor); err != nil {
		return err
	}
	if c.s.cfg.IdleTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	}
	st := &c.s.stats
	if _, ok := c.nc.(syscall.Conn); ok {
		_, err := f.writeTo(c.nc)
		st.sendfileBytes.Add(f.sentZeroCopy)
		st.writevBytes.Add(f.sentMapped)
		st.copiedBytes.Add(f.sentCopied)
		return err
	}
	// Not a socket (TLS): gather the writes, which Slice.SendTo then
	// copies, into few large ones.
	if c.bw == nil {
		c.bw = bufio.NewWriterSize(c.nc, 64<<10)
	}
	_, err := f.writeTo(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	if err == nil {
		st.copiedBytes.Add(f.sentZeroCopy + f.sentMapped + f.sentCopied)
	}
	return err
}

func appendInt16(b []byte, v int16) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }
func appendInt32(b []byte, v int32) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }
func appendInt64(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

// appendArrayLen appends an array's length: int32 (-1 for null), or in a
// flexible version an unsigned varint of the length + 1 (0 for null).
func appendArrayLen(b []byte, n int, null, flexible bool) []byte {
	switch {
	case flexible && null:
		return append(b, 0)
	case flexible:
		return binary.AppendUvarint(b, uint64(n)+1)
	case null:
		return appendInt32(b, -1)
	default:
		return appendInt32(b, int32(n))
	}
}

// appendString appends a string: int16 length, or in a flexible version an
// unsigned varint of the length + 1; then its bytes.
func appendString(b []byte, s string, flexible bool) []byte {
	if flexible {
		b = binary.AppendUvarint(b, uint64(len(s))+1)
	} else {
		b = appendInt16(b, int16(len(s)))
	}
	return append(b, s...)
}
