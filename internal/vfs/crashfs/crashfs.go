// Package crashfs wraps a vfs.FS so that a test can simulate the crash of
// a machine, or a kill -9 of a broker whose page cache is lost with it:
// Crash makes every file look as if only what was synced had reached the
// disk, fences everything the crashed incarnation still holds, and returns
// the FS a restarted broker opens its files through.
//
//	fs := crashfs.New(vfs.Default)
//	// ... a broker writes through fs, syncing some of it ...
//	fs, err = fs.Crash()
//	// ... a new broker opens the same directory through fs and recovers.
//
// # What is modelled
//
// File data. The wrapped file system plays the disk and the page cache at
// once: writes reach it at once, so reads and mappings see them as they
// would see the page cache. For every file opened through the FS, crashfs
// remembers its size at the last successful Sync (fdatasync: data and
// size) and, for every byte below that size that WriteAt or Truncate has
// changed since, the byte it had then (the first time it changes; later
// writes to it cost nothing more). Appending past the synced size, the
// engine's usual write, records nothing at all. Crash puts the synced
// bytes back and cuts or extends (with zeros) the file to its synced size:
// every unsynced byte is lost, none survives. (A real crash may keep some
// unsynced pages; torn writes are errorfs.ShortWrite's business.) A file
// that existed before the FS first opened it is taken as synced. A failed
// Sync makes nothing durable; the Linux behaviour of a later Sync
// succeeding over pages whose write-back failed is not modelled.
//
// Sync holds the file's lock while the wrapped Sync runs, so writes to the
// same file wait for it: what was written before Sync began is durable
// after it, anything later is not, exactly.
//
// Directories. A file created through the FS is lost on Crash unless its
// parent directory was synced (SyncDir) after it was created. Renaming a
// file over an existing one counts as durable at once (the old file cannot
// be brought back), while renaming a file not yet durable to a fresh name
// keeps it pending on its new parent. Removes, renames of durable files
// and MkdirAll are durable at once: a missing SyncDir after them goes
// unnoticed.
//
// Fencing. Each FS value belongs to one incarnation. After Crash, every
// operation of the previous incarnation's FS and of every File it opened
// fails with an error wrapping ErrCrashed, as if the process were dead;
// closing such a File returns nil (the OS closes a killed process's files,
// and Crash has already released their descriptors and locks). Mappings
// made before the crash stay readable and keep showing the old, uncrashed
// content, so that goroutines of the dead broker that still read them
// neither fault nor see what the restarted broker writes or truncates.
//
// To that end Crash rewrites every file that changed since its last Sync
// or was mapped, by copying what survives to a new file renamed over the
// old name: old mappings keep the old file's pages. Its cost is one copy
// of each such file per Crash; appends and Syncs stay as cheap as the
// wrapped FS's.
//
// Paths are keyed by their absolute form; the wrapped FS must be a
// real file system for mappings and renames to behave as described (Unix
// semantics: a renamed-over file stays readable through open descriptors
// and mappings).
//
// Everything is safe for concurrent use; Crash waits for operations in
// flight to finish. The package does not import testing.
package crashfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/streamkit/commitlog/internal/vfs"
)

// ErrCrashed is wrapped by every error from an FS, File or lock of an
// incarnation that crashed.
var ErrCrashed = errors.New("crashfs: the file system crashed under this incarnation")

// FS is a vfs.FS of one incarnation of a crashable file system.
type FS struct {
	s   *state
	gen uint64
}

var _ vfs.FS = (*FS)(nil)

// New returns the first incarnation of a crashable file system over base.
func New(base vfs.FS) *FS {
	return &FS{s: &state{
		base:  base,
		nodes: make(map[string]*node),
		files: make(map[*file]struct{}),
		locks: make(map[*lock]struct{}),
	}}
}

// state is what the incarnations of one FS share.
//
// Lock order: crashMu, then nsMu, then a node's mu.
type state struct {
	base vfs.FS

	// crashMu is held for reading by every operation and for writing by
	// Crash, so that Crash sees no operation in flight.
	crashMu sync.RWMutex
	gen     uint64 // the live incarnation; written under crashMu held for writing

	nsMu  sync.Mutex
	nodes map[string]*node   // files opened through the live incarnation, by absolute path
	files map[*file]struct{} // open files of the live incarnation
	locks map[*lock]struct{} // locks held by the live incarnation
}

// node is what crashfs knows about one file of the live incarnation.
type node struct {
	mu      sync.Mutex
	size    int64    // current size
	synced  int64    // size at the last successful Sync
	saved   []extent // the synced bytes changed since, sorted, disjoint, within [0, synced)
	created bool     // created and not yet made durable by a SyncDir of its parent
	mapped  bool     // a File of it was mapped: Crash gives it a new inode
}

// extent is a run of synced bytes.
type extent struct {
	off  int64
	data []byte
}

func (e extent) end() int64 { return e.off + int64(len(e.data)) }

// dirty reports whether the file differs from what a crash would leave.
func (n *node) dirty() bool { return n.size != n.synced || len(n.saved) > 0 }

// enter starts an operation of incarnation gen; it fails when that
// incarnation crashed. The caller calls exit unless it failed.
func (s *state) enter(gen uint64) bool {
	s.crashMu.RLock()
	if s.gen != gen {
		s.crashMu.RUnlock()
		return false
	}
	return true
}

func (s *state) exit() { s.crashMu.RUnlock() }

func crashed(op, path string) error {
	return &os.PathError{Op: op, Path: path, Err: ErrCrashed}
}

func abs(name string) string {
	p, err := filepath.Abs(name)
	if err != nil {
		return filepath.Clean(name)
	}
	return p
}

// OpenFile opens a file of this incarnation. O_TRUNC is applied as a
// Truncate(0), so the synced content it drops is remembered.
func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	s := fs.s
	if !s.enter(fs.gen) {
		return nil, crashed("open", name)
	}
	defer s.exit()
	path := abs(name)
	// The file is opened for reading as well, so that the synced bytes a
	// write replaces can be read first.
	baseFlag := flag &^ os.O_TRUNC
	writeOnly := flag&(os.O_RDONLY|os.O_WRONLY|os.O_RDWR) == os.O_WRONLY
	if writeOnly {
		baseFlag = baseFlag&^os.O_WRONLY | os.O_RDWR
	}

	s.nsMu.Lock()
	n := s.nodes[path]
	existed := true
	if n == nil {
		_, err := s.base.Stat(name)
		existed = err == nil
	}
	bf, err := s.base.OpenFile(name, baseFlag, perm)
	if err != nil {
		s.nsMu.Unlock()
		return nil, err
	}
	if n == nil {
		st, err := bf.Stat()
		if err != nil {
			s.nsMu.Unlock()
			_ = bf.Close()
			return nil, err
		}
		n = &node{size: st.Size(), synced: st.Size(), created: !existed}
		s.nodes[path] = n
	}
	f := &file{fs: fs, n: n, base: bf, name: name, writeOnly: writeOnly}
	s.files[f] = struct{}{}
	s.nsMu.Unlock()

	if flag&os.O_TRUNC != 0 && flag&(os.O_WRONLY|os.O_RDWR) != 0 {
		if err := f.truncateEntered(0); err != nil {
			f.closeBase()
			return nil, err
		}
	}
	return f, nil
}

// Remove removes a file or an empty directory, durably at once.
func (fs *FS) Remove(name string) error {
	s := fs.s
	if !s.enter(fs.gen) {
		return crashed("remove", name)
	}
	defer s.exit()
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	if err := s.base.Remove(name); err != nil {
		return err
	}
	path := abs(name)
	for p := range s.nodes {
		if p == path || strings.HasPrefix(p, path+string(filepath.Separator)) {
			delete(s.nodes, p)
		}
	}
	return nil
}

// Rename renames a file or directory. See the package comment for what a
// crash makes of it.
func (fs *FS) Rename(oldname, newname string) error {
	s := fs.s
	if !s.enter(fs.gen) {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: ErrCrashed}
	}
	defer s.exit()
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	_, err := s.base.Stat(newname)
	replaced := err == nil
	if err := s.base.Rename(oldname, newname); err != nil {
		return err
	}
	from, to := abs(oldname), abs(newname)
	if from == to {
		return nil
	}
	moved := map[string]*node{}
	for p, n := range s.nodes {
		switch {
		case p == to || strings.HasPrefix(p, to+string(filepath.Separator)):
			delete(s.nodes, p) // replaced
		case p == from:
			moved[to] = n
			delete(s.nodes, p)
		case strings.HasPrefix(p, from+string(filepath.Separator)):
			moved[to+p[len(from):]] = n
			delete(s.nodes, p)
		}
	}
	for p, n := range moved {
		if p == to && replaced {
			n.mu.Lock()
			n.created = false
			n.mu.Unlock()
		}
		s.nodes[p] = n
	}
	return nil
}

// MkdirAll creates directories, durably at once.
func (fs *FS) MkdirAll(dir string, perm os.FileMode) error {
	if !fs.s.enter(fs.gen) {
		return crashed("mkdirall", dir)
	}
	defer fs.s.exit()
	return fs.s.base.MkdirAll(dir, perm)
}

// ReadDir lists a directory.
func (fs *FS) ReadDir(dir string) ([]os.DirEntry, error) {
	if !fs.s.enter(fs.gen) {
		return nil, crashed("readdir", dir)
	}
	defer fs.s.exit()
	return fs.s.base.ReadDir(dir)
}

// Stat describes a file.
func (fs *FS) Stat(name string) (os.FileInfo, error) {
	if !fs.s.enter(fs.gen) {
		return nil, crashed("stat", name)
	}
	defer fs.s.exit()
	return fs.s.base.Stat(name)
}

// SyncDir syncs a directory: the files created in it so far survive a
// crash.
func (fs *FS) SyncDir(dir string) error {
	s := fs.s
	if !s.enter(fs.gen) {
		return crashed("syncdir", dir)
	}
	defer s.exit()
	if err := s.base.SyncDir(dir); err != nil {
		return err
	}
	d := abs(dir)
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	for p, n := range s.nodes {
		if filepath.Dir(p) == d {
			n.mu.Lock()
			n.created = false
			n.mu.Unlock()
		}
	}
	return nil
}

// Lock takes a lock that Crash releases, as the death of a process
// releases its flocks.
func (fs *FS) Lock(name string) (io.Closer, error) {
	s := fs.s
	if !s.enter(fs.gen) {
		return nil, crashed("lock", name)
	}
	defer s.exit()
	c, err := s.base.Lock(name)
	if err != nil {
		return nil, err
	}
	l := &lock{s: s, base: c}
	s.nsMu.Lock()
	s.locks[l] = struct{}{}
	s.nsMu.Unlock()
	return l, nil
}

type lock struct {
	s    *state
	once sync.Once
	base io.Closer
	err  error
}

// Close releases the lock; after Crash released it, it returns nil.
func (l *lock) Close() error {
	l.s.nsMu.Lock()
	delete(l.s.locks, l)
	l.s.nsMu.Unlock()
	return l.release()
}

func (l *lock) release() error {
	l.once.Do(func() { l.err = l.base.Close() })
	return l.err
}

// Crash simulates a power loss: every file opened through this
// incarnation is put back to what its last Sync made durable, files whose
// creation no SyncDir made durable are removed, every file descriptor and
// lock of the incarnation is released, and every later operation through
// fs or its files fails with ErrCrashed. It returns the FS of the next
// incarnation, which sees the crashed state.
//
// Crash of an incarnation that already crashed fails with ErrCrashed. An
// error from the wrapped FS while restoring a file is returned with the
// next incarnation all the same (the files it names may be left
// uncrashed).
func (fs *FS) Crash() (*FS, error) {
	s := fs.s
	s.crashMu.Lock()
	defer s.crashMu.Unlock()
	if s.gen != fs.gen {
		return nil, ErrCrashed
	}
	s.gen++
	next := &FS{s: s, gen: s.gen}

	var errs []error
	for f := range s.files {
		if err := f.base.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	clear(s.files)
	for l := range s.locks {
		if err := l.release(); err != nil {
			errs = append(errs, err)
		}
	}
	clear(s.locks)
	paths := make([]string, 0, len(s.nodes))
	for p := range s.nodes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		n := s.nodes[p]
		switch {
		case n.created:
			if err := s.base.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		case n.dirty() || n.mapped:
			if err := s.restore(p, n); err != nil {
				errs = append(errs, fmt.Errorf("crashfs: restore %s: %w", p, err))
			}
		}
	}
	clear(s.nodes)
	return next, errors.Join(errs...)
}

// restore replaces the file at path with a new file holding what n says
// survives: the synced size, the current bytes below it, and the saved
// synced bytes over them.
func (s *state) restore(path string, n *node) error {
	src, err := s.base.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	perm := os.FileMode(0o644)
	if st, err := src.Stat(); err == nil {
		perm = st.Mode().Perm()
	}
	tmp := path + ".crashfs-restore"
	dst, err := s.base.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		_ = src.Close()
		return err
	}
	err = n.writeSurvivors(src, dst)
	err = errors.Join(err, src.Close(), dst.Close())
	if err == nil {
		err = s.base.Rename(tmp, path)
	}
	if err != nil {
		_ = s.base.Remove(tmp)
	}
	return err
}

// writeSurvivors writes to dst what a crash leaves of src.
func (n *node) writeSurvivors(src, dst vfs.File) error {
	buf := make([]byte, 1<<20)
	for off, end := int64(0), min(n.size, n.synced); off < end; {
		k := int(min(int64(len(buf)), end-off))
		r, err := src.ReadAt(buf[:k], off)
		if r == k {
			err = nil
		} else if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		if _, err := dst.WriteAt(buf[:k], off); err != nil {
			return err
		}
		off += int64(k)
	}
	if err := dst.Truncate(n.synced); err != nil {
		return err
	}
	for _, e := range n.saved {
		if _, err := dst.WriteAt(e.data, e.off); err != nil {
			return err
		}
	}
	return nil
}

// file is a File of one incarnation.
type file struct {
	fs        *FS
	n         *node
	base      vfs.File
	name      string
	writeOnly bool // opened O_WRONLY: ReadAt and Map are refused
}

var _ vfs.File = (*file)(nil)

func (f *file) enter(op string) error {
	if !f.fs.s.enter(f.fs.gen) {
		return crashed(op, f.name)
	}
	return nil
}

func (f *file) exit() { f.fs.s.exit() }

func (f *file) Name() string { return f.name }

var errWriteOnly = errors.New("crashfs: file opened write-only")

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if err := f.enter("read"); err != nil {
		return 0, err
	}
	defer f.exit()
	if f.writeOnly {
		return 0, &os.PathError{Op: "read", Path: f.name, Err: errWriteOnly}
	}
	return f.base.ReadAt(p, off)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.enter("write"); err != nil {
		return 0, err
	}
	defer f.exit()
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if off >= 0 {
		if err := n.saveLocked(f.base, off, off+int64(len(p))); err != nil {
			return 0, err
		}
	}
	k, err := f.base.WriteAt(p, off)
	if k > 0 {
		n.size = max(n.size, off+int64(k))
	}
	return k, err
}

// Sync makes the file's content and size durable. The file's writes wait
// for it.
func (f *file) Sync() error {
	if err := f.enter("sync"); err != nil {
		return err
	}
	defer f.exit()
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := f.base.Sync(); err != nil {
		return err
	}
	n.synced = n.size
	n.saved = nil
	return nil
}

func (f *file) Truncate(size int64) error {
	if err := f.enter("truncate"); err != nil {
		return err
	}
	defer f.exit()
	return f.truncateEntered(size)
}

// truncateEntered is Truncate once entered (OpenFile calls it for O_TRUNC).
func (f *file) truncateEntered(size int64) error {
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if size >= 0 && size < n.size {
		if err := n.saveLocked(f.base, size, n.size); err != nil {
			return err
		}
	}
	if err := f.base.Truncate(size); err != nil {
		return err
	}
	n.size = size
	return nil
}

func (f *file) Allocate(off, size int64) error {
	if err := f.enter("allocate"); err != nil {
		return err
	}
	defer f.exit()
	if err := f.base.Allocate(off, size); err != nil {
		return err
	}
	// Where the platform cannot keep the size, the file grew (with zeros,
	// which a crash drops with the rest of the unsynced size).
	if st, err := f.base.Stat(); err == nil {
		f.n.mu.Lock()
		f.n.size = max(f.n.size, st.Size())
		f.n.mu.Unlock()
	}
	return nil
}

func (f *file) Stat() (os.FileInfo, error) {
	if err := f.enter("stat"); err != nil {
		return nil, err
	}
	defer f.exit()
	return f.base.Stat()
}

// Map maps the file. The mapping is the wrapped FS's: it stays readable
// after a crash (see the package comment).
func (f *file) Map(size int) (vfs.Mapping, error) {
	if err := f.enter("mmap"); err != nil {
		return nil, err
	}
	defer f.exit()
	if f.writeOnly {
		return nil, &os.PathError{Op: "mmap", Path: f.name, Err: errWriteOnly}
	}
	m, err := f.base.Map(size)
	if err == nil {
		f.n.mu.Lock()
		f.n.mapped = true
		f.n.mu.Unlock()
	}
	return m, err
}

func (f *file) SyscallConn() (syscall.RawConn, error) {
	if err := f.enter("syscallconn"); err != nil {
		return nil, err
	}
	defer f.exit()
	return f.base.SyscallConn()
}

// Close closes the file. A file of a crashed incarnation was closed by
// Crash: Close returns nil.
func (f *file) Close() error {
	s := f.fs.s
	if !s.enter(f.fs.gen) {
		return nil
	}
	defer s.exit()
	s.nsMu.Lock()
	_, open := s.files[f]
	delete(s.files, f)
	s.nsMu.Unlock()
	if !open {
		return &os.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	return f.base.Close()
}

// closeBase closes a file OpenFile failed to finish.
func (f *file) closeBase() {
	s := f.fs.s
	s.nsMu.Lock()
	delete(s.files, f)
	s.nsMu.Unlock()
	_ = f.base.Close()
}

// saveLocked remembers the synced bytes in [from, to) that are not
// remembered yet, reading them from r: bytes below the synced size that
// have not changed since the last Sync are still in the file. Bytes at or
// past the synced size need nothing: a crash cuts them off.
func (n *node) saveLocked(r io.ReaderAt, from, to int64) error {
	to = min(to, n.synced)
	if from >= to {
		return nil
	}
	// The first extent that ends after from.
	i := sort.Search(len(n.saved), func(i int) bool { return n.saved[i].end() > from })
	var add []extent
	pos := from
	for ; pos < to; i++ {
		gapEnd := to
		if i < len(n.saved) {
			gapEnd = min(to, n.saved[i].off)
		}
		if pos < gapEnd {
			buf := make([]byte, gapEnd-pos)
			k, err := r.ReadAt(buf, pos)
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			clear(buf[k:]) // past the current end of file: zeros, as Truncate left them
			add = append(add, extent{off: pos, data: buf})
		}
		if i >= len(n.saved) {
			break
		}
		pos = max(pos, n.saved[i].end())
	}
	if len(add) == 0 {
		return nil
	}
	n.saved = append(n.saved, add...)
	slices.SortFunc(n.saved, func(a, b extent) int {
		switch {
		case a.off < b.off:
			return -1
		case a.off > b.off:
			return 1
		}
		return 0
	})
	// Coalesce neighbours, so that a run of small overwrites stays one
	// extent.
	out := n.saved[:1]
	for _, e := range n.saved[1:] {
		last := &out[len(out)-1]
		if last.end() == e.off {
			last.data = append(last.data, e.data...)
		} else {
			out = append(out, e)
		}
	}
	clear(n.saved[len(out):])
	n.saved = out
	return nil
}
