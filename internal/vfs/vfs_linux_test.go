package vfs_test

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/vfs"
)

// On Linux, check that Allocate really reserved blocks, not just that it
// left the size alone.
func TestAllocateReservesBlocks(t *testing.T) {
	f := openRW(t, filepath.Join(t.TempDir(), "f"))
	const size = 4 << 20
	err := f.Allocate(0, size)
	if errors.Is(err, vfs.ErrAllocateUnsupported) {
		t.Skipf("allocate unsupported here: %v", err)
	}
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.EqualValues(t, 0, fi.Size())
	st, ok := fi.Sys().(*syscall.Stat_t)
	require.True(t, ok)
	assert.GreaterOrEqual(t, st.Blocks*512, int64(size), "blocks reserved")
}

// Allocate on a read-only descriptor fails with context, and is not
// mistaken for lack of support.
func TestAllocateBadDescriptor(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	openRW(t, name)
	ro, err := vfs.Default.OpenFile(name, syscall.O_RDONLY, 0)
	require.NoError(t, err)
	defer func() { _ = ro.Close() }()
	err = ro.Allocate(0, 4096)
	require.Error(t, err)
	assert.NotErrorIs(t, err, vfs.ErrAllocateUnsupported)
	assert.ErrorIs(t, err, syscall.EBADF)
	assert.Contains(t, err.Error(), "fallocate")
	assert.Contains(t, err.Error(), name)
}
