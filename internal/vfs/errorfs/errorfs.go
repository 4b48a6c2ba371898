// Package errorfs wraps a vfs.FS so that tests can make chosen operations
// fail: every fallible method of FS, File, Mapping and the lock closer first
// asks an Injector whether to fail, and if so returns the injected error
// (wrapped in an *os.PathError naming the operation and file) instead of
// calling the wrapped FS. Close-like operations (OpClose, OpUnmap, OpUnlock)
// release the resource anyway and then report the injected error, as
// close(2) does.
//
// Ready-made injectors:
//
//	// The second Sync fails with ErrInjected.
//	fs := errorfs.New(vfs.Default, errorfs.Nth(2, errorfs.OpSync))
//
//	// The disk fills up: every WriteAt and Allocate from the first on.
//	full := errorfs.From(1, errorfs.OpWriteAt, errorfs.OpAllocate).
//		WithError(syscall.ENOSPC)
//
//	// A torn write: the first WriteAt to a .log file stores 7 bytes, then fails.
//	torn := errorfs.Nth(1, errorfs.OpWriteAt).
//		OnPath(func(p string) bool { return strings.HasSuffix(p, ".log") }).
//		WithError(errorfs.ShortWrite(7, nil))
//
// Any combines injectors and Toggle arms one after setup.
//
// The package does not import testing; everything in it is safe for
// concurrent use.
package errorfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/streamkit/commitlog/internal/vfs"
)

// Op identifies an operation that can be made to fail.
type Op int

// The operations. The path given to the Injector is the name the operation
// was called with (for File, Mapping and lock operations, the name the file
// was opened or locked with; for Rename, oldname).
const (
	OpOpen     Op = iota + 1 // FS.OpenFile
	OpRemove                 // FS.Remove
	OpRename                 // FS.Rename
	OpMkdirAll               // FS.MkdirAll
	OpReadDir                // FS.ReadDir
	OpStat                   // FS.Stat and File.Stat
	OpSyncDir                // FS.SyncDir
	OpLock                   // FS.Lock
	OpReadAt                 // File.ReadAt
	OpWriteAt                // File.WriteAt (see ShortWrite)
	OpSync                   // File.Sync
	OpTruncate               // File.Truncate
	OpAllocate               // File.Allocate
	OpMap                    // File.Map
	OpClose                  // File.Close: the file is closed even when the error is injected
	OpUnmap                  // Mapping.Close: the memory is unmapped even when the error is injected
	OpAdvise                 // Mapping.Advise
	OpUnlock                 // Close of the closer returned by FS.Lock: the lock is released even when the error is injected

	numOps // one past the last Op
)

var opNames = [numOps]string{
	OpOpen:     "open",
	OpRemove:   "remove",
	OpRename:   "rename",
	OpMkdirAll: "mkdirall",
	OpReadDir:  "readdir",
	OpStat:     "stat",
	OpSyncDir:  "syncdir",
	OpLock:     "lock",
	OpReadAt:   "readat",
	OpWriteAt:  "writeat",
	OpSync:     "sync",
	OpTruncate: "truncate",
	OpAllocate: "allocate",
	OpMap:      "map",
	OpClose:    "close",
	OpUnmap:    "unmap",
	OpAdvise:   "advise",
	OpUnlock:   "unlock",
}

// String returns the operation's name, as used in injected errors.
func (op Op) String() string {
	if op > 0 && op < numOps {
		return opNames[op]
	}
	return "op(" + strconv.Itoa(int(op)) + ")"
}

// Ops returns every operation.
func Ops() []Op {
	ops := make([]Op, 0, numOps-1)
	for op := OpOpen; op < numOps; op++ {
		ops = append(ops, op)
	}
	return ops
}

// ErrInjected is the default injected error.
var ErrInjected = errors.New("errorfs: injected error")

// Injector decides whether an operation fails. MaybeError is called before
// every operation, possibly from several goroutines at once; a nil result
// lets the operation through, anything else is returned to the caller.
type Injector interface {
	MaybeError(op Op, path string) error
}

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(op Op, path string) error

// MaybeError calls f(op, path).
func (f InjectorFunc) MaybeError(op Op, path string) error { return f(op, path) }

// ShortWrite returns an error describing a torn write. When an Injector
// returns it for OpWriteAt, the write stores only the first n bytes of its
// buffer (n is clamped to [0, len(p)]) and then reports n and this error,
// which wraps err (ErrInjected when err is nil). For any other operation it
// is returned like any other error.
func ShortWrite(n int, err error) error {
	if err == nil {
		err = ErrInjected
	}
	return &ShortWriteError{N: n, Err: err}
}

// ShortWriteError is the error made by ShortWrite.
type ShortWriteError struct {
	N   int   // bytes written before failing
	Err error // the error reported after writing them
}

func (e *ShortWriteError) Error() string {
	return fmt.Sprintf("errorfs: short write after %d bytes: %v", e.N, e.Err)
}

func (e *ShortWriteError) Unwrap() error { return e.Err }

// Rule is the ready-made Injector: it counts the operations it matches and
// fails those whose 1-based sequence number falls in its range. Make one with
// Nth or From and refine it with WithError and OnPath before use.
type Rule struct {
	mu       sync.Mutex
	ops      [numOps]bool // the operations matched, unless anyOp
	anyOp    bool         // match every operation
	match    func(path string) bool
	first    int64 // first failing occurrence, 1-based
	last     int64 // last failing occurrence; 0 means no end
	err      error
	seen     int64
	injected int64
}

// Nth returns a Rule that fails only the n-th (1-based) operation among ops
// (among all operations when ops is empty). n < 1 is taken as 1.
func Nth(n int, ops ...Op) *Rule {
	r := newRule(n, ops)
	r.last = r.first
	return r
}

// From returns a Rule that fails the n-th (1-based) operation among ops (all
// operations when ops is empty) and every matching one after it, like a disk
// that has filled up or died. From(1) fails every matching operation.
// n < 1 is taken as 1.
func From(n int, ops ...Op) *Rule { return newRule(n, ops) }

func newRule(n int, ops []Op) *Rule {
	if n < 1 {
		n = 1
	}
	r := &Rule{first: int64(n), err: ErrInjected, anyOp: len(ops) == 0}
	for _, op := range ops {
		if op > 0 && op < numOps {
			r.ops[op] = true
		}
	}
	return r
}

// WithError sets the error the Rule injects (ErrInjected by default; nil
// also means ErrInjected). It may be a ShortWrite. It returns r.
func (r *Rule) WithError(err error) *Rule {
	if err == nil {
		err = ErrInjected
	}
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	return r
}

// OnPath restricts the Rule to operations whose path satisfies match;
// operations on other paths are neither counted nor failed. It returns r.
func (r *Rule) OnPath(match func(path string) bool) *Rule {
	r.mu.Lock()
	r.match = match
	r.mu.Unlock()
	return r
}

// Seen returns how many matching operations the Rule has counted.
func (r *Rule) Seen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(r.seen)
}

// Injected returns how many errors the Rule has injected.
func (r *Rule) Injected() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(r.injected)
}

// MaybeError implements Injector.
func (r *Rule) MaybeError(op Op, path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.anyOp && (op <= 0 || op >= numOps || !r.ops[op]) {
		return nil
	}
	if r.match != nil && !r.match(path) {
		return nil
	}
	r.seen++
	if r.seen < r.first || (r.last != 0 && r.seen > r.last) {
		return nil
	}
	r.injected++
	return r.err
}

// Toggle switches an Injector on and off, for example to let a test set up
// its state before arming failures. It starts off; while off the wrapped
// Injector is not consulted (so a Rule does not count).
type Toggle struct {
	inj Injector
	on  atomic.Bool
}

// NewToggle returns a Toggle, initially off, around inj.
func NewToggle(inj Injector) *Toggle { return &Toggle{inj: inj} }

// On arms the Toggle.
func (t *Toggle) On() { t.on.Store(true) }

// Off disarms the Toggle.
func (t *Toggle) Off() { t.on.Store(false) }

// MaybeError implements Injector.
func (t *Toggle) MaybeError(op Op, path string) error {
	if !t.on.Load() || t.inj == nil {
		return nil
	}
	return t.inj.MaybeError(op, path)
}

// Any returns an Injector that consults every one of injs, in order, on
// every operation and returns the first error. Consulting them all keeps
// each Rule's count independent of the others.
func Any(injs ...Injector) Injector {
	return InjectorFunc(func(op Op, path string) error {
		var first error
		for _, inj := range injs {
			if inj == nil {
				continue
			}
			if err := inj.MaybeError(op, path); err != nil && first == nil {
				first = err
			}
		}
		return first
	})
}

// New returns an FS that forwards every operation to base after asking inj
// whether to fail it. A nil inj never fails.
func New(base vfs.FS, inj Injector) vfs.FS {
	return &fs{base: base, inj: inj}
}

type fs struct {
	base vfs.FS
	inj  Injector
}

// check consults the injector; a non-nil result is the raw injected error.
func (f *fs) check(op Op, path string) error {
	if f.inj == nil {
		return nil
	}
	return f.inj.MaybeError(op, path)
}

// fail wraps an injected error with the operation and path.
func fail(op Op, path string, err error) error {
	return &os.PathError{Op: op.String(), Path: path, Err: err}
}

func (f *fs) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	if err := f.check(OpOpen, name); err != nil {
		return nil, fail(OpOpen, name, err)
	}
	file, err := f.base.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &errFile{base: file, fs: f, name: name}, nil
}

func (f *fs) Remove(name string) error {
	if err := f.check(OpRemove, name); err != nil {
		return fail(OpRemove, name, err)
	}
	return f.base.Remove(name)
}

func (f *fs) Rename(oldname, newname string) error {
	if err := f.check(OpRename, oldname); err != nil {
		return &os.LinkError{Op: OpRename.String(), Old: oldname, New: newname, Err: err}
	}
	return f.base.Rename(oldname, newname)
}

func (f *fs) MkdirAll(dir string, perm os.FileMode) error {
	if err := f.check(OpMkdirAll, dir); err != nil {
		return fail(OpMkdirAll, dir, err)
	}
	return f.base.MkdirAll(dir, perm)
}

func (f *fs) ReadDir(dir string) ([]os.DirEntry, error) {
	if err := f.check(OpReadDir, dir); err != nil {
		return nil, fail(OpReadDir, dir, err)
	}
	return f.base.ReadDir(dir)
}

func (f *fs) Stat(name string) (os.FileInfo, error) {
	if err := f.check(OpStat, name); err != nil {
		return nil, fail(OpStat, name, err)
	}
	return f.base.Stat(name)
}

func (f *fs) SyncDir(dir string) error {
	if err := f.check(OpSyncDir, dir); err != nil {
		return fail(OpSyncDir, dir, err)
	}
	return f.base.SyncDir(dir)
}

func (f *fs) Lock(name string) (io.Closer, error) {
	if err := f.check(OpLock, name); err != nil {
		return nil, fail(OpLock, name, err)
	}
	c, err := f.base.Lock(name)
	if err != nil {
		return nil, err
	}
	return &errLock{base: c, fs: f, name: name}, nil
}

type errLock struct {
	base io.Closer
	fs   *fs
	name string
}

func (l *errLock) Close() error {
	injected := l.fs.check(OpUnlock, l.name)
	err := l.base.Close()
	if injected != nil {
		return fail(OpUnlock, l.name, injected)
	}
	return err
}

type errFile struct {
	base vfs.File
	fs   *fs
	name string
}

func (f *errFile) Name() string { return f.base.Name() }

// SyscallConn is not an operation the injector sees: it only hands out the
// descriptor.
func (f *errFile) SyscallConn() (syscall.RawConn, error) { return f.base.SyscallConn() }

func (f *errFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpReadAt, f.name); err != nil {
		return 0, fail(OpReadAt, f.name, err)
	}
	return f.base.ReadAt(p, off)
}

func (f *errFile) WriteAt(p []byte, off int64) (int, error) {
	err := f.fs.check(OpWriteAt, f.name)
	if err == nil {
		return f.base.WriteAt(p, off)
	}
	var sw *ShortWriteError
	if !errors.As(err, &sw) {
		return 0, fail(OpWriteAt, f.name, err)
	}
	k := min(max(sw.N, 0), len(p))
	n, werr := f.base.WriteAt(p[:k], off)
	if werr != nil {
		return n, werr
	}
	return n, fail(OpWriteAt, f.name, err)
}

func (f *errFile) Close() error {
	injected := f.fs.check(OpClose, f.name)
	err := f.base.Close()
	if injected != nil {
		return fail(OpClose, f.name, injected)
	}
	return err
}

func (f *errFile) Sync() error {
	if err := f.fs.check(OpSync, f.name); err != nil {
		return fail(OpSync, f.name, err)
	}
	return f.base.Sync()
}

func (f *errFile) Truncate(size int64) error {
	if err := f.fs.check(OpTruncate, f.name); err != nil {
		return fail(OpTruncate, f.name, err)
	}
	return f.base.Truncate(size)
}

func (f *errFile) Allocate(off, size int64) error {
	if err := f.fs.check(OpAllocate, f.name); err != nil {
		return fail(OpAllocate, f.name, err)
	}
	return f.base.Allocate(off, size)
}

func (f *errFile) Stat() (os.FileInfo, error) {
	if err := f.fs.check(OpStat, f.name); err != nil {
		return nil, fail(OpStat, f.name, err)
	}
	return f.base.Stat()
}

func (f *errFile) Map(size int) (vfs.Mapping, error) {
	if err := f.fs.check(OpMap, f.name); err != nil {
		return nil, fail(OpMap, f.name, err)
	}
	m, err := f.base.Map(size)
	if err != nil {
		return nil, err
	}
	return &errMapping{base: m, fs: f.fs, name: f.name}, nil
}

type errMapping struct {
	base vfs.Mapping
	fs   *fs
	name string
}

func (m *errMapping) Bytes() []byte { return m.base.Bytes() }

func (m *errMapping) Advise(advice vfs.Advice) error {
	if err := m.fs.check(OpAdvise, m.name); err != nil {
		return fail(OpAdvise, m.name, err)
	}
	return m.base.Advise(advice)
}

func (m *errMapping) Close() error {
	injected := m.fs.check(OpUnmap, m.name)
	err := m.base.Close()
	if injected != nil {
		return fail(OpUnmap, m.name, injected)
	}
	return err
}
