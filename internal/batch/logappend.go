package batch

import "encoding/binary"

// SetLogAppendTime stamps the batch at the start of b with the broker's
// append time, as Kafka does for topics whose message.timestamp.type is
// LogAppendTime: the timestamp-type attribute is set, maxTimestamp becomes
// ts (milliseconds), and the CRC, which covers both, is recomputed. The
// batch must have passed Check; b shorter than its header is left alone.
func SetLogAppendTime(b []byte, ts int64) {
	h, err := ReadHeader(b)
	if err != nil || h.Size() > len(b) {
		return
	}
	binary.BigEndian.PutUint16(b[OffsetAttributes:], uint16(h.Attributes|attrLogAppendTime))
	binary.BigEndian.PutUint64(b[OffsetMaxTimestamp:], uint64(ts))
	binary.BigEndian.PutUint32(b[OffsetCRC:], crc(b[OffsetAttributes:h.Size()]))
}
