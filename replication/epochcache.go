package replication

// The leader-epoch checkpoint, Kafka's text format, one file per partition
// directory named EpochCheckpointFile:
//
//	0                  format version (only 0 exists)
//	2                  number of entries
//	0 0                "epoch startOffset", one entry per line,
//	3 150              strictly increasing in both columns
//
// Lines end with '\n'; numbers are decimal, epochs int32 >= 0, offsets
// int64 >= 0. The file is replaced whole on every change, atomically
// (temporary file, fsync, rename, directory fsync: vfs.WriteFileAtomic), so
// a crash leaves the old or the new content. It is untrusted on read: at
// most maxCheckpointSize bytes are read (checked before allocating), and
// anything else than the layout above is an error wrapping
// ErrCorruptCheckpoint that names the file and line.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/streamkit/commitlog/internal/vfs"
)

// EpochCheckpointFile is the name of the checkpoint in a partition
// directory.
const EpochCheckpointFile = "leader-epoch-checkpoint"

// checkpointVersion is the only format version.
const checkpointVersion = 0

// maxCheckpointSize bounds the checkpoint file read at open: about 40,000
// entries, far more than the epochs a partition lives through.
const maxCheckpointSize = 1 << 20

// EpochEntry says that the leader of EpochEntry.Epoch wrote its first
// record at StartOffset.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// EpochCache maps leader epochs to the offset where each began (Kafka's
// LeaderEpochFileCache), kept in memory and checkpointed to a file after
// every change. It is safe for concurrent use.
//
// Invariant: entries are strictly increasing in Epoch and in StartOffset.
//
// A failed checkpoint write is returned but the in-memory cache keeps the
// change (it is the truth for the running broker; the next change rewrites
// the whole file). After a crash, a checkpoint that lags the log is
// corrected by NewReplica truncating the cache to the log's end, and a
// missing entry costs only a longer truncation, as in Kafka.
type EpochCache struct {
	fs   vfs.FS
	path string

	mu      sync.Mutex   // guards entries; taken after Replica.mu
	entries []EpochEntry // see the invariant
}

// OpenEpochCache loads the checkpoint at path (usually
// dir/EpochCheckpointFile). A missing file is an empty cache; a corrupt
// one is an error wrapping ErrCorruptCheckpoint.
func OpenEpochCache(path string) (*EpochCache, error) {
	return OpenEpochCacheFS(vfs.Default, path)
}

// OpenEpochCacheFS is OpenEpochCache on the file system fsys.
func OpenEpochCacheFS(fsys vfs.FS, path string) (*EpochCache, error) {
	c := &EpochCache{fs: fsys, path: path}
	b, err := readBounded(fsys, path, maxCheckpointSize)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replication: open leader epoch checkpoint: %w", err)
	}
	entries, err := parseCheckpoint(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.entries = entries
	return c, nil
}

// readBounded reads the whole file name, failing (before allocating) when
// it is larger than limit.
func readBounded(fsys vfs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%w: %s: %d bytes, limit %d", ErrCorruptCheckpoint, name, fi.Size(), limit)
	}
	b := make([]byte, fi.Size())
	n, err := f.ReadAt(b, 0)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		return nil, err
	}
	return b, nil
}

// parseCheckpoint decodes a checkpoint file's content. It is a pure
// function over untrusted bytes (fuzzed).
func parseCheckpoint(b []byte) ([]EpochEntry, error) {
	lineNo := 0
	next := func() ([]byte, bool) {
		if len(b) == 0 {
			return nil, false
		}
		lineNo++
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			line := b
			b = nil
			return line, true
		}
		line := b[:i]
		b = b[i+1:]
		return line, true
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrCorruptCheckpoint, lineNo, fmt.Sprintf(format, args...))
	}

	line, ok := next()
	if !ok {
		return nil, bad("missing version")
	}
	if v, err := strconv.Atoi(string(line)); err != nil || v != checkpointVersion {
		return nil, bad("version %q, want %d", line, checkpointVersion)
	}
	line, ok = next()
	if !ok {
		return nil, bad("missing entry count")
	}
	count, err := strconv.Atoi(string(line))
	if err != nil || count < 0 {
		return nil, bad("entry count %q", line)
	}
	// Each entry needs at least 4 bytes ("0 0\n"); do not trust count for
	// the allocation.
	entries := make([]EpochEntry, 0, min(count, len(b)/4+1))
	for i := range count {
		line, ok := next()
		if !ok {
			return nil, bad("%d entries, want %d", i, count)
		}
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 {
			return nil, bad("entry %q: want \"epoch offset\"", line)
		}
		epoch, err1 := strconv.ParseInt(string(line[:sp]), 10, 32)
		start, err2 := strconv.ParseInt(string(line[sp+1:]), 10, 64)
		if err1 != nil || err2 != nil || epoch < 0 || start < 0 {
			return nil, bad("entry %q: want \"epoch offset\", both non-negative", line)
		}
		e := EpochEntry{Epoch: int32(epoch), StartOffset: start}
		if n := len(entries); n > 0 && (e.Epoch <= entries[n-1].Epoch || e.StartOffset <= entries[n-1].StartOffset) {
			return nil, bad("entry %d %d does not follow %d %d", e.Epoch, e.StartOffset, entries[n-1].Epoch, entries[n-1].StartOffset)
		}
		entries = append(entries, e)
	}
	if len(b) > 0 {
		lineNo++
		return nil, bad("trailing data after %d entries", count)
	}
	return entries, nil
}

// formatCheckpoint encodes entries in the checkpoint format.
func formatCheckpoint(entries []EpochEntry) []byte {
	b := make([]byte, 0, 8+len(entries)*16)
	b = strconv.AppendInt(b, checkpointVersion, 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, int64(len(entries)), 10)
	b = append(b, '\n')
	for _, e := range entries {
		b = strconv.AppendInt(b, int64(e.Epoch), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.StartOffset, 10)
		b = append(b, '\n')
	}
	return b
}

// Path is the checkpoint file's path.
func (c *EpochCache) Path() string { return c.path }

// persistLocked writes the checkpoint. The caller holds c.mu.
func (c *EpochCache) persistLocked() error {
	if err := vfs.WriteFileAtomic(c.fs, c.path, formatCheckpoint(c.entries), 0o644); err != nil {
		return fmt.Errorf("replication: checkpoint leader epochs: %w", err)
	}
	return nil
}

// Assign records that epoch began at startOffset. It is a no-op when epoch
// is not above the latest epoch; otherwise entries starting at or after
// startOffset are dropped first (the new epoch supersedes them: their
// records were truncated). Negative arguments are an error.
func (c *EpochCache) Assign(epoch int32, startOffset int64) error {
	if epoch < 0 || startOffset < 0 {
		return fmt.Errorf("replication: assign leader epoch %d at offset %d: negative", epoch, startOffset)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.entries); n > 0 && epoch <= c.entries[n-1].Epoch {
		return nil
	}
	c.entries = c.entries[:c.firstAtOrAfterLocked(startOffset)]
	c.entries = append(c.entries, EpochEntry{Epoch: epoch, StartOffset: startOffset})
	return c.persistLocked()
}

// firstAtOrAfterLocked is the index of the first entry starting at or after
// offset.
func (c *EpochCache) firstAtOrAfterLocked(offset int64) int {
	i, _ := slices.BinarySearchFunc(c.entries, offset, func(e EpochEntry, off int64) int {
		switch {
		case e.StartOffset < off:
			return -1
		case e.StartOffset > off:
			return 1
		}
		return 0
	})
	return i
}

// Latest returns the latest entry; ok is false when the cache is empty.
func (c *EpochCache) Latest() (epoch int32, startOffset int64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) == 0 {
		return -1, -1, false
	}
	e := c.entries[len(c.entries)-1]
	return e.Epoch, e.StartOffset, true
}

// latestEpoch is the latest epoch, or -1 when the cache is empty.
func (c *EpochCache) latestEpoch() int32 {
	e, _, _ := c.Latest()
	return e
}

// EndOffsetFor answers OffsetForLeaderEpoch for a log ending at logEnd,
// with Kafka's semantics (LeaderEpochFileCache.endOffsetFor):
//
//   - requested is the latest epoch: (requested, logEnd);
//   - otherwise, the largest known epoch <= requested and the start offset
//     of the entry after it (where that epoch ended);
//   - requested is below the first entry: (requested, first start offset),
//     since the log holds nothing of epochs before the first entry;
//   - requested is -1, above every entry, or the cache is empty: (-1, -1).
func (c *EpochCache) EndOffsetFor(requested int32, logEnd int64) (foundEpoch int32, endOffset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.entries)
	if requested < 0 || n == 0 {
		return -1, -1
	}
	if c.entries[n-1].Epoch == requested {
		return requested, logEnd
	}
	// higher: the first entry with an epoch above requested.
	higher, _ := slices.BinarySearchFunc(c.entries, requested+1, func(e EpochEntry, ep int32) int {
		switch {
		case e.Epoch < ep:
			return -1
		case e.Epoch > ep:
			return 1
		}
		return 0
	})
	if higher == n {
		return -1, -1
	}
	if higher == 0 {
		return requested, c.entries[0].StartOffset
	}
	return c.entries[higher-1].Epoch, c.entries[higher].StartOffset
}

// TruncateFrom drops the entries starting at or after offset, after the log
// was truncated to end there.
func (c *EpochCache) TruncateFrom(offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.firstAtOrAfterLocked(max(offset, 0))
	if i == len(c.entries) {
		return nil
	}
	c.entries = c.entries[:i]
	return c.persistLocked()
}

// TruncateBefore follows the log start moving up to offset (retention): the
// entries that began before offset are dropped except the last of them,
// which covers offset and gets offset as its start.
func (c *EpochCache) TruncateBefore(offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.firstAtOrAfterLocked(offset)
	if j < len(c.entries) && c.entries[j].StartOffset == offset {
		j++
	}
	// entries[:j] start at or before offset; the last of them covers it.
	if j == 0 || (j == 1 && c.entries[0].StartOffset == offset) {
		return nil
	}
	c.entries[j-1].StartOffset = offset
	c.entries = slices.Delete(c.entries, 0, j-1)
	return c.persistLocked()
}

// clear drops every entry (the log was emptied and restarted elsewhere).
func (c *EpochCache) clear() error {
	return c.TruncateFrom(math.MinInt64)
}

// Entries returns a copy of the entries, oldest first.
func (c *EpochCache) Entries() []EpochEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.entries)
}
