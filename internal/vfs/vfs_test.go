package vfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/vfs"
	"github.com/streamkit/commitlog/internal/vfs/errorfs"
)

// lockChildEnv, when set, makes the test binary act as a child process that
// tries to take the lock named by its value and reports the outcome on
// stdout instead of running tests.
const lockChildEnv = "VFS_TEST_LOCK_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(lockChildEnv); path != "" {
		os.Exit(lockChild(path))
	}
	os.Exit(m.Run())
}

func lockChild(path string) int {
	l, err := vfs.Default.Lock(path)
	switch {
	case errors.Is(err, vfs.ErrLocked):
		fmt.Println("LOCKED")
		return 0
	case err != nil:
		fmt.Println("ERROR", err)
		return 1
	}
	if err := l.Close(); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("ACQUIRED")
	return 0
}

func openRW(t *testing.T, name string) vfs.File {
	t.Helper()
	f, err := vfs.Default.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func writeAt(t *testing.T, f vfs.File, s string, off int64) {
	t.Helper()
	n, err := f.WriteAt([]byte(s), off)
	require.NoError(t, err)
	require.Equal(t, len(s), n)
}

func TestFileReadWrite(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	f := openRW(t, name)
	assert.Equal(t, name, f.Name())

	writeAt(t, f, "hello world", 0)
	writeAt(t, f, "WORLD", 6)

	buf := make([]byte, 11)
	n, err := f.ReadAt(buf, 0)
	require.NoError(t, err)
	assert.Equal(t, "hello WORLD", string(buf[:n]))

	// Reading past the end reports io.EOF itself, as io.ReaderAt requires.
	n, err = f.ReadAt(buf, 5)
	assert.Equal(t, 6, n)
	assert.Equal(t, io.EOF, err)

	require.NoError(t, f.Sync())
	require.NoError(t, f.Truncate(5))
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.EqualValues(t, 5, fi.Size())

	require.NoError(t, f.Close())
	data, err := os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(data))
}

func TestMapCoherence(t *testing.T) {
	name := filepath.Join(t.TempDir(), "seg")
	f := openRW(t, name)
	writeAt(t, f, "first", 0)

	const size = 1 << 20 // far larger than the file
	m, err := f.Map(size)
	if errors.Is(err, vfs.ErrMmapUnsupported) {
		t.Skip(err)
	}
	require.NoError(t, err)
	b := m.Bytes()
	require.Len(t, b, size)
	assert.Equal(t, "first", string(b[:5]))

	// Writes after mapping, in the mapped page and in later pages that did
	// not exist when the mapping was made, are visible through it.
	writeAt(t, f, "-second", 5)
	assert.Equal(t, "first-second", string(b[:12]))
	const far = 3*4096 + 100
	writeAt(t, f, "far away", far)
	assert.Equal(t, "far away", string(b[far:far+8]))

	for _, a := range []vfs.Advice{vfs.AdviceSequential, vfs.AdviceWillNeed, vfs.AdviceRandom, vfs.AdviceDontNeed, vfs.AdviceNormal} {
		assert.NoError(t, m.Advise(a), a.String())
	}
	assert.Equal(t, "first-second", string(m.Bytes()[:12]), "content survives DONTNEED on a shared file mapping")

	// The mapping outlives the file.
	require.NoError(t, f.Close())
	assert.Equal(t, "first-second", string(m.Bytes()[:12]))

	require.NoError(t, m.Close())
	assert.Nil(t, m.Bytes())
	require.NoError(t, m.Close(), "Close is idempotent")
	assert.ErrorIs(t, m.Advise(vfs.AdviceNormal), os.ErrClosed)
}

func TestMapErrors(t *testing.T) {
	dir := t.TempDir()
	f := openRW(t, filepath.Join(dir, "f"))
	_, err := f.Map(0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), f.Name())
	_, err = f.Map(-1)
	require.Error(t, err)

	if runtime.GOOS == "windows" {
		return
	}
	// A write-only descriptor cannot back a read-only shared mapping.
	wo, err := vfs.Default.OpenFile(filepath.Join(dir, "wo"), os.O_WRONLY|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer func() { _ = wo.Close() }()
	_, err = wo.Map(4096)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "mmap")
	assert.Contains(t, err.Error(), wo.Name())
}

func TestAllocateKeepsSize(t *testing.T) {
	f := openRW(t, filepath.Join(t.TempDir(), "f"))
	writeAt(t, f, "0123456789", 0)

	err := f.Allocate(0, 1<<20)
	if errors.Is(err, vfs.ErrAllocateUnsupported) {
		t.Skipf("allocate unsupported here: %v", err)
	}
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.EqualValues(t, 10, fi.Size(), "Allocate must not change the reported size")

	require.NoError(t, f.Allocate(0, 0), "empty range is a no-op")
	require.Error(t, f.Allocate(-1, 10))

	// Writing into the reserved range extends the file normally.
	writeAt(t, f, "x", 1<<19)
	fi, err = f.Stat()
	require.NoError(t, err)
	assert.EqualValues(t, 1<<19+1, fi.Size())
}

func TestFSOperations(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	fsys := vfs.Default
	require.NoError(t, fsys.MkdirAll(dir, 0o755))
	for _, n := range []string{"c", "a", "b"} {
		f, err := fsys.OpenFile(filepath.Join(dir, n), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	_, err := fsys.OpenFile(filepath.Join(dir, "a"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	assert.ErrorIs(t, err, fs.ErrExist)

	require.NoError(t, fsys.Rename(filepath.Join(dir, "c"), filepath.Join(dir, "d")))
	require.NoError(t, fsys.Remove(filepath.Join(dir, "b")))
	require.NoError(t, fsys.SyncDir(dir))

	entries, err := fsys.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"a", "d"}, names)

	fi, err := fsys.Stat(filepath.Join(dir, "d"))
	require.NoError(t, err)
	assert.Equal(t, "d", fi.Name())

	_, err = fsys.Stat(filepath.Join(dir, "b"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
	if runtime.GOOS != "windows" {
		err = fsys.SyncDir(filepath.Join(dir, "missing"))
		assert.ErrorIs(t, err, fs.ErrNotExist)
		assert.Contains(t, err.Error(), "missing")
	}
}

func TestLockInProcess(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "LOCK")

	l, err := vfs.Default.Lock(name)
	require.NoError(t, err)
	_, err = os.Stat(name)
	require.NoError(t, err, "Lock creates the file")

	_, err = vfs.Default.Lock(name)
	require.ErrorIs(t, err, vfs.ErrLocked)
	assert.Contains(t, err.Error(), name)

	// The same file named differently is still locked.
	t.Chdir(dir)
	_, err = vfs.Default.Lock("LOCK")
	require.ErrorIs(t, err, vfs.ErrLocked)

	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close is idempotent")

	l2, err := vfs.Default.Lock(name)
	require.NoError(t, err)
	require.NoError(t, l2.Close())
}

func TestLockConcurrent(t *testing.T) {
	name := filepath.Join(t.TempDir(), "LOCK")
	const workers = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		holders []io.Closer
		locked  int
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := vfs.Default.Lock(name)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, vfs.ErrLocked) {
				locked++
				return
			}
			assert.NoError(t, err)
			if l != nil {
				holders = append(holders, l)
			}
		}()
	}
	wg.Wait()
	assert.Len(t, holders, 1)
	assert.Equal(t, workers-1, locked)
	for _, l := range holders {
		require.NoError(t, l.Close())
	}
}

func TestLockAcrossProcesses(t *testing.T) {
	if runtime.GOOS == "js" || runtime.GOOS == "wasip1" || runtime.GOOS == "plan9" {
		t.Skip("no cross-process lock on " + runtime.GOOS)
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	name := filepath.Join(t.TempDir(), "LOCK")
	child := func() string {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), lockChildEnv+"="+name)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "child output: %s", out)
		return strings.TrimSpace(string(out))
	}

	l, err := vfs.Default.Lock(name)
	require.NoError(t, err)
	assert.Equal(t, "LOCKED", child(), "another process must not get the lock while it is held")

	require.NoError(t, l.Close())
	assert.Equal(t, "ACQUIRED", child(), "another process gets the lock once it is released")

	// And the reverse: after the child released it, this process can lock.
	l, err = vfs.Default.Lock(name)
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, vfs.IsTempFile(e.Name()), "temporary file left behind: %s", e.Name())
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "meta")

	require.NoError(t, vfs.WriteFileAtomic(vfs.Default, name, []byte("version 1"), 0o644))
	data, err := os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, "version 1", string(data))

	require.NoError(t, vfs.WriteFileAtomic(vfs.Default, name, []byte("v2"), 0o644))
	data, err = os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, "v2", string(data), "content replaced, not overwritten in place")

	require.NoError(t, vfs.WriteFileAtomic(vfs.Default, name, nil, 0o644))
	data, err = os.ReadFile(name)
	require.NoError(t, err)
	assert.Empty(t, data)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the target file remains")
	noTempFiles(t, dir)
}

func TestWriteFileAtomicFailures(t *testing.T) {
	for _, op := range []errorfs.Op{errorfs.OpOpen, errorfs.OpWriteAt, errorfs.OpSync, errorfs.OpClose, errorfs.OpRename, errorfs.OpSyncDir} {
		t.Run(op.String(), func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "meta")
			require.NoError(t, os.WriteFile(name, []byte("old"), 0o644))

			fsys := errorfs.New(vfs.Default, errorfs.Nth(1, op))
			err := vfs.WriteFileAtomic(fsys, name, []byte("new content"), 0o644)
			require.ErrorIs(t, err, errorfs.ErrInjected)
			assert.Contains(t, err.Error(), name)

			data, err := os.ReadFile(name)
			require.NoError(t, err)
			if op == errorfs.OpSyncDir {
				// The rename happened; only its durability is in doubt.
				assert.Equal(t, "new content", string(data))
			} else {
				assert.Equal(t, "old", string(data))
			}
			noTempFiles(t, dir)
		})
	}

	t.Run("short write", func(t *testing.T) {
		dir := t.TempDir()
		name := filepath.Join(dir, "meta")
		require.NoError(t, os.WriteFile(name, []byte("old"), 0o644))
		fsys := errorfs.New(vfs.Default, errorfs.Nth(1, errorfs.OpWriteAt).WithError(errorfs.ShortWrite(3, nil)))
		err := vfs.WriteFileAtomic(fsys, name, []byte("new content"), 0o644)
		require.ErrorIs(t, err, errorfs.ErrInjected)
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		assert.Equal(t, "old", string(data))
		noTempFiles(t, dir)
	})
}

func TestAdviceString(t *testing.T) {
	assert.Equal(t, "sequential", vfs.AdviceSequential.String())
	assert.Equal(t, "advice(99)", vfs.Advice(99).String())
}

func TestConcurrentFileUse(t *testing.T) {
	f := openRW(t, filepath.Join(t.TempDir(), "f"))
	const (
		workers = 8
		chunk   = 512
	)
	m, err := f.Map(workers * chunk)
	if errors.Is(err, vfs.ErrMmapUnsupported) {
		t.Skip(err)
	}
	require.NoError(t, err)
	defer func() { _ = m.Close() }()

	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := bytes.Repeat([]byte{byte('a' + i)}, chunk)
			off := int64(i * chunk)
			n, err := f.WriteAt(want, off)
			assert.NoError(t, err)
			assert.Equal(t, chunk, n)
			assert.NoError(t, f.Sync())
			got := make([]byte, chunk)
			_, err = f.ReadAt(got, off)
			assert.NoError(t, err)
			assert.Equal(t, want, got)
		}()
	}
	wg.Wait()
	for i := range workers {
		assert.Equal(t, bytes.Repeat([]byte{byte('a' + i)}, chunk), m.Bytes()[i*chunk:(i+1)*chunk])
	}
}
