package vfs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TempFileSuffix ends the name of every temporary file WriteFileAtomic
// creates (name + "." + random + TempFileSuffix, in name's directory). A
// crash may leave such files behind; IsTempFile recognises them so that
// recovery can remove them.
const TempFileSuffix = ".tmp"

// IsTempFile reports whether base (a file name without directory) looks like
// a temporary file left by WriteFileAtomic.
func IsTempFile(base string) bool { return strings.HasSuffix(base, TempFileSuffix) }

// WriteFileAtomic writes data to name via a temporary file in the same
// directory: write, Sync, Close, Rename, SyncDir. A crash at any step leaves
// either the old file or the new one (plus, possibly, a stray temporary
// file). On error before the rename the temporary file is removed; an error
// from the final SyncDir means the new content is in place but perhaps not
// yet durable.
func WriteFileAtomic(fs FS, name string, data []byte, perm os.FileMode) error {
	wrap := func(step string, err error) error {
		return fmt.Errorf("vfs: write file atomically %s: %s: %w", name, step, err)
	}
	dir := filepath.Dir(name)

	var (
		tmp  string
		f    File
		err  error
		errs int
	)
	for {
		tmp = name + "." + strconv.FormatUint(rand.Uint64(), 36) + TempFileSuffix
		f, err = fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err == nil {
			break
		}
		// Retry a few times on the (unlikely) name collision only.
		if errs++; !errors.Is(err, os.ErrExist) || errs >= 10 {
			return wrap("create temporary file", err)
		}
	}

	fail := func(step string, err error) error {
		if f != nil {
			_ = f.Close()
		}
		_ = fs.Remove(tmp)
		return wrap(step, err)
	}
	if n, err := f.WriteAt(data, 0); err != nil {
		return fail("write", err)
	} else if n != len(data) {
		return fail("write", fmt.Errorf("short write %d of %d bytes", n, len(data)))
	}
	if err := f.Sync(); err != nil {
		return fail("sync", err)
	}
	closeErr := f.Close()
	f = nil
	if closeErr != nil {
		return fail("close", closeErr)
	}
	if err := fs.Rename(tmp, name); err != nil {
		return fail("rename", err)
	}
	if err := fs.SyncDir(dir); err != nil {
		return wrap("sync directory", err)
	}
	return nil
}
