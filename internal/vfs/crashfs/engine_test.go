package crashfs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/vfs"
	"github.com/streamkit/commitlog/internal/vfs/crashfs"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomized tests (0: from the environment variable CRASHFS_SEED, else the clock)")

func randomSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if s := os.Getenv("CRASHFS_SEED"); seed == 0 && s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "CRASHFS_SEED")
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d: replay with go test ./internal/vfs/crashfs -run '%s' -seed %d", seed, t.Name(), seed)
	return seed
}

// TestRandomAgainstModel applies random writes, truncations, syncs and
// crashes to a file and to a model holding two byte slices, the page
// cache and the disk, and compares them after each crash.
func TestRandomAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(randomSeed(t), 0))
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	fs := crashfs.New(noSyncFS{vfs.Default})
	f := create(t, fs, name)
	var cache, disk []byte
	const span = 1 << 12
	for step := range 3000 {
		switch r := rng.IntN(100); {
		case r < 55:
			off := rng.Int64N(span)
			p := make([]byte, rng.IntN(300)+1)
			for i := range p {
				p[i] = byte(rng.IntN(255) + 1)
			}
			write(t, f, off, string(p))
			if end := int(off) + len(p); end > len(cache) {
				cache = append(cache, make([]byte, end-len(cache))...)
			}
			copy(cache[off:], p)
		case r < 70:
			size := rng.Int64N(span)
			require.NoError(t, f.Truncate(size))
			if int(size) <= len(cache) {
				cache = cache[:size]
			} else {
				cache = append(cache, make([]byte, int(size)-len(cache))...)
			}
		case r < 85:
			require.NoError(t, f.Sync())
			disk = bytes.Clone(cache)
		default:
			fs = crash(t, fs)
			cache = bytes.Clone(disk)
			var err error
			f, err = fs.OpenFile(name, os.O_RDWR, 0)
			require.NoError(t, err)
		}
		if step%50 == 0 || step == 2999 {
			require.Equal(t, string(cache), content(t, fs, name), "step %d: the page cache", step)
		}
	}
	fs = crash(t, fs)
	require.Equal(t, string(disk), content(t, fs, name))
}

// seg is a segment written as the storage engine writes one: a .log of
// record batches appended with WriteAt into reserved space and read
// through a mapping, and a sparse .index of (relative offset, position)
// entries appended the same way.
type seg struct {
	log, index vfs.File
	logMap     vfs.Mapping
	size       int64 // bytes of whole batches
	entries    int64
	next       int64 // offset of the next record
}

const segReserve = 4 << 20

func openSeg(t *testing.T, fs vfs.FS, dir string, create bool) *seg {
	t.Helper()
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	s := &seg{}
	var err error
	s.log, err = fs.OpenFile(filepath.Join(dir, "00000000000000000000.log"), flag, 0o644)
	require.NoError(t, err)
	s.index, err = fs.OpenFile(filepath.Join(dir, "00000000000000000000.index"), flag, 0o644)
	require.NoError(t, err)
	if create {
		for _, f := range []vfs.File{s.log, s.index} {
			if err := f.Allocate(0, segReserve); err != nil && !errors.Is(err, vfs.ErrAllocateUnsupported) {
				require.NoError(t, err)
			}
		}
		require.NoError(t, fs.SyncDir(dir))
	}
	s.logMap, err = s.log.Map(segReserve)
	if errors.Is(err, vfs.ErrMmapUnsupported) {
		t.Skip(err)
	}
	require.NoError(t, err)
	return s
}

// recover is the engine's recovery in miniature: validate every batch of
// the log, cut the file after the last valid one, drop index entries that
// point past it. It returns the offsets found.
func (s *seg) recover(t *testing.T) {
	t.Helper()
	st, err := s.log.Stat()
	require.NoError(t, err)
	data := s.logMap.Bytes()[:st.Size()]
	var pos int64
	s.next = 0
	for pos < int64(len(data)) {
		h, err := batch.Check(data[pos:], len(data)-int(pos))
		if err != nil || h.BaseOffset != s.next {
			break
		}
		s.next = h.NextOffset()
		pos += int64(h.Size())
	}
	s.size = pos
	require.NoError(t, s.log.Truncate(pos))
	ist, err := s.index.Stat()
	require.NoError(t, err)
	idx := make([]byte, ist.Size())
	_, err = s.index.ReadAt(idx, 0)
	require.NoError(t, err)
	s.entries = 0
	for i := 0; i+8 <= len(idx); i += 8 {
		if int64(binary.BigEndian.Uint32(idx[i+4:])) >= s.size {
			break
		}
		s.entries++
	}
	require.NoError(t, s.index.Truncate(s.entries*8))
	require.NoError(t, s.log.Sync())
	require.NoError(t, s.index.Sync())
}

func (s *seg) append(t *testing.T, records int) {
	t.Helper()
	var b batch.Builder
	for i := range records {
		b.Add(int64(i), []byte("key"), bytes.Repeat([]byte{'v'}, 200+i), nil)
	}
	buf, err := b.Build(nil)
	require.NoError(t, err)
	batch.SetBaseOffset(buf, s.next)
	_, err = s.log.WriteAt(buf, s.size)
	require.NoError(t, err)
	var e [8]byte
	binary.BigEndian.PutUint32(e[:], uint32(s.next))
	binary.BigEndian.PutUint32(e[4:], uint32(s.size))
	_, err = s.index.WriteAt(e[:], s.entries*8)
	require.NoError(t, err)
	s.entries++
	s.size += int64(len(buf))
	s.next += int64(records)
	require.Equal(t, buf, s.logMap.Bytes()[s.size-int64(len(buf)):s.size])
}

func (s *seg) sync(t *testing.T) {
	t.Helper()
	require.NoError(t, s.log.Sync())
	require.NoError(t, s.index.Sync())
}

// TestEngineShapedRecovery writes a segment the way the storage engine
// does, syncs part of it, crashes, and recovers: what was synced comes
// back whole, everything after it is gone, and the log goes on from
// there, across several crashes.
func TestEngineShapedRecovery(t *testing.T) {
	rng := rand.New(rand.NewPCG(randomSeed(t), 0))
	dir := t.TempDir()
	fs := crashfs.New(noSyncFS{vfs.Default})
	s := openSeg(t, fs, dir, true)
	for round := range 5 {
		durable := s.next // offset after the last synced batch
		for range 50 + rng.IntN(50) {
			s.append(t, 1+rng.IntN(5))
			if rng.IntN(8) == 0 {
				s.sync(t)
				durable = s.next
			}
		}
		if round%2 == 1 {
			// A zeroed tail, as the engine truncates: overwrite synced
			// bytes, then crash before syncing that.
			zeros := make([]byte, s.size/2)
			_, err := s.log.WriteAt(zeros, s.size-int64(len(zeros)))
			require.NoError(t, err)
		}
		var err error
		fs, err = fs.Crash()
		require.NoError(t, err)
		s = openSeg(t, fs, dir, false)
		s.recover(t)
		require.Equal(t, durable, s.next, "round %d: recovery finds exactly the synced batches", round)
		if durable > 0 {
			require.Positive(t, s.entries, "round %d: the synced index entries survive", round)
		}
	}
}

// TestCrashUnderLoad crashes while goroutines append and sync: every file
// comes back as exactly one of the prefixes its writer synced, at least
// the last one it saw acknowledged, and the writers' later operations
// fail with ErrCrashed.
func TestCrashUnderLoad(t *testing.T) {
	dir := t.TempDir()
	fs := crashfs.New(noSyncFS{vfs.Default})
	const writers = 8
	type progress struct {
		mu     sync.Mutex
		synced map[int64]bool // lengths at each Sync that began
		acked  int64          // the length at the last Sync that returned nil
	}
	prog := make([]*progress, writers)
	files := make([]vfs.File, writers)
	for i := range writers {
		prog[i] = &progress{synced: map[int64]bool{0: true}}
		files[i] = create(t, fs, filepath.Join(dir, fmt.Sprint(i)))
	}
	started := make(chan struct{}, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, p := files[i], prog[i]
			var size int64
			chunk := bytes.Repeat([]byte{byte('a' + i)}, 1000)
			for n := 0; ; n++ {
				if _, err := f.WriteAt(chunk, size); err != nil {
					assert.ErrorIs(t, err, crashfs.ErrCrashed)
					return
				}
				size += int64(len(chunk))
				if n%5 == 4 {
					p.mu.Lock()
					p.synced[size] = true
					p.mu.Unlock()
					if err := f.Sync(); err != nil {
						assert.ErrorIs(t, err, crashfs.ErrCrashed)
						return
					}
					p.mu.Lock()
					p.acked = size
					p.mu.Unlock()
				}
				if n == 20 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range writers {
		<-started
	}
	fs = crash(t, fs)
	wg.Wait()
	for i := range writers {
		got := content(t, fs, filepath.Join(dir, fmt.Sprint(i)))
		p := prog[i]
		assert.True(t, p.synced[int64(len(got))], "writer %d: %d bytes is not a synced length", i, len(got))
		assert.GreaterOrEqual(t, int64(len(got)), p.acked, "writer %d lost acknowledged bytes", i)
		assert.Equal(t, bytes.Repeat([]byte{byte('a' + i)}, len(got)), []byte(got))
	}
}
