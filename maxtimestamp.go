package commitlog

import "time"

// MaxTimestamp returns the offset and timestamp (ms since the epoch) of
// the record with the largest timestamp, the first such record when
// several share it (Kafka's ListOffsets with timestamp -3, KIP-734). ok is
// false when the log holds no record.
func (l *Log) MaxTimestamp() (offset, ts int64, ok bool, err error) {
	segs := l.segs.Load()
	if segs == nil {
		return 0, 0, false, ErrClosed
	}
	ts = -1
	for _, seg := range segs.segs {
		ts = max(ts, seg.maxTimestamp.Load())
	}
	if ts < 0 {
		return 0, 0, false, nil
	}
	// The first record at or after the largest timestamp is one with it.
	offset, ok, err = l.OffsetForTime(ts)
	return offset, ts, ok, err
}

// MaxTimestamp returns the offset and timestamp of the partition's record
// with the largest timestamp (the first of them on a tie); ok is false
// when the partition holds no record. See Log.MaxTimestamp.
func (p *Partition) MaxTimestamp() (offset int64, ts time.Time, ok bool, err error) {
	offset, ms, ok, err := p.log.MaxTimestamp()
	if !ok || err != nil {
		return 0, time.Time{}, ok, err
	}
	return offset, time.UnixMilli(ms), true, nil
}
