package commitlog

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/layout"
	"github.com/streamkit/commitlog/internal/vfs"
)

// Opening and recovering a log.
//
// Every segment but the last was fsynced, with its indexes, when it rolled,
// so after an unclean stop only the last segment can hold a torn or lost
// tail: its recovery point is its base offset. Opening after an unclean stop
// therefore validates every batch of the last segment (length, magic, CRC,
// increasing offsets), cuts the file at the first invalid byte and rebuilds
// its indexes. A clean close leaves a marker (layout.CleanShutdownFile)
// that lets the next open trust the indexes: it reads only each segment's
// tail past its last index entry, so opening is fast and flat in log size.
// The marker is removed before the log accepts appends.

func openLog(fs vfs.FS, dir string, cfg LogConfig) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("commitlog: open log: %w", err)
	}
	entries, err := fs.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("commitlog: open log: %w", err)
	}
	l := &Log{dir: dir, cfg: cfg, fs: fs}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	if err := finishSwaps(l, names); err != nil {
		return nil, fmt.Errorf("commitlog: open log: finish compaction: %w", err)
	}
	if entries, err = fs.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("commitlog: open log: %w", err)
	}
	clean := false
	var bases []int64
	for _, e := range entries {
		name := e.Name()
		if name == layout.CleanShutdownFile {
			clean = true
		} else if strings.HasSuffix(name, layout.DeletedSuffix) || vfs.IsTempFile(name) {
			if err := fs.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("commitlog: open log: %w", err)
			}
		} else if base, k, ok := layout.ParseSegmentFile(name); ok && k == layout.KindLog {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)

	var segs []*segment
	fail := func(err error) (*Log, error) {
		for _, s := range segs {
			s.release()
		}
		return nil, fmt.Errorf("commitlog: open log %s: %w", dir, err)
	}
	for i, base := range bases {
		seg, _, err := openSegment(fs, dir, base, &cfg)
		if err != nil {
			return fail(err)
		}
		segs = append(segs, seg)
		if last := i == len(bases)-1; last && !clean {
			err = seg.recover(&cfg)
		} else {
			err = seg.load(&cfg, last)
		}
		if err != nil {
			return fail(err)
		}
		if i > 0 && segs[i-1].next.Load() > base {
			return fail(fmt.Errorf("%w: segment %d overlaps segment %d", ErrCorruptLog, segs[i-1].base, base))
		}
	}
	if len(segs) == 0 {
		seg, err := createSegment(fs, dir, 0, &cfg)
		if err != nil {
			return fail(err)
		}
		segs = append(segs, seg)
	}
	if err := l.loadProducers(segs); err != nil {
		return fail(err)
	}
	active := segs[len(segs)-1]
	if err := active.log.Sync(); err != nil {
		return fail(err)
	}
	if clean {
		if err := fs.Remove(filepath.Join(dir, layout.CleanShutdownFile)); err != nil {
			return fail(err)
		}
	}
	if err := fs.SyncDir(dir); err != nil {
		return fail(err)
	}
	l.active = active
	l.segs.Store(&segmentList{segs: segs})
	l.end.Store(active.next.Load())
	l.durable.Store(active.next.Load())
	l.sync.start(l)
	return l, nil
}

// writeCleanMarker records a clean close of the log in dir.
func writeCleanMarker(fs vfs.FS, dir string) error {
	return vfs.WriteFileAtomic(fs, filepath.Join(dir, layout.CleanShutdownFile), nil, 0o644)
}

// walk visits the whole batches of data from pos, in order, and returns
// the end of the last one. It stops at the first batch that is cut short,
// has an impossible header or offsets that do not increase, or (when verify
// is set) fails its CRC. It reads headers only unless verify is set.
func (s *segment) walk(data []byte, pos int64, verify bool, fn func(pos int64, h batch.Header) error) (int64, error) {
	prevNext := s.base
	for pos < int64(len(data)) {
		rest := data[pos:]
		var h batch.Header
		var err error
		if verify {
			h, err = batch.Check(rest, len(rest))
		} else if h, err = batch.ReadHeader(rest); err == nil && h.Size() > len(rest) {
			err = batch.ErrTruncated
		}
		if err != nil || h.BaseOffset < prevNext || h.NextOffset()-1-s.base > int64(^uint32(0)) {
			break
		}
		if err := fn(pos, h); err != nil {
			return pos, err
		}
		prevNext = h.NextOffset()
		pos += int64(h.Size())
	}
	return pos, nil
}

// load opens a segment that needs no recovery: its indexes are trusted when
// they pass a sanity check and rebuilt otherwise, and only the batches past
// the last index entry are read.
func (s *segment) load(cfg *LogConfig, active bool) error {
	data := s.logMap.Bytes()[:s.extent]
	rebuild := !s.index.validate(s.extent) || (s.timeIndex.len() == 0 && s.extent > 0)
	if !rebuild {
		var from int64
		if n := s.index.len(); n > 0 {
			_, p := s.index.at(n - 1)
			from = int64(p)
		}
		s.maxTimestamp.Store(-1)
		if ts, off, ok := s.timeIndex.last(); ok {
			s.maxTimestamp.Store(ts)
			s.maxTsOffset = off
		}
		next := s.base
		end, _ := s.walk(data, from, false, func(pos int64, h batch.Header) error {
			if pos-from >= int64(cfg.IndexIntervalBytes) && pos > from {
				rebuild = true // an entry the writer would have made is missing
			}
			next = h.NextOffset()
			s.observeTimestamp(h)
			return nil
		})
		s.bytesSinceIndex = end - from
		if from > 0 && end == from {
			rebuild = true // the indexed batch is not there
		} else if !rebuild && s.timeIndex.validate(next) {
			s.publish(end, next)
		} else {
			rebuild = true
		}
	}
	if rebuild {
		if err := s.rebuild(data, false, cfg); err != nil {
			return err
		}
		if !active {
			if err := s.finishIndexes(); err != nil {
				return err
			}
		}
	}
	s.loadFirstTimestamp()
	return nil
}

// recover validates every batch of the segment, cuts the file after the
// last valid one and rebuilds the indexes.
func (s *segment) recover(cfg *LogConfig) error {
	if err := s.rebuild(s.logMap.Bytes()[:s.extent], true, cfg); err != nil {
		return err
	}
	if size := s.size.Load(); size < s.extent {
		if err := s.log.Truncate(size); err != nil {
			return err
		}
		s.extent = size
	}
	s.loadFirstTimestamp()
	return nil
}

// rebuild recreates both indexes from the batches in data and publishes
// them.
func (s *segment) rebuild(data []byte, verify bool, cfg *LogConfig) error {
	s.index.reset()
	s.timeIndex.reset()
	s.bytesSinceIndex = 0
	s.maxTimestamp.Store(-1)
	s.maxTsOffset = s.base
	next := s.base
	end, err := s.walk(data, 0, verify, func(pos int64, h batch.Header) error {
		next = h.NextOffset()
		return s.indexBatch(pos, h, cfg)
	})
	if err != nil {
		return err
	}
	s.publish(end, next)
	// Zero what a shorter index left of the old entries, so that a later
	// clean open does not read them.
	if err := errors.Join(s.index.truncate(s.index.len()), s.timeIndex.truncate(s.timeIndex.len())); err != nil {
		return err
	}
	return nil
}

// loadFirstTimestamp sets firstTimestamp from the segment's first batch.
func (s *segment) loadFirstTimestamp() {
	s.firstTimestamp = -1
	if data := s.data(); len(data) > 0 {
		if h, err := batch.ReadHeader(data); err == nil {
			s.firstTimestamp = h.MaxTimestamp
		}
	}
}

// truncate drops the batches at and after the one holding offset and
// returns the segment's new next offset. The dropped bytes are overwritten
// with zeros and synced, so that neither readers nor a later recovery can
// take them for records.
func (s *segment) truncate(offset int64) (int64, error) {
	pos, ok, err := s.find(offset)
	if err != nil {
		return 0, err
	}
	if !ok {
		return s.next.Load(), nil
	}
	h, err := batch.ReadHeader(s.data()[pos:])
	if err != nil {
		return 0, err
	}
	size := s.size.Load()
	newEnd := h.BaseOffset
	s.publish(pos, newEnd)
	if err := writeZeros(s.log, pos, size-pos); err != nil {
		return 0, err
	}
	if err := errors.Join(s.index.truncateToPosition(pos), s.timeIndex.truncateToOffset(newEnd)); err != nil {
		return 0, err
	}
	// Recompute what the writer tracks from the batches that remain after
	// the last entries kept.
	var from int64
	if n := s.index.len(); n > 0 {
		_, p := s.index.at(n - 1)
		from = int64(p)
	}
	s.maxTimestamp.Store(-1)
	s.maxTsOffset = s.base
	if ts, off, ok := s.timeIndex.last(); ok {
		s.maxTimestamp.Store(ts)
		s.maxTsOffset = off
		from = min(from, s.index.lookup(off))
	}
	s.bytesSinceIndex = pos
	if n := s.index.len(); n > 0 {
		_, last := s.index.at(n - 1)
		s.bytesSinceIndex = pos - int64(last)
	}
	_, err = s.walk(s.data(), from, false, func(_ int64, h batch.Header) error {
		s.observeTimestamp(h)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := s.log.Sync(); err != nil {
		return 0, err
	}
	return newEnd, nil
}
