//lint:file-ignore ST1008 the table of operations returns the error first and then the path the injector should see, which reads best here
package errorfs_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/vfs"
	"github.com/streamkit/commitlog/internal/vfs/errorfs"
)

// Stand-ins for syscall.ENOSPC and syscall.EIO, which not every platform's
// syscall package defines.
var (
	errDiskFull = errors.New("no space left on device")
	errIO       = errors.New("input/output error")
)

// env is a directory holding a file "f" with some content, so that every
// operation has something to act on.
func env(t *testing.T) (dir, file string) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, []byte("0123456789"), 0o644))
	return dir, file
}

func open(t *testing.T, fsys vfs.FS, name string) vfs.File {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func mapFile(t *testing.T, fsys vfs.FS, name string) vfs.Mapping {
	t.Helper()
	m, err := open(t, fsys, name).Map(4096)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// call performs op through fsys and returns its error and the path the
// injector is expected to see.
var calls = map[errorfs.Op]func(t *testing.T, fsys vfs.FS, dir, file string) (error, string){
	errorfs.OpOpen: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		f, err := fsys.OpenFile(file, os.O_RDONLY, 0)
		if err == nil {
			_ = f.Close()
		}
		return err, file
	},
	errorfs.OpRemove: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		return fsys.Remove(file), file
	},
	errorfs.OpRename: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		return fsys.Rename(file, file+".new"), file
	},
	errorfs.OpMkdirAll: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		sub := filepath.Join(dir, "x", "y")
		return fsys.MkdirAll(sub, 0o755), sub
	},
	errorfs.OpReadDir: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		_, err := fsys.ReadDir(dir)
		return err, dir
	},
	errorfs.OpStat: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		_, err := fsys.Stat(file)
		return err, file
	},
	errorfs.OpSyncDir: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		return fsys.SyncDir(dir), dir
	},
	errorfs.OpLock: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		name := filepath.Join(dir, "LOCK")
		l, err := fsys.Lock(name)
		if err == nil {
			_ = l.Close()
		}
		return err, name
	},
	errorfs.OpUnlock: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		name := filepath.Join(dir, "LOCK")
		l, err := fsys.Lock(name)
		require.NoError(t, err)
		return l.Close(), name
	},
	errorfs.OpReadAt: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		_, err := open(t, fsys, file).ReadAt(make([]byte, 4), 0)
		return err, file
	},
	errorfs.OpWriteAt: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		_, err := open(t, fsys, file).WriteAt([]byte("abc"), 0)
		return err, file
	},
	errorfs.OpSync: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		return open(t, fsys, file).Sync(), file
	},
	errorfs.OpTruncate: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		return open(t, fsys, file).Truncate(3), file
	},
	errorfs.OpAllocate: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		err := open(t, fsys, file).Allocate(0, 4096)
		if errors.Is(err, vfs.ErrAllocateUnsupported) {
			err = nil
		}
		return err, file
	},
	errorfs.OpMap: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		m, err := open(t, fsys, file).Map(4096)
		if err == nil {
			_ = m.Close()
		}
		return err, file
	},
	errorfs.OpClose: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		f, err := fsys.OpenFile(file, os.O_RDONLY, 0)
		require.NoError(t, err)
		return f.Close(), file
	},
	errorfs.OpUnmap: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		return mapFile(t, fsys, file).Close(), file
	},
	errorfs.OpAdvise: func(t *testing.T, fsys vfs.FS, dir, file string) (error, string) {
		return mapFile(t, fsys, file).Advise(vfs.AdviceWillNeed), file
	},
}

func TestEveryOpInjectable(t *testing.T) {
	require.Len(t, calls, len(errorfs.Ops()), "a call for every Op")
	for _, op := range errorfs.Ops() {
		t.Run(op.String(), func(t *testing.T) {
			call := calls[op]
			require.NotNil(t, call)

			// Without injection the operation succeeds through the wrapper.
			dir, file := env(t)
			err, _ := call(t, errorfs.New(vfs.Default, nil), dir, file)
			require.NoError(t, err)

			// Failing every occurrence of op fails exactly the call under test,
			// with the op and path in the message.
			dir, file = env(t)
			rule := errorfs.From(1, op)
			err, path := call(t, errorfs.New(vfs.Default, rule), dir, file)
			require.ErrorIs(t, err, errorfs.ErrInjected)
			assert.Contains(t, err.Error(), op.String())
			assert.Contains(t, err.Error(), path)
			assert.Equal(t, 1, rule.Injected())

			// The injector saw the expected path.
			var seen []string
			var mu sync.Mutex
			spy := errorfs.InjectorFunc(func(o errorfs.Op, p string) error {
				if o == op {
					mu.Lock()
					seen = append(seen, p)
					mu.Unlock()
				}
				return nil
			})
			dir, file = env(t)
			err, path = call(t, errorfs.New(vfs.Default, spy), dir, file)
			require.NoError(t, err)
			assert.Contains(t, seen, path)
		})
	}
}

func TestInjectedFailureHasNoEffect(t *testing.T) {
	_, file := env(t)
	fsys := errorfs.New(vfs.Default, errorfs.From(1, errorfs.OpRemove, errorfs.OpRename, errorfs.OpTruncate, errorfs.OpWriteAt))
	require.Error(t, fsys.Remove(file))
	require.Error(t, fsys.Rename(file, file+".new"))
	f := open(t, fsys, file)
	require.Error(t, f.Truncate(0))
	_, err := f.WriteAt([]byte("zz"), 0)
	require.Error(t, err)

	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(data))
	_, err = os.Stat(file + ".new")
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestCloseInjectionStillCloses(t *testing.T) {
	dir, file := env(t)
	fsys := errorfs.New(vfs.Default, errorfs.Nth(1, errorfs.OpClose, errorfs.OpUnlock))
	f, err := fsys.OpenFile(file, os.O_RDONLY, 0)
	require.NoError(t, err)
	require.ErrorIs(t, f.Close(), errorfs.ErrInjected)
	assert.ErrorIs(t, f.Close(), os.ErrClosed, "the underlying file was closed")

	lockName := filepath.Join(dir, "LOCK")
	fsys = errorfs.New(vfs.Default, errorfs.Nth(1, errorfs.OpUnlock))
	l, err := fsys.Lock(lockName)
	require.NoError(t, err)
	require.ErrorIs(t, l.Close(), errorfs.ErrInjected)
	l2, err := vfs.Default.Lock(lockName)
	require.NoError(t, err, "the lock was released")
	require.NoError(t, l2.Close())
}

func TestNth(t *testing.T) {
	_, file := env(t)
	rule := errorfs.Nth(2, errorfs.OpSync)
	f := open(t, errorfs.New(vfs.Default, rule), file)
	require.NoError(t, f.Sync())
	_, err := f.ReadAt(make([]byte, 1), 0) // not counted
	require.NoError(t, err)
	require.ErrorIs(t, f.Sync(), errorfs.ErrInjected)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Sync())
	assert.Equal(t, 4, rule.Seen())
	assert.Equal(t, 1, rule.Injected())
}

func TestNthAnyOp(t *testing.T) {
	dir, file := env(t)
	fsys := errorfs.New(vfs.Default, errorfs.Nth(3))
	_, err := fsys.Stat(file) // 1
	require.NoError(t, err)
	f := open(t, fsys, file) // 2
	require.ErrorIs(t, f.Sync(), errorfs.ErrInjected)
	require.NoError(t, fsys.SyncDir(dir))
}

func TestFrom(t *testing.T) {
	_, file := env(t)
	rule := errorfs.From(3, errorfs.OpWriteAt).WithError(errDiskFull)
	f := open(t, errorfs.New(vfs.Default, rule), file)
	for i := range 5 {
		_, err := f.WriteAt([]byte("x"), int64(i))
		if i < 2 {
			require.NoError(t, err, i)
		} else {
			require.ErrorIs(t, err, errDiskFull, i)
			assert.NotErrorIs(t, err, errorfs.ErrInjected)
		}
	}
	assert.Equal(t, 3, rule.Injected())
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "xx23456789", string(data))
}

func TestOnPath(t *testing.T) {
	dir, file := env(t)
	other := filepath.Join(dir, "g.log")
	require.NoError(t, os.WriteFile(other, nil, 0o644))
	rule := errorfs.From(1, errorfs.OpSync).OnPath(func(p string) bool { return strings.HasSuffix(p, ".log") })
	fsys := errorfs.New(vfs.Default, rule)
	require.NoError(t, open(t, fsys, file).Sync())
	require.ErrorIs(t, open(t, fsys, other).Sync(), errorfs.ErrInjected)
	assert.Equal(t, 1, rule.Seen())
}

func TestShortWrite(t *testing.T) {
	_, file := env(t)
	require.NoError(t, os.Truncate(file, 0))
	fsys := errorfs.New(vfs.Default, errorfs.Nth(2, errorfs.OpWriteAt).WithError(errorfs.ShortWrite(4, nil)))
	f := open(t, fsys, file)

	n, err := f.WriteAt([]byte("header|"), 0)
	require.NoError(t, err)
	require.Equal(t, 7, n)

	n, err = f.WriteAt([]byte("torn record"), 7)
	require.ErrorIs(t, err, errorfs.ErrInjected)
	var sw *errorfs.ShortWriteError
	require.ErrorAs(t, err, &sw)
	assert.Equal(t, 4, sw.N)
	assert.Equal(t, 4, n, "reports the bytes it wrote")
	assert.Contains(t, err.Error(), file)

	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "header|torn", string(data), "only the first 4 bytes reached the file")
}

func TestShortWriteClampsAndCustomError(t *testing.T) {
	_, file := env(t)
	require.NoError(t, os.Truncate(file, 0))
	inj := errorfs.Any(
		errorfs.Nth(1, errorfs.OpWriteAt).WithError(errorfs.ShortWrite(100, errIO)),
		errorfs.Nth(2, errorfs.OpWriteAt).WithError(errorfs.ShortWrite(-1, nil)),
	)
	f := open(t, errorfs.New(vfs.Default, inj), file)

	n, err := f.WriteAt([]byte("abc"), 0)
	assert.Equal(t, 3, n, "n larger than the buffer writes it all")
	require.ErrorIs(t, err, errIO)

	n, err = f.WriteAt([]byte("def"), 3)
	assert.Equal(t, 0, n)
	require.ErrorIs(t, err, errorfs.ErrInjected)

	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "abc", string(data))

	// For other operations a ShortWrite is an ordinary error.
	fsys := errorfs.New(vfs.Default, errorfs.From(1, errorfs.OpSync).WithError(errorfs.ShortWrite(1, nil)))
	require.ErrorIs(t, open(t, fsys, file).Sync(), errorfs.ErrInjected)
}

func TestToggle(t *testing.T) {
	_, file := env(t)
	rule := errorfs.From(1, errorfs.OpSync)
	tog := errorfs.NewToggle(rule)
	f := open(t, errorfs.New(vfs.Default, tog), file)
	require.NoError(t, f.Sync())
	tog.On()
	require.ErrorIs(t, f.Sync(), errorfs.ErrInjected)
	tog.Off()
	require.NoError(t, f.Sync())
	assert.Equal(t, 1, rule.Seen(), "a disarmed toggle does not consult its injector")
}

func TestRuleConcurrent(t *testing.T) {
	_, file := env(t)
	rule := errorfs.Nth(50, errorfs.OpReadAt)
	f := open(t, errorfs.New(vfs.Default, rule), file)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 10)
			for range 20 {
				_, err := f.ReadAt(buf, 0)
				if err != nil && err != io.EOF {
					assert.ErrorIs(t, err, errorfs.ErrInjected)
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, failed)
	assert.Equal(t, 200, rule.Seen())
	assert.Equal(t, 1, rule.Injected())
}

func TestOpString(t *testing.T) {
	assert.Equal(t, "writeat", errorfs.OpWriteAt.String())
	assert.Equal(t, "op(0)", errorfs.Op(0).String())
	seen := map[string]bool{}
	for _, op := range errorfs.Ops() {
		assert.False(t, seen[op.String()], "duplicate name %s", op)
		seen[op.String()] = true
	}
}
