package replication

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/streamkit/commitlog/internal/vfs"
	"github.com/streamkit/commitlog/internal/vfs/errorfs"
)

func openCache(t *testing.T) (*EpochCache, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), EpochCheckpointFile)
	c, err := OpenEpochCache(path)
	mustNil(t, err)
	return c, path
}

func TestEpochCacheRoundTrip(t *testing.T) {
	c, path := openCache(t)
	if _, _, ok := c.Latest(); ok {
		t.Fatal("new cache not empty")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("empty cache wrote a file: %v", err)
	}
	mustNil(t, c.Assign(0, 0))
	mustNil(t, c.Assign(3, 150))
	mustNil(t, c.Assign(3, 200)) // not above latest: no-op
	mustNil(t, c.Assign(2, 300)) // below latest: no-op
	mustNil(t, c.Assign(7, 400))
	b, err := os.ReadFile(path)
	mustNil(t, err)
	if want := "0\n3\n0 0\n3 150\n7 400\n"; string(b) != want {
		t.Fatalf("checkpoint = %q, want %q", b, want)
	}
	c2, err := OpenEpochCache(path)
	mustNil(t, err)
	if !slices.Equal(c2.Entries(), c.Entries()) {
		t.Fatalf("reopened %v, want %v", c2.Entries(), c.Entries())
	}
	if e, off, ok := c2.Latest(); !ok || e != 7 || off != 400 {
		t.Fatalf("Latest = %d %d %v", e, off, ok)
	}
	// No temporary files left behind.
	des, err := os.ReadDir(filepath.Dir(path))
	mustNil(t, err)
	if len(des) != 1 {
		t.Fatalf("directory holds %v", des)
	}
}

func TestEpochCacheAssignSupersedes(t *testing.T) {
	c, _ := openCache(t)
	mustNil(t, c.Assign(1, 0))
	mustNil(t, c.Assign(2, 10))
	mustNil(t, c.Assign(3, 20))
	// Epoch 5 starting at 10: the records of 2 and 3 were truncated.
	mustNil(t, c.Assign(5, 10))
	want := []EpochEntry{{1, 0}, {5, 10}}
	if got := c.Entries(); !slices.Equal(got, want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	if err := c.Assign(-1, 0); err == nil {
		t.Fatal("negative epoch accepted")
	}
}

func TestEpochCacheTruncate(t *testing.T) {
	c, path := openCache(t)
	for _, e := range []EpochEntry{{1, 0}, {2, 10}, {4, 20}, {6, 30}} {
		mustNil(t, c.Assign(e.Epoch, e.StartOffset))
	}
	mustNil(t, c.TruncateFrom(25))
	if want := []EpochEntry{{1, 0}, {2, 10}, {4, 20}}; !slices.Equal(c.Entries(), want) {
		t.Fatalf("after TruncateFrom(25): %v", c.Entries())
	}
	mustNil(t, c.TruncateFrom(20)) // the entry starting at 20 goes
	if want := []EpochEntry{{1, 0}, {2, 10}}; !slices.Equal(c.Entries(), want) {
		t.Fatalf("after TruncateFrom(20): %v", c.Entries())
	}
	mustNil(t, c.TruncateFrom(100)) // nothing
	mustNil(t, c.Assign(4, 20))
	mustNil(t, c.TruncateBefore(15))
	if want := []EpochEntry{{2, 15}, {4, 20}}; !slices.Equal(c.Entries(), want) {
		t.Fatalf("after TruncateBefore(15): %v", c.Entries())
	}
	mustNil(t, c.TruncateBefore(20)) // exactly at an entry: it becomes the first
	if want := []EpochEntry{{4, 20}}; !slices.Equal(c.Entries(), want) {
		t.Fatalf("after TruncateBefore(20): %v", c.Entries())
	}
	mustNil(t, c.TruncateBefore(5)) // below the first: nothing
	c2, err := OpenEpochCache(path)
	mustNil(t, err)
	if !slices.Equal(c2.Entries(), c.Entries()) {
		t.Fatalf("reopened %v, want %v", c2.Entries(), c.Entries())
	}
	mustNil(t, c.clear())
	if len(c.Entries()) != 0 {
		t.Fatal("clear left entries")
	}
}

func TestEpochCacheEndOffsetFor(t *testing.T) {
	c, _ := openCache(t)
	if e, off := c.EndOffsetFor(3, 100); e != -1 || off != -1 {
		t.Fatalf("empty cache: %d %d", e, off)
	}
	for _, e := range []EpochEntry{{2, 10}, {4, 20}, {7, 35}} {
		mustNil(t, c.Assign(e.Epoch, e.StartOffset))
	}
	const leo = 50
	for _, tc := range []struct {
		epoch     int32
		wantEpoch int32
		wantEnd   int64
	}{
		{-1, -1, -1}, // undefined
		{0, 0, 10},   // below the first entry: Kafka answers the first start
		{1, 1, 10},   //
		{2, 2, 20},   // exact
		{3, 2, 20},   // unknown epoch between: the one below
		{4, 4, 35},   //
		{6, 4, 35},   //
		{7, 7, leo},  // latest: the log end
		{8, -1, -1},  // above every entry
	} {
		e, off := c.EndOffsetFor(tc.epoch, leo)
		if e != tc.wantEpoch || off != tc.wantEnd {
			t.Errorf("EndOffsetFor(%d) = %d %d, want %d %d", tc.epoch, e, off, tc.wantEpoch, tc.wantEnd)
		}
	}
}

func TestEpochCacheCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"empty":          "",
		"bad version":    "1\n0\n",
		"no count":       "0\n",
		"bad count":      "0\nx\n",
		"negative count": "0\n-1\n",
		"short":          "0\n2\n0 0\n",
		"long":           "0\n1\n0 0\n1 5\n",
		"no space":       "0\n1\n00\n",
		"bad epoch":      "0\n1\nx 0\n",
		"epoch overflow": "0\n1\n2147483648 0\n",
		"negative":       "0\n1\n0 -5\n",
		"epoch order":    "0\n2\n3 0\n2 5\n",
		"offset order":   "0\n2\n1 5\n2 5\n",
		"huge count":     "0\n99999999999\n0 0\n",
		"crlf":           "0\r\n0\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), EpochCheckpointFile)
			mustNil(t, os.WriteFile(path, []byte(content), 0o644))
			_, err := OpenEpochCache(path)
			if !errors.Is(err, ErrCorruptCheckpoint) {
				t.Fatalf("err = %v, want ErrCorruptCheckpoint", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), EpochCheckpointFile)
		mustNil(t, os.WriteFile(path, make([]byte, maxCheckpointSize+1), 0o644))
		if _, err := OpenEpochCache(path); !errors.Is(err, ErrCorruptCheckpoint) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("no trailing newline", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), EpochCheckpointFile)
		mustNil(t, os.WriteFile(path, []byte("0\n1\n3 7"), 0o644))
		c, err := OpenEpochCache(path)
		mustNil(t, err)
		if want := []EpochEntry{{3, 7}}; !slices.Equal(c.Entries(), want) {
			t.Fatalf("entries %v", c.Entries())
		}
	})
}

// A failed checkpoint write is reported; the cache in memory keeps the
// change and the next write brings the file up to date.
func TestEpochCacheWriteFailure(t *testing.T) {
	inj := errorfs.Nth(1, errorfs.OpSync)
	fs := errorfs.New(vfs.Default, inj)
	path := filepath.Join(t.TempDir(), EpochCheckpointFile)
	c, err := OpenEpochCacheFS(fs, path)
	mustNil(t, err)
	if err := c.Assign(1, 0); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("Assign err = %v, want injected", err)
	}
	if e, _, ok := c.Latest(); !ok || e != 1 {
		t.Fatal("memory lost the entry")
	}
	mustNil(t, c.Assign(2, 5))
	c2, err := OpenEpochCache(path)
	mustNil(t, err)
	if want := []EpochEntry{{1, 0}, {2, 5}}; !slices.Equal(c2.Entries(), want) {
		t.Fatalf("reopened %v", c2.Entries())
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte("0\n2\n0 0\n3 150\n"))
	f.Add([]byte("0\n0\n"))
	f.Add([]byte("0\n1\n5 5"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptCheckpoint) {
				t.Fatalf("error %v does not wrap ErrCorruptCheckpoint", err)
			}
			return
		}
		for i := 1; i < len(es); i++ {
			if es[i].Epoch <= es[i-1].Epoch || es[i].StartOffset <= es[i-1].StartOffset {
				t.Fatalf("accepted unordered entries %v", es)
			}
		}
		again, err := parseCheckpoint(formatCheckpoint(es))
		if err != nil || !slices.Equal(again, es) {
			t.Fatalf("round trip: %v %v, want %v", again, err, es)
		}
	})
}
