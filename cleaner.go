package commitlog

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/invariants"
	"github.com/streamkit/commitlog/internal/layout"
)

// Log compaction keeps, for every key, only the latest record (Kafka's
// cleanup.policy=compact), so that a log of updates stays as large as the
// set of keys rather than the history of changes.
//
// A pass works on the closed segments only (the active one is never
// touched) and never holds the writer's lock while it reads or writes:
//
//  1. Map: from the first dirty offset (where the previous pass stopped)
//     it reads batches and records, per key hash (xxhash64), the latest
//     offset, until the map is full or the closed segments end. The map's
//     memory is bounded by CompactOptions.MemoryBytes; a log with more keys
//     takes several passes.
//  2. Filter: every closed segment up to the map's end is rewritten,
//     keeping a record unless the map knows a later offset for its key, or
//     it is a tombstone (null value) older than DeleteRetention. Offsets
//     stay as they were: compacted batches have gaps. Segments with nothing
//     to remove are not rewritten.
//  3. Swap, under the lock, for each rewritten segment that is still
//     closed and unchanged: its new files, written with
//     layout.CleanedSuffix and synced, are renamed to layout.SwapSuffix
//     (indexes first, the .log last: the commit point), the directory is
//     synced, then renamed over the originals and the directory synced
//     again. A crash leaves either the old segment or, through the .swap
//     files that open finishes renaming, the new one. Readers holding the
//     old segment keep reading its files until they release it.
//
// Records with a null key are kept (Kafka refuses them on compacted topics;
// this log stores what it is given). Two keys with the same 64-bit hash
// would be taken for one; at 2^-64 per pair that is not a practical risk.

// CompactOptions configures a compaction pass. The zero value is usable.
type CompactOptions struct {
	// DeleteRetention is how long a tombstone (a record with a null value)
	// is kept after it was written, so that consumers get to see the
	// deletion (delete.retention.ms). Default 24 hours; -1 keeps
	// tombstones.
	DeleteRetention time.Duration
	// MemoryBytes bounds the key map of one pass, at 24 bytes a key
	// (log.cleaner.dedupe.buffer.size). Default 64 MiB, about 2.8 M keys.
	// Besides the map, a pass holds one batch and its filtered copy (at
	// most MaxBatchBytes each, uncompressed at most 64 MiB) whatever the
	// size of the segments.
	MemoryBytes int
	// Now is the time against which tombstones age. Default time.Now().
	Now time.Time
}

// Defaults of CompactOptions.
const (
	DefaultDeleteRetention    = 24 * time.Hour
	DefaultCompactMemoryBytes = 64 << 20

	keyMapEntryBytes = 24
)

// CompactStats reports what a compaction did.
type CompactStats struct {
	Passes          int   // map-and-filter passes
	SegmentsWritten int   // segments rewritten and swapped in
	BytesRead       int64 // bytes of batches read by the filter
	BytesWritten    int64 // bytes of batches written
	RecordsRemoved  int64 // superseded records and expired tombstones
}

// DirtyRatio returns the share of the closed segments' bytes that no
// compaction has seen yet (Kafka compares it with
// min.cleanable.dirty.ratio).
func (l *Log) DirtyRatio() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	segs := l.segs.Load()
	if segs == nil {
		return 0
	}
	var total, dirty int64
	for _, s := range segs.segs[:len(segs.segs)-1] {
		total += s.size.Load()
		if s.next.Load() > l.cleanedTo {
			dirty += s.size.Load()
		}
	}
	if total == 0 {
		return 0
	}
	return float64(dirty) / float64(total)
}

// Compact runs compaction passes until every closed segment has been seen;
// see the description at the top of cleaner.go. Appends and reads go on
// meanwhile. It returns what it did; an error leaves the log as it was
// before the segment being swapped.
func (l *Log) Compact(opts CompactOptions) (CompactStats, error) {
	if opts.DeleteRetention == 0 {
		opts.DeleteRetention = DefaultDeleteRetention
	}
	if opts.MemoryBytes <= 0 {
		opts.MemoryBytes = DefaultCompactMemoryBytes
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	c := compactor{l: l, opts: opts, keys: make(map[uint64]int64, min(opts.MemoryBytes/keyMapEntryBytes, 1<<16))}
	for {
		progressed, err := c.pass()
		if err != nil || !progressed {
			return c.stats, err
		}
	}
}

// compactor holds the state of one Compact call.
type compactor struct {
	l       *Log
	opts    CompactOptions
	keys    map[uint64]int64 // key hash -> latest offset
	it      batch.Iter
	scratch []byte
	out     []byte
	stats   CompactStats
}

// pass runs one map-and-filter pass; it reports false when there was
// nothing dirty left.
func (c *compactor) pass() (bool, error) {
	l := c.l
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return false, err
	}
	all := l.segs.Load().segs
	closed := all[:len(all)-1]
	from := l.cleanedTo
	held := make([]*segment, 0, len(closed))
	sizes := make([]int64, 0, len(closed))
	for _, s := range closed {
		if s.acquire() {
			held = append(held, s)
			sizes = append(sizes, s.size.Load())
		}
	}
	l.mu.Unlock()
	defer func() {
		for _, s := range held {
			s.release()
		}
	}()
	if len(held) == 0 || held[len(held)-1].next.Load() <= from {
		return false, nil
	}
	c.stats.Passes++

	mapEnd, err := c.buildMap(held, from)
	if err != nil {
		return false, err
	}
	tombstoneCutoff := int64(-1 << 63)
	if c.opts.DeleteRetention >= 0 {
		tombstoneCutoff = c.opts.Now.Add(-c.opts.DeleteRetention).UnixMilli()
	}
	for i, s := range held {
		if s.base >= mapEnd {
			break
		}
		cleaned, err := c.filter(s, mapEnd, tombstoneCutoff)
		if err != nil {
			return false, err
		}
		if cleaned == nil {
			continue
		}
		if err := c.swap(s, sizes[i], cleaned); err != nil {
			return false, err
		}
	}
	l.mu.Lock()
	l.cleanedTo = max(l.cleanedTo, mapEnd)
	l.mu.Unlock()
	return true, nil
}

// buildMap records the latest offset of each key from offset from on,
// until the map is full. It returns the offset up to which the map is
// complete.
func (c *compactor) buildMap(segs []*segment, from int64) (int64, error) {
	clear(c.keys)
	limit := max(c.opts.MemoryBytes/keyMapEntryBytes, 1)
	end := from
	for _, s := range segs {
		if s.next.Load() <= from {
			continue
		}
		data := s.data()
		pos := s.index.lookup(from)
		for pos < int64(len(data)) {
			h, err := batch.ReadHeader(data[pos:])
			if err != nil {
				return 0, fmt.Errorf("%w: %s at %d: %w", ErrCorruptLog, s.path(layout.KindLog), pos, err)
			}
			b := data[pos : pos+int64(h.Size())]
			pos += int64(h.Size())
			if h.NextOffset() <= from {
				continue
			}
			if h.Control() {
				end = h.NextOffset()
				continue
			}
			if err := c.it.Reset(b, maxUncompressedBytes); err != nil {
				return 0, fmt.Errorf("%w: %s: %w", ErrCorruptLog, s.path(layout.KindLog), err)
			}
			// A batch goes into the map whole or not at all, so that the map
			// covers exactly [from, end).
			added := 0
			for r, ok := c.it.Next(); ok; r, ok = c.it.Next() {
				if r.Key == nil {
					continue
				}
				hash := xxhash.Sum64(r.Key)
				if _, seen := c.keys[hash]; !seen {
					added++
				}
				c.keys[hash] = h.BaseOffset + int64(r.OffsetDelta)
			}
			if err := c.it.Err(); err != nil {
				return 0, fmt.Errorf("%w: %s: %w", ErrCorruptLog, s.path(layout.KindLog), err)
			}
			end = h.NextOffset()
			if len(c.keys) >= limit {
				return end, nil
			}
		}
		end = max(end, s.next.Load())
	}
	return end, nil
}

// filter writes a compacted copy of s with layout.CleanedSuffix, or returns
// nil when nothing in s is to be removed.
func (c *compactor) filter(s *segment, mapEnd, tombstoneCutoff int64) (ns *segment, err error) {
	data := s.data()
	c.stats.BytesRead += int64(len(data))
	// The copy is at most as large as s, which the configuration of its
	// day let grow past today's SegmentBytes if that was lowered since.
	cfg := *c.l.config()
	cfg.SegmentBytes = max(cfg.SegmentBytes, int64(len(data)))
	removed, written := int64(0), int64(0)
	fail := func(err error) (*segment, error) {
		if ns != nil {
			ns.discard()
		}
		return nil, fmt.Errorf("commitlog: compact %s: %w", s.path(layout.KindLog), err)
	}
	// write appends whole batches to the copy, which exists from the first
	// batch that loses records on: memory stays at one batch, whatever the
	// segment's size.
	write := func(b []byte) error {
		for len(b) > 0 {
			h, err := batch.ReadHeader(b)
			if err != nil {
				return err
			}
			if err := ns.append(b[:h.Size()], h, &cfg); err != nil {
				return err
			}
			ns.publish(ns.size.Load()+int64(h.Size()), h.NextOffset())
			written += int64(h.Size())
			b = b[h.Size():]
		}
		return nil
	}
	for pos := int64(0); pos < int64(len(data)); {
		h, err := batch.ReadHeader(data[pos:])
		if err != nil {
			return fail(fmt.Errorf("%w: at %d: %w", ErrCorruptLog, pos, err))
		}
		b := data[pos : pos+int64(h.Size())]
		start := pos
		pos += int64(h.Size())
		if h.Control() || h.BaseOffset >= mapEnd {
			if ns != nil {
				if err := write(b); err != nil {
					return fail(err)
				}
			}
			continue
		}
		var kept int
		c.out, kept, err = batch.Filter(c.out[:0], b, &c.it, &c.scratch, maxUncompressedBytes, func(r batch.Record) bool {
			if r.Key == nil {
				return true
			}
			off := h.BaseOffset + int64(r.OffsetDelta)
			if latest, ok := c.keys[xxhash.Sum64(r.Key)]; ok && latest > off && off < mapEnd {
				return false
			}
			return r.Value != nil || h.MaxTimestamp >= tombstoneCutoff
		})
		if err != nil {
			return fail(fmt.Errorf("%w: %w", ErrCorruptLog, err))
		}
		removed += int64(h.NumRecords) - int64(kept)
		if ns == nil && kept < int(h.NumRecords) {
			if ns, err = createSegmentFiles(c.l.fs, c.l.dir, s.base, layout.CleanedSuffix, &cfg); err != nil {
				return nil, err
			}
			if err := write(data[:start]); err != nil { // the batches kept whole so far
				return fail(err)
			}
		}
		if ns != nil {
			if err := write(c.out); err != nil {
				return fail(err)
			}
		}
	}
	if ns == nil {
		return nil, nil
	}
	c.stats.RecordsRemoved += removed
	c.stats.BytesWritten += written
	ns.publish(ns.size.Load(), max(ns.next.Load(), s.next.Load()))
	ns.created, ns.firstTimestamp = s.created, s.firstTimestamp
	if err := ns.seal(); err != nil {
		return fail(err)
	}
	if cap(c.out) > maxPooledBytes {
		c.out = nil // one huge batch does not pin its memory for the next
	}
	return ns, nil
}

// discard closes a compacted copy that will not be used and removes its
// files.
func (s *segment) discard() {
	s.deleted.Store(true)
	paths := []string{s.path(layout.KindLog), s.path(layout.KindIndex), s.path(layout.KindTimeIndex)}
	s.release()
	for _, p := range paths {
		_ = s.fs.Remove(p)
	}
}

// swap replaces old by its compacted copy ns if old is still a closed
// segment of the log, unchanged since it was read.
func (c *compactor) swap(old *segment, oldSize int64, ns *segment) error {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.segs.Load()
	idx := -1
	if cur != nil && l.err == nil && !l.closed {
		for i, s := range cur.segs {
			if s == old {
				idx = i
			}
		}
	}
	if idx < 0 || old == l.active || old.size.Load() != oldSize {
		ns.discard() // deleted, truncated or closed meanwhile
		return nil
	}
	kinds := []layout.Kind{layout.KindIndex, layout.KindTimeIndex, layout.KindLog}
	rename := func(from, to string) error {
		for _, k := range kinds {
			name := filepath.Join(l.dir, layout.SegmentFile(ns.base, k))
			if err := l.fs.Rename(name+from, name+to); err != nil {
				return err
			}
		}
		return l.fs.SyncDir(l.dir)
	}
	if err := rename(layout.CleanedSuffix, layout.SwapSuffix); err != nil {
		ns.discard()
		return fmt.Errorf("commitlog: compact %s: %w", old.path(layout.KindLog), err)
	}
	ns.suffix = layout.SwapSuffix
	if err := rename(layout.SwapSuffix, ""); err != nil {
		// The swap is committed on disk (the .log.swap exists) and the next
		// open finishes it; this log can no longer tell which files it has.
		l.err = fmt.Errorf("commitlog: compact %s: %w", old.path(layout.KindLog), err)
		ns.release()
		return l.err
	}
	ns.suffix = ""
	segs := append([]*segment(nil), cur.segs...)
	segs[idx] = ns
	l.segs.Store(&segmentList{segs: segs})
	old.release() // its files were renamed over: release touches no path
	c.stats.SegmentsWritten++
	if invariants.Enabled {
		l.checkLocked(nil)
	}
	return nil
}

// finishSwaps completes, on open, compactions that a crash interrupted:
// cleaned files are removed, and segments whose .log.swap exists get every
// .swap file renamed over the original; index .swap files without their
// .log.swap are removed.
func finishSwaps(l *Log, names []string) error {
	committed := map[int64]bool{}
	for _, name := range names {
		if real, ok := strings.CutSuffix(name, layout.SwapSuffix); ok {
			if base, k, ok := layout.ParseSegmentFile(real); ok && k == layout.KindLog {
				committed[base] = true
			}
		}
	}
	changed := false
	for _, name := range names {
		path := filepath.Join(l.dir, name)
		if strings.HasSuffix(name, layout.CleanedSuffix) {
			if err := l.fs.Remove(path); err != nil {
				return err
			}
			changed = true
		} else if real, ok := strings.CutSuffix(name, layout.SwapSuffix); ok {
			base, _, ok := layout.ParseSegmentFile(real)
			if !ok {
				continue
			}
			var err error
			if committed[base] {
				err = l.fs.Rename(path, filepath.Join(l.dir, real))
			} else {
				err = l.fs.Remove(path)
			}
			if err != nil {
				return err
			}
			changed = true
		}
	}
	if changed {
		return l.fs.SyncDir(l.dir)
	}
	return nil
}
