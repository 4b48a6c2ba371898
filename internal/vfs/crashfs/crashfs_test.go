package crashfs_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/vfs"
	"github.com/streamkit/commitlog/internal/vfs/crashfs"
	"github.com/streamkit/commitlog/internal/vfs/errorfs"
)

// create makes a file through fs and syncs its directory, so that only its
// data is at stake.
func create(t *testing.T, fs vfs.FS, name string) vfs.File {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	require.NoError(t, err)
	require.NoError(t, fs.SyncDir(filepath.Dir(name)))
	return f
}

func write(t *testing.T, f vfs.File, off int64, s string) {
	t.Helper()
	n, err := f.WriteAt([]byte(s), off)
	require.NoError(t, err)
	require.Equal(t, len(s), n)
}

// content reads a whole file through fs.
func content(t *testing.T, fs vfs.FS, name string) string {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	b := make([]byte, st.Size())
	n, err := f.ReadAt(b, 0)
	if err != io.EOF {
		require.NoError(t, err)
	}
	require.Equal(t, len(b), n)
	return string(b)
}

func crash(t *testing.T, fs *crashfs.FS) *crashfs.FS {
	t.Helper()
	next, err := fs.Crash()
	require.NoError(t, err)
	return next
}

func TestUnsyncedWritesVanish(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	fs := crashfs.New(vfs.Default)
	f := create(t, fs, name)
	write(t, f, 0, "hello")
	require.NoError(t, f.Sync())
	write(t, f, 5, " world") // appended, not synced
	write(t, f, 0, "J")      // overwrites a synced byte
	write(t, f, 1, "E")
	write(t, f, 0, "XY") // again: the first saved copy wins
	assert.Equal(t, "XYllo world", content(t, fs, name), "the page cache shows every write")

	fs = crash(t, fs)
	assert.Equal(t, "hello", content(t, fs, name))

	// The next incarnation writes and syncs; a second crash keeps that.
	f = create(t, fs, filepath.Join(dir, "g"))
	write(t, f, 0, "abc")
	require.NoError(t, f.Sync())
	g, err := fs.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	write(t, g, 5, "!")
	require.NoError(t, g.Sync())
	write(t, g, 6, "lost")
	fs = crash(t, fs)
	assert.Equal(t, "hello!", content(t, fs, name))
	assert.Equal(t, "abc", content(t, fs, filepath.Join(dir, "g")))
}

func TestTruncate(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	fs := crashfs.New(vfs.Default)
	f := create(t, fs, name)
	write(t, f, 0, "0123456789")
	require.NoError(t, f.Sync())

	require.NoError(t, f.Truncate(4))
	write(t, f, 6, "xx") // the hole [4, 6) is zeros now
	require.NoError(t, f.Truncate(3))
	require.NoError(t, f.Truncate(12))
	assert.Equal(t, "012\x00\x00\x00\x00\x00\x00\x00\x00\x00", content(t, fs, name))
	fs = crash(t, fs)
	assert.Equal(t, "0123456789", content(t, fs, name), "an unsynced truncation is undone")

	// A synced truncation sticks; growth after it is dropped.
	f, err := fs.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(2))
	require.NoError(t, f.Sync())
	write(t, f, 2, "more")
	fs = crash(t, fs)
	assert.Equal(t, "01", content(t, fs, name))

	// O_TRUNC is a truncation like any other.
	f, err = fs.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	require.NoError(t, err)
	write(t, f, 0, "z")
	_, err = f.ReadAt(make([]byte, 1), 0)
	assert.Error(t, err, "write-only")
	fs = crash(t, fs)
	assert.Equal(t, "01", content(t, fs, name))
}

func TestDirectoryEntries(t *testing.T) {
	dir := t.TempDir()
	fs := crashfs.New(vfs.Default)

	// Created, directory synced, data not synced: an empty file remains.
	g, err := fs.OpenFile(filepath.Join(dir, "empty"), os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	require.NoError(t, fs.SyncDir(dir))
	write(t, g, 0, "data")
	// Created and synced, but the directory was not synced since: lost.
	f, err := fs.OpenFile(filepath.Join(dir, "new"), os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	write(t, f, 0, "data")
	require.NoError(t, f.Sync())
	// Created after the last SyncDir: lost.
	_, err = fs.OpenFile(filepath.Join(dir, "late"), os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	// A pending file renamed to a fresh name stays pending.
	h, err := fs.OpenFile(filepath.Join(dir, "tmp"), os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	require.NoError(t, h.Sync())
	require.NoError(t, fs.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, "renamed")))

	fs = crash(t, fs)
	for name, want := range map[string]bool{"new": false, "empty": true, "late": false, "tmp": false, "renamed": false} {
		_, err := fs.Stat(filepath.Join(dir, name))
		assert.Equal(t, want, err == nil, "%s: %v", name, err)
	}
	assert.Equal(t, "", content(t, fs, filepath.Join(dir, "empty")))

	// WriteFileAtomic over an existing file is durable once it returns;
	// a durable file survives removal of nothing.
	name := filepath.Join(dir, "checkpoint")
	require.NoError(t, vfs.WriteFileAtomic(fs, name, []byte("v1"), 0o644))
	require.NoError(t, vfs.WriteFileAtomic(fs, name, []byte("v2"), 0o644))
	fs = crash(t, fs)
	assert.Equal(t, "v2", content(t, fs, name))

	// Removes are durable at once.
	require.NoError(t, fs.Remove(name))
	fs = crash(t, fs)
	_, err = fs.Stat(name)
	assert.ErrorIs(t, err, os.ErrNotExist)

	// A directory renamed with files in it takes their state along.
	sub := filepath.Join(dir, "sub")
	require.NoError(t, fs.MkdirAll(sub, 0o755))
	f = create(t, fs, filepath.Join(sub, "f"))
	write(t, f, 0, "kept")
	require.NoError(t, f.Sync())
	write(t, f, 4, "lost")
	require.NoError(t, fs.Rename(sub, sub+".gone"))
	fs = crash(t, fs)
	assert.Equal(t, "kept", content(t, fs, filepath.Join(sub+".gone", "f")))
}

func TestCrashedIncarnationFails(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	old := crashfs.New(vfs.Default)
	f := create(t, old, name)
	write(t, f, 0, "abc")
	require.NoError(t, f.Sync())
	m, err := f.Map(4096)
	require.NoError(t, err)
	defer m.Close()
	write(t, f, 3, "def")
	lk, err := old.Lock(filepath.Join(dir, "LOCK"))
	require.NoError(t, err)

	fs := crash(t, old)

	// The dead broker can do nothing.
	_, err = f.WriteAt([]byte("x"), 0)
	assert.ErrorIs(t, err, crashfs.ErrCrashed)
	_, err = f.ReadAt(make([]byte, 1), 0)
	assert.ErrorIs(t, err, crashfs.ErrCrashed)
	assert.ErrorIs(t, f.Sync(), crashfs.ErrCrashed)
	assert.ErrorIs(t, f.Truncate(0), crashfs.ErrCrashed)
	assert.ErrorIs(t, f.Allocate(0, 10), crashfs.ErrCrashed)
	_, err = f.Stat()
	assert.ErrorIs(t, err, crashfs.ErrCrashed)
	_, err = f.Map(10)
	assert.ErrorIs(t, err, crashfs.ErrCrashed)
	_, err = f.SyscallConn()
	assert.ErrorIs(t, err, crashfs.ErrCrashed)
	_, err = old.OpenFile(name, os.O_RDONLY, 0)
	assert.ErrorIs(t, err, crashfs.ErrCrashed)
	assert.ErrorIs(t, old.Remove(name), crashfs.ErrCrashed)
	assert.ErrorIs(t, old.Rename(name, name+"2"), crashfs.ErrCrashed)
	assert.ErrorIs(t, old.SyncDir(dir), crashfs.ErrCrashed)
	assert.ErrorIs(t, old.MkdirAll(dir, 0o755), crashfs.ErrCrashed)
	_, err = old.ReadDir(dir)
	assert.ErrorIs(t, err, crashfs.ErrCrashed)
	_, err = old.Stat(name)
	assert.ErrorIs(t, err, crashfs.ErrCrashed)
	_, err = old.Lock(filepath.Join(dir, "LOCK"))
	assert.ErrorIs(t, err, crashfs.ErrCrashed)
	var pe *os.PathError
	assert.ErrorAs(t, f.Sync(), &pe, "errors name the operation and file")
	_, err = old.Crash()
	assert.ErrorIs(t, err, crashfs.ErrCrashed)

	// Its mapping stays readable: no fault for a goroutine still reading.
	assert.Equal(t, "abcdef", string(m.Bytes()[:6]))
	// Closing its files and lock is harmless.
	assert.NoError(t, f.Close())
	assert.NoError(t, lk.Close())

	// The lock died with it; the new incarnation sees the synced bytes.
	lk2, err := fs.Lock(filepath.Join(dir, "LOCK"))
	require.NoError(t, err)
	require.NoError(t, lk2.Close())
	assert.Equal(t, "abc", content(t, fs, name))

	// Closing twice is an error in a live incarnation.
	g, err := fs.OpenFile(name, os.O_RDONLY, 0)
	require.NoError(t, err)
	require.NoError(t, g.Close())
	assert.ErrorIs(t, g.Close(), os.ErrClosed)
}

func TestFailedSyncMakesNothingDurable(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	rule := errorfs.Nth(1, errorfs.OpSync)
	fs := crashfs.New(errorfs.New(vfs.Default, rule))
	f := create(t, fs, name)
	write(t, f, 0, "abc")
	assert.ErrorIs(t, f.Sync(), errorfs.ErrInjected)
	fs = crash(t, fs)
	assert.Equal(t, "", content(t, fs, name))
}

// An append-only file written the way the storage engine writes a segment:
// space reserved with Allocate, batches appended with WriteAt, read back
// through a mapping, synced now and then.
func TestMappedAppendsSurviveUpToTheLastSync(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "00000000000000000000.log")
	fs := crashfs.New(vfs.Default)
	const reserve = 1 << 20
	f := create(t, fs, name)
	if err := f.Allocate(0, reserve); err != nil && !errors.Is(err, vfs.ErrAllocateUnsupported) {
		require.NoError(t, err)
	}
	m, err := f.Map(reserve)
	if errors.Is(err, vfs.ErrMmapUnsupported) {
		t.Skip(err)
	}
	require.NoError(t, err)
	defer m.Close()

	var written []byte
	synced := 0
	for i := range 200 {
		rec := bytes.Repeat([]byte{byte('a' + i%26)}, 100+i)
		write(t, f, int64(len(written)), string(rec))
		written = append(written, rec...)
		require.Equal(t, written, m.Bytes()[:len(written)], "the mapping sees the write")
		if i%37 == 36 {
			require.NoError(t, f.Sync())
			synced = len(written)
		}
	}
	require.Less(t, synced, len(written))

	fs = crash(t, fs)
	f, err = fs.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	require.Equal(t, int64(synced), st.Size())
	m2, err := f.Map(reserve)
	require.NoError(t, err)
	defer m2.Close()
	assert.Equal(t, written[:synced], m2.Bytes()[:synced])
	assert.Equal(t, written, m.Bytes()[:len(written)], "the dead incarnation's mapping keeps its pages")

	// Appending goes on where the synced data ends.
	write(t, f, int64(synced), "next")
	assert.Equal(t, "next", string(m2.Bytes()[synced:synced+4]))
}

// Tens of megabytes of appends cost no bookkeeping; a crash copies the
// file once.
func TestLargeAppends(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "big")
	fs := crashfs.New(noSyncFS{vfs.Default})
	f := create(t, fs, name)
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	const total = 32 << 20
	for off := int64(0); off < total; off += int64(len(chunk)) {
		_, err := f.WriteAt(chunk, off)
		require.NoError(t, err)
		if off == total/2 {
			require.NoError(t, f.Sync())
		}
	}
	fs = crash(t, fs)
	st, err := fs.Stat(name)
	require.NoError(t, err)
	assert.Equal(t, int64(total/2+len(chunk)), st.Size())
}

// noSyncFS skips fsync: the disk under crashfs need not be durable.
type noSyncFS struct{ vfs.FS }

func (fs noSyncFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := fs.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (noSyncFS) SyncDir(string) error { return nil }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error { return nil }

// A mapping of the dead incarnation keeps its pages even when the file was
// clean and the next incarnation cuts it: no fault for a stale reader.
func TestOldMappingOutlivesTruncation(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	fs := crashfs.New(vfs.Default)
	f := create(t, fs, name)
	write(t, f, 0, "abc")
	require.NoError(t, f.Sync())
	m, err := f.Map(4096)
	if errors.Is(err, vfs.ErrMmapUnsupported) {
		t.Skip(err)
	}
	require.NoError(t, err)
	defer m.Close()

	fs = crash(t, fs)
	g, err := fs.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, g.Truncate(0))
	write(t, g, 0, "x")
	assert.Equal(t, "abc", string(m.Bytes()[:3]))
	require.NoError(t, g.Close())
}
