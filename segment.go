package commitlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/layout"
	"github.com/streamkit/commitlog/internal/vfs"
)

// A segment is one .log file of record batches, stored exactly as they
// arrived on the wire (RecordBatch v2, see internal/batch), with its offset
// and time indexes. Batches are appended with WriteAt (pwrite), so a full
// disk is an error from the write and never a fault on a mapping; they are
// read through a read-only mapping that reserves room for the whole segment.
//
// Invariants: base <= the base offset of every batch; batches in
// [0, size) are whole and their offsets increase; next is the offset after
// the last of them (base when empty). The file never shrinks while anyone
// may read it: truncation overwrites the dropped bytes with zeros instead,
// and files are trimmed only when the segment is sealed or closed with no
// reader left.
type segment struct {
	fs        vfs.FS
	dir       string
	base      int64
	log       vfs.File
	logMap    vfs.Mapping
	index     offsetIndex
	timeIndex timeIndex

	// Published to readers; written by the log's writer only.
	size         atomic.Int64 // bytes of whole batches
	next         atomic.Int64 // offset after the last batch
	maxTimestamp atomic.Int64 // largest batch max timestamp, -1 when empty

	// Writer-only state.
	extent          int64     // bytes ever written to the file (>= size)
	bytesSinceIndex int64     // log bytes appended since the last index entry
	maxTsOffset     int64     // base offset of the batch that set maxTimestamp
	created         time.Time // when the segment was made, for SegmentAge
	firstTimestamp  int64     // the first batch's max timestamp, -1 when empty

	suffix  string       // layout.CleanedSuffix while compaction writes it, else ""
	refs    atomic.Int32 // the log's own reference plus one per reader
	deleted atomic.Bool  // files were renamed with layout.DeletedSuffix
}

func (s *segment) path(k layout.Kind) string {
	return filepath.Join(s.dir, layout.SegmentFile(s.base, k)+s.suffix)
}

// mapBytes is how much address space a segment's log mapping reserves: room
// for the largest segment the configuration allows.
func (c *LogConfig) mapBytes() int64 {
	return max(c.SegmentBytes, int64(c.MaxBatchBytes))
}

// createSegment makes the three files of a new, empty segment. The caller
// syncs the directory.
func createSegment(fs vfs.FS, dir string, base int64, cfg *LogConfig) (*segment, error) {
	return createSegmentFiles(fs, dir, base, "", cfg)
}

// createSegmentFiles makes a new, empty segment whose file names end with
// suffix.
func createSegmentFiles(fs vfs.FS, dir string, base int64, suffix string, cfg *LogConfig) (*segment, error) {
	s := &segment{fs: fs, dir: dir, base: base, suffix: suffix, created: time.Now(), firstTimestamp: -1, maxTsOffset: base}
	s.next.Store(base)
	s.maxTimestamp.Store(-1)
	var err error
	if s.log, err = fs.OpenFile(s.path(layout.KindLog), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if err := s.openRest(cfg, true); err != nil {
		s.log.Close()
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	s.refs.Store(1)
	return s, nil
}

// openSegment opens an existing segment's files, creating missing index
// files. It reports whether both indexes are to be trusted; either way the
// caller then walks the log to set size and next (see recover.go).
func openSegment(fs vfs.FS, dir string, base int64, cfg *LogConfig) (*segment, bool, error) {
	s := &segment{fs: fs, dir: dir, base: base, created: time.Now(), firstTimestamp: -1, maxTsOffset: base}
	var err error
	if s.log, err = fs.OpenFile(s.path(layout.KindLog), os.O_RDWR, 0); err != nil {
		return nil, false, fmt.Errorf("open segment: %w", err)
	}
	st, err := s.log.Stat()
	if err != nil {
		s.log.Close()
		return nil, false, fmt.Errorf("open segment: %w", err)
	}
	s.extent = st.Size()
	if s.extent > int64(^uint32(0)) {
		s.log.Close()
		return nil, false, fmt.Errorf("segment %s is %d bytes, over 4 GiB: %w", s.path(layout.KindLog), s.extent, ErrCorruptLog)
	}
	if err := s.openRest(cfg, false); err != nil {
		s.log.Close()
		return nil, false, fmt.Errorf("open segment %d: %w", base, err)
	}
	s.refs.Store(1)
	return s, true, nil
}

// openRest maps the log and opens both indexes.
func (s *segment) openRest(cfg *LogConfig, create bool) error {
	var err error
	if s.logMap, err = s.log.Map(int(max(cfg.mapBytes(), s.extent))); err != nil {
		return err
	}
	ix, _, err := openIndexFile(s.fs, s.path(layout.KindIndex), offsetIndexEntrySize, cfg.IndexMaxBytes, create)
	if err != nil && !create && errors.Is(err, os.ErrNotExist) {
		ix, _, err = openIndexFile(s.fs, s.path(layout.KindIndex), offsetIndexEntrySize, cfg.IndexMaxBytes, true)
	}
	if err != nil {
		s.logMap.Close()
		return err
	}
	tx, _, err := openIndexFile(s.fs, s.path(layout.KindTimeIndex), timeIndexEntrySize, cfg.IndexMaxBytes, create)
	if err != nil && !create && errors.Is(err, os.ErrNotExist) {
		tx, _, err = openIndexFile(s.fs, s.path(layout.KindTimeIndex), timeIndexEntrySize, cfg.IndexMaxBytes, true)
	}
	if err != nil {
		ix.close()
		s.logMap.Close()
		return err
	}
	s.index = offsetIndex{indexFile: ix, base: s.base}
	s.timeIndex = timeIndex{indexFile: tx, base: s.base}
	return nil
}

// data returns the published batches of the segment.
func (s *segment) data() []byte { return s.logMap.Bytes()[:s.size.Load()] }

// full reports whether the batch h, about to get base offset base, must go
// to a new segment. Age is measured as Kafka does: between the batch's
// timestamp and the segment's first one when both are known (so that
// replayed old records do not roll every append), else on the wall clock.
func (s *segment) full(h batch.Header, base int64, cfg *LogConfig, now time.Time) bool {
	last := base + int64(h.LastOffsetDelta)
	size := s.size.Load()
	if size == 0 {
		return last-s.base > int64(^uint32(0))
	}
	age := now.Sub(s.created)
	if s.firstTimestamp >= 0 && h.MaxTimestamp >= 0 {
		age = time.Duration(h.MaxTimestamp-s.firstTimestamp) * time.Millisecond
	}
	return size+int64(h.Size()) > cfg.SegmentBytes ||
		size+int64(h.Size()) > int64(len(s.logMap.Bytes())) ||
		age >= cfg.SegmentAge ||
		s.index.full() || s.timeIndex.full() ||
		last-s.base > int64(^uint32(0))
}

// append writes one checked batch whose base offset is already assigned.
// The batch is not visible to readers until publish.
func (s *segment) append(b []byte, h batch.Header, cfg *LogConfig) error {
	pos := s.size.Load()
	if _, err := s.log.WriteAt(b, pos); err != nil {
		return fmt.Errorf("write %s: %w", s.path(layout.KindLog), err)
	}
	s.extent = max(s.extent, pos+int64(len(b)))
	return s.indexBatch(pos, h, cfg)
}

// indexBatch records a batch written at pos in the indexes when
// IndexIntervalBytes have passed since the last entry, and in the
// segment's max timestamp.
func (s *segment) indexBatch(pos int64, h batch.Header, cfg *LogConfig) error {
	if s.bytesSinceIndex >= int64(cfg.IndexIntervalBytes) {
		if err := s.index.add(h.BaseOffset, pos); err != nil {
			return fmt.Errorf("write %s: %w", s.path(layout.KindIndex), err)
		}
		if ts := max(s.maxTimestamp.Load(), h.MaxTimestamp); ts >= 0 {
			if err := s.timeIndex.add(ts, h.BaseOffset); err != nil {
				return fmt.Errorf("write %s: %w", s.path(layout.KindTimeIndex), err)
			}
		}
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += int64(h.Size())
	if pos == 0 {
		s.firstTimestamp = h.MaxTimestamp
	}
	s.observeTimestamp(h)
	return nil
}

// observeTimestamp raises the segment's max timestamp to the batch's.
func (s *segment) observeTimestamp(h batch.Header) {
	if h.MaxTimestamp > s.maxTimestamp.Load() {
		s.maxTimestamp.Store(h.MaxTimestamp)
		s.maxTsOffset = h.BaseOffset
	}
}

// publish makes the batches written by append visible to readers.
func (s *segment) publish(size, next int64) {
	s.size.Store(size)
	s.next.Store(next)
}

// find returns the position of the batch holding offset, or of the first
// batch after it (offsets may have gaps), within the published data; ok is
// false when the segment has no batch at or after offset. A header that
// does not parse inside published data is corruption, reported as an
// error wrapping ErrCorruptLog rather than skipped.
func (s *segment) find(offset int64) (pos int64, ok bool, err error) {
	data := s.data()
	pos = s.index.lookup(offset)
	for pos < int64(len(data)) {
		h, err := batch.ReadHeader(data[pos:])
		if err != nil {
			return 0, false, fmt.Errorf("%w: %s at %d: %w", ErrCorruptLog, s.path(layout.KindLog), pos, err)
		}
		if h.NextOffset() > offset {
			return pos, true, nil
		}
		pos += int64(h.Size())
	}
	return 0, false, nil
}

// read returns whole batches from the one holding offset, at most maxBytes
// of them but always at least one, and none whose base offset reaches
// limit (the end offset the reader saw: a batch being published may be in
// the segment before the log's end moves past it). The caller holds a
// reference.
func (s *segment) read(offset, limit int64, maxBytes int) (Slice, bool, error) {
	pos, ok, err := s.find(offset)
	if !ok || err != nil {
		return Slice{}, false, err
	}
	data := s.data()
	end, next := pos, offset
	for end < int64(len(data)) {
		if end > pos && end+batch.HeaderSize-pos > int64(maxBytes) {
			break // not even the next header fits: do not touch it
		}
		h, err := batch.ReadHeader(data[end:])
		if err != nil {
			return Slice{}, false, fmt.Errorf("%w: %s at %d: %w", ErrCorruptLog, s.path(layout.KindLog), end, err)
		}
		n := int64(h.Size())
		if h.BaseOffset >= limit || end > pos && end+n-pos > int64(maxBytes) {
			break
		}
		end += n
		next = h.NextOffset()
	}
	if end == pos {
		return Slice{}, false, nil
	}
	return Slice{Bytes: data[pos:end], Position: pos, NextOffset: next, seg: s}, true, nil
}

// seal prepares a segment that stops being active: the time index gets its
// final entry, reserved index space is released, and everything is synced.
func (s *segment) seal() error {
	if err := s.finishIndexes(); err != nil {
		return err
	}
	return errors.Join(s.log.Sync(), s.index.sync(), s.timeIndex.sync())
}

// finishIndexes gives the time index its final entry, for the segment's
// max timestamp, and releases the indexes' reserved space.
func (s *segment) finishIndexes() error {
	if ts := s.maxTimestamp.Load(); ts >= 0 && !s.timeIndex.full() {
		if err := s.timeIndex.add(ts, s.maxTsOffset); err != nil {
			return err
		}
	}
	return errors.Join(s.index.trim(), s.timeIndex.trim())
}

// acquire takes a reader's reference; it fails once the segment was
// released by everyone.
func (s *segment) acquire() bool {
	for {
		r := s.refs.Load()
		if r <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// release drops a reference; the last one unmaps and closes the files and,
// when the segment was deleted, removes them.
func (s *segment) release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.logMap.Close()
	s.index.close()
	s.timeIndex.close()
	if s.deleted.Load() {
		// A trimmed file is cheaper to remove, but removal is all that matters;
		// a failure leaves a .deleted file that the next open removes.
		s.log.Close()
		for _, k := range []layout.Kind{layout.KindLog, layout.KindIndex, layout.KindTimeIndex} {
			_ = s.fs.Remove(s.path(k) + layout.DeletedSuffix)
		}
		return
	}
	if s.extent > s.size.Load() {
		// No reader is left that could touch the bytes past size.
		_ = s.log.Truncate(s.size.Load())
	}
	s.log.Close()
}

// markDeleted renames the segment's files so that a restart never takes
// them for live ones; the caller syncs the directory and drops its
// reference.
func (s *segment) markDeleted() error {
	for _, k := range []layout.Kind{layout.KindLog, layout.KindIndex, layout.KindTimeIndex} {
		if err := s.fs.Rename(s.path(k), s.path(k)+layout.DeletedSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	s.deleted.Store(true)
	return nil
}
