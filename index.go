package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync/atomic"

	"github.com/streamkit/commitlog/internal/vfs"
)

// On-disk format of the offset index (.index), one per segment:
//
//	+----------------------+----------------------+
//	| relative offset (4)  | file position (4)    |  entry 0
//	+----------------------+----------------------+
//	| ...                                         |  entry n-1
//
// Both fields are big-endian uint32. The relative offset is the base offset
// of a batch minus the segment's base offset; the position is where that
// batch starts in the .log file. Entries are sparse (one per
// IndexIntervalBytes of log, at most one per batch) and strictly increasing in
// both fields. The file has no header: its size is 8 × entries. Space for
// IndexMaxBytes is reserved when the segment is created and released when it
// rolls or the log closes. Entries that a truncation dropped are overwritten
// with zeros, so a reopened index never mistakes them for live ones.
//
// The time index (.timeindex) has the same shape with 12-byte entries:
// max timestamp so far (int64, milliseconds) then relative offset (uint32).
const (
	offsetIndexEntrySize = 8
	timeIndexEntrySize   = 12
)

// indexFile is a file of fixed-size entries, appended with WriteAt by the
// log's single writer and read through a read-only mapping by any number of
// readers. Readers see entries [0, n); the writer publishes an entry by
// storing n after writing it.
type indexFile struct {
	f         vfs.File
	m         vfs.Mapping // nil when the mapping would be empty
	entrySize int
	max       int                      // capacity in entries (the mapping's size / entrySize)
	n         atomic.Int64             // entries published to readers
	scratch   [timeIndexEntrySize]byte // the writer's entry buffer: no allocation per entry
}

// openIndexFile opens (creating if asked) an index file and maps space for
// maxBytes of entries. It reports invalid (with a nil error) when the file's
// size is not a whole number of entries: the caller then rebuilds it.
func openIndexFile(fs vfs.FS, name string, entrySize, maxBytes int, create bool) (*indexFile, bool, error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	f, err := fs.OpenFile(name, flag, 0o644)
	if err != nil {
		return nil, false, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, err
	}
	size := st.Size()
	maxBytes -= maxBytes % entrySize
	mapLen := max(int64(maxBytes), size-size%int64(entrySize))
	if create {
		if err := f.Allocate(0, int64(maxBytes)); err != nil && !errors.Is(err, vfs.ErrAllocateUnsupported) {
			f.Close()
			return nil, false, fmt.Errorf("reserve index space: %w", err)
		}
	}
	ix := &indexFile{f: f, entrySize: entrySize, max: int(mapLen) / entrySize}
	if mapLen > 0 {
		if ix.m, err = f.Map(int(mapLen)); err != nil {
			f.Close()
			return nil, false, err
		}
	}
	valid := size%int64(entrySize) == 0
	if valid {
		ix.n.Store(size / int64(entrySize))
	}
	return ix, valid, nil
}

func (ix *indexFile) len() int { return int(ix.n.Load()) }

func (ix *indexFile) full() bool { return ix.len() >= ix.max }

// entry returns the bytes of entry i, which must be below len().
func (ix *indexFile) entry(i int) []byte {
	off := i * ix.entrySize
	return ix.m.Bytes()[off : off+ix.entrySize]
}

// appendEntry writes e (entrySize bytes) after the last entry and publishes it.
func (ix *indexFile) appendEntry(e []byte) error {
	n := ix.n.Load()
	if int(n) >= ix.max {
		return errors.New("index full")
	}
	if _, err := ix.f.WriteAt(e, n*int64(ix.entrySize)); err != nil {
		return err
	}
	ix.n.Store(n + 1)
	return nil
}

// truncate drops entries [n, len()) and overwrites them with zeros.
func (ix *indexFile) truncate(n int) error {
	old := ix.len()
	if n >= old {
		return nil
	}
	ix.n.Store(int64(n))
	return writeZeros(ix.f, int64(n*ix.entrySize), int64((old-n)*ix.entrySize))
}

// zeroChunk is what writeZeros writes at a time.
var zeroChunk [64 << 10]byte

// writeZeros overwrites [off, off+n) of f with zeros, a bounded chunk at a
// time.
func writeZeros(f interface {
	WriteAt([]byte, int64) (int, error)
}, off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeroChunk)))
		if _, err := f.WriteAt(zeroChunk[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

// reset forgets every entry without touching the file; the caller rewrites
// them (rebuilding the index from the log) and then trims.
func (ix *indexFile) reset() { ix.n.Store(0) }

// trim cuts the file to its entries, releasing reserved space.
func (ix *indexFile) trim() error {
	return ix.f.Truncate(int64(ix.len() * ix.entrySize))
}

func (ix *indexFile) sync() error { return ix.f.Sync() }

func (ix *indexFile) close() error {
	var err error
	if ix.m != nil {
		err = ix.m.Close()
	}
	return errors.Join(err, ix.f.Close())
}

// offsetIndex maps offsets to positions in the segment's .log file.
type offsetIndex struct {
	*indexFile
	base int64
}

func (x offsetIndex) at(i int) (rel uint32, pos uint32) {
	e := x.entry(i)
	return binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:])
}

func (x offsetIndex) add(offset int64, pos int64) error {
	e := x.scratch[:offsetIndexEntrySize]
	binary.BigEndian.PutUint32(e, uint32(offset-x.base))
	binary.BigEndian.PutUint32(e[4:], uint32(pos))
	return x.appendEntry(e)
}

// lookup returns the position of the last indexed batch whose base offset is
// at most offset, or 0 when there is none: reading batches from there finds
// the batch holding offset.
func (x offsetIndex) lookup(offset int64) int64 {
	rel := offset - x.base
	n := x.len()
	i := sort.Search(n, func(i int) bool { r, _ := x.at(i); return int64(r) > rel })
	if i == 0 {
		return 0
	}
	_, pos := x.at(i - 1)
	return int64(pos)
}

// truncateToPosition drops the entries at or past pos.
func (x offsetIndex) truncateToPosition(pos int64) error {
	n := x.len()
	i := sort.Search(n, func(i int) bool { _, p := x.at(i); return int64(p) >= pos })
	return x.truncate(i)
}

// validate checks the entries after a clean open: trailing zeroed entries
// (left by a truncation) are dropped, and the last entry must lie inside the
// log and after the one before it. It reports false when the index must be
// rebuilt.
func (x offsetIndex) validate(logSize int64) bool {
	n := x.len()
	for n > 1 {
		if r, p := x.at(n - 1); r != 0 || p != 0 {
			break
		}
		n--
	}
	x.n.Store(int64(n))
	if n == 0 {
		return true
	}
	r, p := x.at(n - 1)
	if int64(p) >= logSize {
		return false
	}
	if n > 1 {
		pr, pp := x.at(n - 2)
		if pr >= r || pp >= p {
			return false
		}
	}
	return true
}

// timeIndex maps timestamps to offsets: entry i says that the records before
// its offset (and the record batch at it) have timestamps at most its
// timestamp. Timestamps strictly increase across entries.
type timeIndex struct {
	*indexFile
	base int64
}

func (x timeIndex) at(i int) (ts int64, rel uint32) {
	e := x.entry(i)
	return int64(binary.BigEndian.Uint64(e)), binary.BigEndian.Uint32(e[8:])
}

// last returns the newest entry's timestamp and absolute offset, or ok=false.
func (x timeIndex) last() (ts, offset int64, ok bool) {
	n := x.len()
	if n == 0 {
		return 0, 0, false
	}
	ts, rel := x.at(n - 1)
	return ts, x.base + int64(rel), true
}

// add appends (ts, offset) when ts is newer than the last entry.
func (x timeIndex) add(ts int64, offset int64) error {
	if lastTs, _, ok := x.last(); ok && ts <= lastTs {
		return nil
	}
	e := x.scratch[:timeIndexEntrySize]
	binary.BigEndian.PutUint64(e, uint64(ts))
	binary.BigEndian.PutUint32(e[8:], uint32(offset-x.base))
	return x.appendEntry(e)
}

// lookup returns the offset of the last entry whose timestamp is below ts,
// or the segment's base offset when there is none: every record before that
// offset is older than ts, so a search for ts may start there.
func (x timeIndex) lookup(ts int64) int64 {
	n := x.len()
	i := sort.Search(n, func(i int) bool { t, _ := x.at(i); return t >= ts })
	if i == 0 {
		return x.base
	}
	_, rel := x.at(i - 1)
	return x.base + int64(rel)
}

// truncateToOffset drops the entries at or past offset.
func (x timeIndex) truncateToOffset(offset int64) error {
	n := x.len()
	i := sort.Search(n, func(i int) bool { _, r := x.at(i); return x.base+int64(r) >= offset })
	return x.truncate(i)
}

// validate is offsetIndex.validate for the time index: end is the
// segment's next offset.
func (x timeIndex) validate(end int64) bool {
	n := x.len()
	for n > 1 {
		if t, r := x.at(n - 1); t != 0 || r != 0 {
			break
		}
		n--
	}
	x.n.Store(int64(n))
	if n == 0 {
		return true
	}
	t, r := x.at(n - 1)
	if x.base+int64(r) >= end {
		return false
	}
	if n > 1 {
		pt, pr := x.at(n - 2)
		if pt >= t || pr >= r {
			return false
		}
	}
	return true
}
