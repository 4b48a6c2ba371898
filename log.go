package commitlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/invariants"
	"github.com/streamkit/commitlog/internal/layout"
	"github.com/streamkit/commitlog/internal/vfs"
	"github.com/streamkit/commitlog/zerocopy"
)

// LogConfig configures one partition's log. The zero value is usable: every
// zero field takes the default written beside it, which is Kafka's default
// for the setting of the same name.
type LogConfig struct {
	// SegmentBytes is the size at which the active segment rolls (Kafka's
	// segment.bytes). Default 1 GiB; at most 2 GiB - 1, since index positions
	// are 32 bits.
	SegmentBytes int64
	// SegmentAge rolls the active segment once it is this old, even when it
	// is not full (segment.ms). Default 7 days.
	SegmentAge time.Duration
	// IndexIntervalBytes is how many log bytes separate two offset index
	// entries (index.interval.bytes). Default 4096.
	IndexIntervalBytes int
	// IndexMaxBytes is the size of each index file; a segment whose index is
	// full rolls (segment.index.bytes). Default 10 MiB.
	IndexMaxBytes int
	// MaxBatchBytes is the largest record batch Append accepts, header
	// included (max.message.bytes). Default 1048588.
	MaxBatchBytes int
	// SyncPolicy says when appended bytes are fsynced. The default,
	// SyncGroupCommit, acknowledges an append only once it is durable.
	SyncPolicy SyncPolicy
	// SyncInterval is the period of SyncPeriodic (flush.ms). Default 1 s.
	SyncInterval time.Duration
}

// SyncPolicy says when a log makes appended records durable with fdatasync.
type SyncPolicy int

const (
	// SyncGroupCommit, the default, makes Append return only after the batch
	// is on stable storage. Appends that arrive while an fdatasync runs share
	// the next one, so many concurrent appenders cost one sync, not one each.
	SyncGroupCommit SyncPolicy = iota
	// SyncPeriodic syncs every SyncInterval; Append returns once the batch
	// is in the page cache. A machine crash loses up to SyncInterval of
	// acknowledged records; a process crash loses nothing.
	SyncPeriodic
	// SyncNone leaves syncing to the operating system (and to rolls and
	// Close), as Kafka does by default: for when replication, not the disk,
	// provides durability. A machine crash may lose acknowledged records.
	SyncNone
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncGroupCommit:
		return "group-commit"
	case SyncPeriodic:
		return "periodic"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Defaults of LogConfig.
const (
	DefaultSegmentBytes       = 1 << 30
	DefaultSegmentAge         = 7 * 24 * time.Hour
	DefaultIndexIntervalBytes = 4096
	DefaultIndexMaxBytes      = 10 << 20
	DefaultMaxBatchBytes      = 1048588
	DefaultSyncInterval       = time.Second

	maxSegmentBytes = 1<<31 - 1
	// maxUncompressedBytes caps the memory one decompressed batch may take.
	maxUncompressedBytes = 64 << 20
)

func (c LogConfig) withDefaults() LogConfig {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentAge == 0 {
		c.SegmentAge = DefaultSegmentAge
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.IndexMaxBytes == 0 {
		c.IndexMaxBytes = DefaultIndexMaxBytes
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	return c
}

func (c *LogConfig) validate() error {
	switch {
	case c.SegmentBytes < batch.HeaderSize || c.SegmentBytes > maxSegmentBytes:
		return fmt.Errorf("%w: LogConfig.SegmentBytes %d outside [%d, %d]", ErrInvalidConfig, c.SegmentBytes, batch.HeaderSize, maxSegmentBytes)
	case c.SegmentAge < 0:
		return fmt.Errorf("%w: LogConfig.SegmentAge %v is negative", ErrInvalidConfig, c.SegmentAge)
	case c.IndexIntervalBytes < 0:
		return fmt.Errorf("%w: LogConfig.IndexIntervalBytes %d is negative", ErrInvalidConfig, c.IndexIntervalBytes)
	case c.IndexMaxBytes < timeIndexEntrySize:
		return fmt.Errorf("%w: LogConfig.IndexMaxBytes %d below %d", ErrInvalidConfig, c.IndexMaxBytes, timeIndexEntrySize)
	case c.MaxBatchBytes < batch.HeaderSize || c.MaxBatchBytes > maxSegmentBytes:
		return fmt.Errorf("%w: LogConfig.MaxBatchBytes %d outside [%d, %d]", ErrInvalidConfig, c.MaxBatchBytes, batch.HeaderSize, maxSegmentBytes)
	case c.SyncPolicy < SyncGroupCommit || c.SyncPolicy > SyncNone:
		return fmt.Errorf("%w: LogConfig.SyncPolicy %v unknown", ErrInvalidConfig, c.SyncPolicy)
	case c.SyncInterval < 0:
		return fmt.Errorf("%w: LogConfig.SyncInterval %v is negative", ErrInvalidConfig, c.SyncInterval)
	}
	return nil
}

// Log is one partition's log: an ordered list of segments, the last of them
// active. It has one writer at a time (calls that change the log serialise
// on a mutex) and any number of concurrent readers, which never wait for the
// writer: they work from an immutable snapshot of the segment list, and a
// segment's files are unmapped and removed only after its last reader
// released it.
//
// Offsets: StartOffset <= DurableOffset <= EndOffset once appends return
// (under SyncGroupCommit); records live in [StartOffset, EndOffset).
type Log struct {
	dir string
	// cfg is the configuration the log was opened with, never written
	// afterwards. The settings that may change while the log is open
	// (SegmentBytes, SegmentAge, MaxBatchBytes: setConfig) are read from
	// config(); the others never change.
	cfg LogConfig
	// live is the current configuration, an immutable value replaced
	// whole under mu; nil until the first change, cfg meanwhile.
	live atomic.Pointer[LogConfig]
	fs   vfs.FS

	// mu serialises the writer: Append, roll, Truncate, DeleteBefore,
	// retention and Close. It guards the fields below it.
	mu     sync.Mutex
	active *segment
	err    error // sticky write or sync error: appends fail until reopened
	closed bool
	// cleanedTo is where the next compaction pass starts mapping keys:
	// offsets below it were seen by a pass (cleaner.go).
	cleanedTo int64
	producers producers // idempotent producers' state (producerstate.go)
	// leaderEpoch is stamped on every appended batch (Kafka's
	// partitionLeaderEpoch): 0 on a single broker, the leader's epoch on
	// a broker of a cluster (SetLeaderEpoch).
	leaderEpoch int32

	segs    atomic.Pointer[segmentList] // readers' snapshot; nil once closed
	end     atomic.Int64                // offset the next record gets
	durable atomic.Int64                // offsets below this are fsynced
	dataCh  notifier                    // signalled when end moves
	sync    syncer                      // durability, per SyncPolicy (flush.go)
}

// segmentList is an immutable snapshot of a log's segments, oldest first.
type segmentList struct {
	segs []*segment
}

// find returns the index of the segment that would hold offset: the last one
// whose base is at most offset (0 when offset precedes them all).
func (l *segmentList) find(offset int64) int {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	return max(i-1, 0)
}

// OpenLog opens the log in dir, creating the directory and an empty log if
// needed and recovering from an unclean stop (see recover.go).
func OpenLog(dir string, cfg LogConfig) (*Log, error) {
	return openLog(vfs.Default, dir, cfg)
}

// Dir returns the directory of the log.
func (l *Log) Dir() string { return l.dir }

// StartOffset returns the first offset the log still holds (records below it
// were deleted by retention).
func (l *Log) StartOffset() int64 {
	if s := l.segs.Load(); s != nil {
		return s.segs[0].base
	}
	return l.end.Load()
}

// EndOffset returns the offset the next appended record will get (Kafka's
// log end offset).
func (l *Log) EndOffset() int64 { return l.end.Load() }

// DurableOffset returns the offset below which every record is on stable
// storage (fsynced).
func (l *Log) DurableOffset() int64 { return l.durable.Load() }

// Size returns the bytes of record batches the log holds.
func (l *Log) Size() int64 {
	var n int64
	if s := l.segs.Load(); s != nil {
		for _, seg := range s.segs {
			n += seg.size.Load()
		}
	}
	return n
}

// Segments returns how many segments the log has.
func (l *Log) Segments() int {
	if s := l.segs.Load(); s != nil {
		return len(s.segs)
	}
	return 0
}

// Append validates one record batch (RecordBatch v2, exactly as on the
// Kafka wire), assigns it the next offsets by rewriting its base offset in
// place (in b; the CRC does not cover it), stamps the log's leader epoch
// (also outside the CRC) and writes it. It returns the
// batch's base offset. Under SyncGroupCommit it returns once the batch is
// durable.
//
// A batch larger than MaxBatchBytes fails with ErrRecordTooLarge, a
// malformed one with ErrCorruptBatch; nothing is written then. A failed write
// or sync is returned to this and every later Append until the log is
// reopened: after a failed fsync the page cache can no longer be trusted.
func (l *Log) Append(b []byte) (int64, error) {
	base, next, err := l.write(b)
	if err != nil {
		return -1, err
	}
	if l.cfg.SyncPolicy == SyncGroupCommit {
		if err := l.WaitDurable(context.Background(), next); err != nil {
			return -1, err
		}
	}
	return base, nil
}

// write is Append without waiting for durability. It returns the batch's
// base offset and the log's new end offset.
func (l *Log) write(b []byte) (base, next int64, err error) {
	h, err := batch.Check(b, l.config().MaxBatchBytes)
	switch {
	case errors.Is(err, batch.ErrTooLarge):
		return 0, 0, fmt.Errorf("%w: %w", ErrRecordTooLarge, err)
	case err != nil:
		return 0, 0, fmt.Errorf("%w: %w", ErrCorruptBatch, err)
	case h.Size() != len(b):
		return 0, 0, fmt.Errorf("%w: %d bytes after the batch", ErrCorruptBatch, len(b)-h.Size())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return 0, 0, err
	}
	if dup, isDup, err := l.producers.check(h); err != nil || isDup {
		return dup, dup + int64(h.LastOffsetDelta) + 1, err
	}
	// The configuration is fixed while mu is held; MaxBatchBytes may have
	// been lowered since the check above.
	cfg := l.config()
	if h.Size() > cfg.MaxBatchBytes {
		return 0, 0, fmt.Errorf("%w: batch of %d bytes above %d", ErrRecordTooLarge, h.Size(), cfg.MaxBatchBytes)
	}
	base = l.end.Load()
	if l.active.full(h, base, cfg, time.Now()) {
		if err := l.rollLocked(); err != nil {
			return 0, 0, err
		}
	}
	if l.active.size.Load() == 0 && int64(h.Size()) > int64(len(l.active.logMap.Bytes())) {
		// An empty segment made before MaxBatchBytes was raised: its
		// mapping cannot show the batch (full rolls a non-empty one).
		if err := l.remakeActiveLocked(); err != nil {
			return 0, 0, err
		}
	}
	batch.SetBaseOffset(b, base)
	batch.SetPartitionLeaderEpoch(b, l.leaderEpoch)
	h.BaseOffset = base
	h.PartitionLeaderEpoch = l.leaderEpoch
	seg := l.active
	if err := seg.append(b, h, cfg); err != nil {
		l.err = err
		return 0, 0, err
	}
	next = h.NextOffset()
	l.producers.update(h)
	seg.publish(seg.size.Load()+int64(len(b)), next)
	l.end.Store(next)
	if invariants.Enabled {
		l.checkLocked(segs(l.active))
	}
	l.dataCh.broadcast()
	l.sync.written()
	return base, next, nil
}

func (l *Log) usableLocked() error {
	if l.closed {
		return ErrClosed
	}
	return l.err
}

// rollLocked seals the active segment and starts a new one at the end
// offset.
func (l *Log) rollLocked() error {
	old := l.active
	if err := old.seal(); err != nil {
		l.err = fmt.Errorf("commitlog: roll %s: %w", l.dir, err)
		return l.err
	}
	l.sync.advance(old.next.Load())
	seg, err := createSegment(l.fs, l.dir, l.end.Load(), l.config())
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		l.err = fmt.Errorf("commitlog: roll %s: %w", l.dir, err)
		return l.err
	}
	cur := l.segs.Load().segs
	next := make([]*segment, len(cur), len(cur)+1)
	copy(next, cur)
	l.segs.Store(&segmentList{segs: append(next, seg)})
	l.active = seg
	if err := l.saveProducersLocked(); err != nil {
		l.err = fmt.Errorf("commitlog: roll %s: producer snapshot: %w", l.dir, err)
		return l.err
	}
	if invariants.Enabled {
		l.checkLocked(nil)
	}
	return nil
}

// config returns the log's current configuration. It must not be
// modified.
func (l *Log) config() *LogConfig {
	if c := l.live.Load(); c != nil {
		return c
	}
	return &l.cfg
}

// setConfig changes, from the next append on, the settings of c that may
// change while the log is open: SegmentBytes, SegmentAge and
// MaxBatchBytes. The others must be those the log was opened with.
//
// Lowering SegmentBytes rolls the active segment at the next append that
// passes the new size. Raising MaxBatchBytes needs no roll now: a segment's
// mapping reserves max(SegmentBytes, MaxBatchBytes) of the configuration
// it was made with, and the next append of a larger batch rolls a non-empty
// active segment (full checks the mapping) or makes an empty one again
// (remakeActiveLocked).
func (l *Log) setConfig(c LogConfig) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	next := *l.config()
	next.SegmentBytes, next.SegmentAge, next.MaxBatchBytes = c.SegmentBytes, c.SegmentAge, c.MaxBatchBytes
	next = next.withDefaults()
	if err := next.validate(); err != nil {
		return err
	}
	l.live.Store(&next)
	return nil
}

// remakeActiveLocked replaces the empty active segment by a new one made
// with the current configuration, at the same base offset: its files are
// made with layout.CleanedSuffix and renamed over the old ones, so that a
// crash leaves the old empty files or the new ones (both the same empty
// segment; the next open maps either for the configuration then) and
// never no segment at the end offset. Readers holding the old segment keep
// its mapping until they release it.
func (l *Log) remakeActiveLocked() error {
	old := l.active
	fail := func(err error) error {
		l.err = fmt.Errorf("commitlog: remake active segment of %s: %w", l.dir, err)
		return l.err
	}
	seg, err := createSegmentFiles(l.fs, l.dir, old.base, layout.CleanedSuffix, l.config())
	if err != nil {
		return fail(err)
	}
	for _, k := range []layout.Kind{layout.KindIndex, layout.KindTimeIndex, layout.KindLog} {
		name := filepath.Join(l.dir, layout.SegmentFile(old.base, k))
		if err := l.fs.Rename(name+layout.CleanedSuffix, name); err != nil {
			seg.discard()
			return fail(err)
		}
	}
	seg.suffix = ""
	if err := l.fs.SyncDir(l.dir); err != nil {
		seg.release()
		return fail(err)
	}
	cur := l.segs.Load().segs
	segs := slices.Clone(cur)
	segs[len(segs)-1] = seg
	l.segs.Store(&segmentList{segs: segs})
	l.active = seg
	old.release() // its files were renamed over: release touches no path
	if invariants.Enabled {
		l.checkLocked(segs[len(segs)-1:])
	}
	return nil
}

// Roll starts a new segment now, when the active one is not empty.
func (l *Log) Roll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	if l.active.size.Load() == 0 {
		return nil
	}
	return l.rollLocked()
}

// Slice is a run of whole record batches read from a log, exactly as
// stored. Its bytes alias the log's memory mapping: they are read-only and
// stay valid until Release, even if the log deletes or truncates the
// segment meanwhile (a truncated range then reads as zeros).
type Slice struct {
	// Bytes holds whole record batches (RecordBatch v2); empty when there
	// was nothing to read.
	Bytes []byte
	// Position is where Bytes starts in its segment's .log file.
	Position int64
	// NextOffset is the offset after the last batch in Bytes: where the next
	// read continues.
	NextOffset int64

	seg *segment
}

// Release lets the log reclaim the segment the slice reads from. Bytes must
// not be used afterwards. Calling it again does nothing.
func (s *Slice) Release() {
	if s.seg != nil {
		s.seg.release()
		s.seg = nil
	}
	s.Bytes = nil
}

// WriteTo writes the slice's bytes to w: with sendfile(2) straight from
// the segment file when w is a socket on Linux (zero-copy), else with a
// copy from the mapping (TLS connections, buffered writers, other
// platforms). It makes Slice an io.WriterTo.
func (s *Slice) WriteTo(w io.Writer) (int64, error) {
	n, _, err := s.SendTo(w)
	return n, err
}

// SendTo is WriteTo that also reports whether the bytes went by sendfile(2)
// (zeroCopy) rather than by a copy from the mapping.
func (s *Slice) SendTo(w io.Writer) (n int64, zeroCopy bool, err error) {
	if len(s.Bytes) == 0 {
		return 0, false, nil
	}
	if s.seg != nil {
		if src, err := s.seg.log.SyscallConn(); err == nil {
			n, handled, err := zerocopy.SendFile(w, src, s.Position, int64(len(s.Bytes)))
			if handled {
				return n, true, err
			}
		}
	}
	m, err := w.Write(s.Bytes)
	return int64(m), false, err
}

// Read returns whole batches starting with the one that holds offset (so
// the first batch may begin before offset), at most maxBytes of them but
// always at least one, as a Kafka Fetch does (KIP-74). Batches come from one
// segment. At the end offset it returns an empty Slice; outside
// [StartOffset, EndOffset] it fails with an *OffsetOutOfRangeError.
func (l *Log) Read(offset int64, maxBytes int) (Slice, error) {
	return l.read(offset, -1, maxBytes)
}

// read is Read and ReadTo: limit < 0 reads up to the end offset.
func (l *Log) read(offset, limit int64, maxBytes int) (Slice, error) {
	for {
		end := l.end.Load()
		segs := l.segs.Load()
		if segs == nil {
			return Slice{}, ErrClosed
		}
		if start := segs.segs[0].base; offset < start || offset > end {
			return Slice{}, &OffsetOutOfRangeError{Offset: offset, Start: start, End: end}
		}
		if offset == end {
			return Slice{NextOffset: end}, nil
		}
		if limit >= 0 && limit < end {
			if offset >= limit {
				return Slice{NextOffset: offset}, nil
			}
			end = limit
		}
		retry := false
		for i := segs.find(offset); i < len(segs.segs); i++ {
			seg := segs.segs[i]
			if !seg.acquire() {
				retry = true
				break
			}
			s, ok, err := seg.read(offset, end, maxBytes)
			if ok {
				return s, nil
			}
			seg.release()
			if err != nil {
				return Slice{}, err
			}
		}
		if !retry {
			// The log was truncated below offset after end was loaded.
			return Slice{NextOffset: offset}, nil
		}
	}
}

// WaitData blocks until the log's end offset passes offset or ctx is done.
func (l *Log) WaitData(ctx context.Context, offset int64) error {
	return l.waitTo(ctx, offset, l.end.Load)
}

// NotifyData makes every append (and Close) try a non-blocking send on ch
// until stop is called: a consumer of many partitions waits on one channel.
// Give ch a buffer of one; a send that would block is dropped, so check the
// end offsets after each wake-up.
func (l *Log) NotifyData(ch chan<- struct{}) (stop func()) { return l.dataCh.listen(ch) }

// OffsetForTime returns the offset of the first record whose timestamp is
// at least ts (milliseconds since the epoch), as Kafka's ListOffsets does.
// ok is false when every record is older.
func (l *Log) OffsetForTime(ts int64) (offset int64, ok bool, err error) {
	segs := l.segs.Load()
	if segs == nil {
		return 0, false, ErrClosed
	}
	for _, seg := range segs.segs {
		if seg.maxTimestamp.Load() < ts || !seg.acquire() {
			continue
		}
		offset, ok, err = seg.offsetForTime(ts)
		seg.release()
		if ok || err != nil {
			return offset, ok, err
		}
	}
	return 0, false, nil
}

// offsetForTime looks for the first record at or after ts in one segment.
func (s *segment) offsetForTime(ts int64) (int64, bool, error) {
	pos, ok, err := s.find(s.timeIndex.lookup(ts))
	if !ok || err != nil {
		return 0, false, err
	}
	data := s.data()
	var it batch.Iter
	for pos < int64(len(data)) {
		h, err := batch.ReadHeader(data[pos:])
		if err != nil {
			return 0, false, fmt.Errorf("%w: %s at %d: %w", ErrCorruptLog, s.dir, pos, err)
		}
		b := data[pos : pos+int64(h.Size())]
		pos += int64(h.Size())
		if h.MaxTimestamp < ts {
			continue
		}
		if h.LogAppendTime() {
			return h.BaseOffset, true, nil
		}
		if err := it.Reset(b, maxUncompressedBytes); err != nil {
			return 0, false, fmt.Errorf("%w: %s: %w", ErrCorruptLog, s.dir, err)
		}
		for {
			tsDelta, offsetDelta, more := it.NextMeta()
			if !more {
				break
			}
			if h.BaseTimestamp+tsDelta >= ts {
				return h.BaseOffset + int64(offsetDelta), true, nil
			}
		}
		if err := it.Err(); err != nil {
			return 0, false, fmt.Errorf("%w: %s: %w", ErrCorruptLog, s.dir, err)
		}
	}
	return 0, false, nil
}

// Sync makes every appended record durable now, whatever the policy.
func (l *Log) Sync() error {
	return l.WaitDurable(context.Background(), l.end.Load())
}

// Truncate removes every record at or after offset, as a replica does to
// agree with its leader. Whole batches are removed, so the new end offset,
// which it returns, is the base offset of the batch that held offset and may
// be below it. The removal is durable when Truncate returns.
func (l *Log) Truncate(offset int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return 0, err
	}
	segs := l.segs.Load().segs
	if offset >= l.end.Load() {
		return l.end.Load(), nil
	}
	if offset < segs[0].base {
		offset = segs[0].base
	}
	i := (&segmentList{segs: segs}).find(offset)
	for _, seg := range segs[i+1:] {
		if err := seg.markDeleted(); err != nil {
			l.err = fmt.Errorf("commitlog: truncate %s: %w", l.dir, err)
			return 0, l.err
		}
	}
	seg := segs[i]
	newEnd, err := seg.truncate(offset)
	if err == nil && i+1 < len(segs) {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		l.err = fmt.Errorf("commitlog: truncate %s: %w", l.dir, err)
		return 0, l.err
	}
	l.segs.Store(&segmentList{segs: segs[: i+1 : i+1]})
	l.active = seg
	for _, s := range segs[i+1:] {
		s.release()
	}
	l.end.Store(newEnd)
	l.producers.truncate(newEnd)
	l.sync.truncated(newEnd)
	if invariants.Enabled {
		l.checkLocked(nil)
	}
	return newEnd, nil
}

// DeleteBefore deletes the segments whose records all lie below offset and
// returns how many it deleted. The active segment goes too when offset
// reaches the end offset: the log rolls first, so it is never left without
// an active segment. The start offset becomes the base offset of the first
// segment left.
func (l *Log) DeleteBefore(offset int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deleteLocked(func(s *segment) bool { return s.next.Load() <= offset })
}

// RetainBytes deletes the oldest segments while the log would still hold at
// least limit bytes without them (Kafka's retention.bytes); the active
// segment stays. It returns how many segments it deleted.
func (l *Log) RetainBytes(limit int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	total := l.Size()
	return l.deleteLocked(func(s *segment) bool {
		if s == l.active || total-s.size.Load() < limit {
			return false
		}
		total -= s.size.Load()
		return true
	})
}

// RetainAge deletes the oldest segments whose newest record is older than
// now minus maxAge (Kafka's retention.ms), rolling the active segment first
// when all of its records are that old. It returns how many it deleted.
func (l *Log) RetainAge(maxAge time.Duration, now time.Time) (int, error) {
	cutoff := now.Add(-maxAge).UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deleteLocked(func(s *segment) bool {
		return s.size.Load() > 0 && s.maxTimestamp.Load() < cutoff
	})
}

// deleteLocked deletes segments from the oldest while expired says so,
// rolling first when the active segment is expired.
func (l *Log) deleteLocked(expired func(*segment) bool) (int, error) {
	if err := l.usableLocked(); err != nil {
		return 0, err
	}
	segs := l.segs.Load().segs
	n := 0
	for n < len(segs) && expired(segs[n]) {
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if n == len(segs) {
		if l.active.size.Load() == 0 {
			n-- // already empty: keep it as the active segment
		} else if err := l.rollLocked(); err != nil {
			return 0, err
		}
		segs = l.segs.Load().segs
	}
	for _, s := range segs[:n] {
		if err := s.markDeleted(); err != nil {
			l.err = fmt.Errorf("commitlog: delete segment in %s: %w", l.dir, err)
			return 0, l.err
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		l.err = fmt.Errorf("commitlog: delete segment in %s: %w", l.dir, err)
		return 0, l.err
	}
	l.segs.Store(&segmentList{segs: segs[n:]})
	for _, s := range segs[:n] {
		s.release()
	}
	return n, nil
}

// Close syncs and closes the log and leaves the clean-shutdown marker that
// lets the next open skip recovery. Slices not yet released stay readable.
// Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.sync.stop()

	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.err
	if err == nil {
		if err = l.active.seal(); err == nil {
			l.sync.advance(l.end.Load())
			if err = l.saveProducersLocked(); err == nil {
				err = writeCleanMarker(l.fs, l.dir)
			}
		}
	}
	segs := l.segs.Load()
	l.segs.Store(nil)
	l.dataCh.broadcast()
	l.sync.wakes.broadcast()
	for _, s := range segs.segs {
		s.release()
	}
	if err != nil {
		return fmt.Errorf("commitlog: close %s: %w", filepath.Base(l.dir), err)
	}
	return nil
}

func segs(s ...*segment) []*segment { return s }

// checkLocked verifies the log's documented invariants (with -tags
// invariants): segments ordered and contiguous, the active segment last,
// start <= durable <= end, and the indexes of the segments given (all of
// them when nil) increasing and inside their data.
func (l *Log) checkLocked(only []*segment) {
	segs := l.segs.Load().segs
	invariants.Check(segs[len(segs)-1] == l.active, "active segment is not the last")
	invariants.Check(segs[0].base <= l.durable.Load() && l.durable.Load() <= l.end.Load(),
		"offsets out of order: start %d durable %d end %d", segs[0].base, l.durable.Load(), l.end.Load())
	invariants.Check(l.active.next.Load() == l.end.Load(), "active next %d != end %d", l.active.next.Load(), l.end.Load())
	for i, s := range segs {
		invariants.Check(s.base <= s.next.Load(), "segment %d: base after next %d", s.base, s.next.Load())
		if i > 0 {
			invariants.Check(segs[i-1].next.Load() <= s.base, "segment %d overlaps %d", segs[i-1].base, s.base)
		}
	}
	if only == nil {
		only = segs
	}
	for _, s := range only {
		var prevRel, prevPos uint32
		for j := 0; j < s.index.len(); j++ {
			rel, pos := s.index.at(j)
			invariants.Check(j == 0 || rel > prevRel && pos > prevPos, "segment %d: index entry %d not increasing", s.base, j)
			invariants.Check(int64(pos) < s.size.Load(), "segment %d: index entry %d past the data", s.base, j)
			prevRel, prevPos = rel, pos
		}
		var prevTs int64
		for j := 0; j < s.timeIndex.len(); j++ {
			ts, _ := s.timeIndex.at(j)
			invariants.Check(j == 0 || ts > prevTs, "segment %d: time index entry %d not increasing", s.base, j)
			prevTs = ts
		}
	}
}
