package commitlog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/layout"
)

// appendKeyed appends one batch of records key=value (value "" is a
// tombstone) at timestamp ts.
func appendKeyed(t *testing.T, l *Log, codec batch.Codec, ts int64, kvs ...string) {
	t.Helper()
	var b batch.Builder
	b.Reset(codec)
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		var value []byte
		if v != "" {
			value = []byte(v)
		}
		b.Add(ts, []byte(k), value, nil)
	}
	out, err := b.Build(nil)
	require.NoError(t, err)
	_, err = l.Append(out)
	require.NoError(t, err)
}

// latest reads the log and returns "offset:key=value" for every record.
func latest(t *testing.T, l *Log) []string {
	var out []string
	for _, r := range readAll(t, l, l.StartOffset()) {
		v := r.Value
		if v == "" {
			v = "<tombstone>"
		}
		out = append(out, fmt.Sprintf("%d:%s=%s", r.Offset, r.Key, v))
	}
	return out
}

func TestCompactKeepsLatestPerKey(t *testing.T) {
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := LogConfig{SegmentBytes: 300, SyncPolicy: SyncNone}
			l, err := OpenLog(dir, cfg)
			require.NoError(t, err)
			now := time.UnixMilli(10_000_000)
			appendKeyed(t, l, codec, 1000, "a=1", "b=1", "c=1")
			appendKeyed(t, l, codec, 1000, "a=2", "d=1")
			appendKeyed(t, l, codec, 1000, "b=")  // tombstone, old
			appendKeyed(t, l, codec, 1000, "c=2") // 6
			appendKeyed(t, l, codec, now.UnixMilli(), "d=")
			appendKeyed(t, l, codec, 1000, "e=1")
			appendKeyed(t, l, codec, 1000, "a=3") // 9: the active segment may hold it
			require.NoError(t, l.Roll())
			appendKeyed(t, l, codec, 1000, "c=3") // active: never compacted
			require.Greater(t, l.Segments(), 2)

			held, err := l.Read(0, 1<<20)
			require.NoError(t, err)
			stats, err := l.Compact(CompactOptions{DeleteRetention: time.Hour, Now: now})
			require.NoError(t, err)
			require.Greater(t, stats.SegmentsWritten, 0)
			// Superseded: offsets 0-4; b's tombstone (5) is old and goes, d's
			// (7) is recent and stays; c=3 in the active segment is not seen.
			require.Equal(t, int64(6), stats.RecordsRemoved)
			want := []string{"6:c=2", "7:d=<tombstone>", "8:e=1", "9:a=3", "10:c=3"}
			require.Equal(t, want, latest(t, l))
			_, err = batch.Scan(held.Bytes, len(held.Bytes), nil)
			require.NoError(t, err, "a reader holding the old segment keeps its bytes")
			held.Release()
			require.Equal(t, int64(0), l.StartOffset(), "offsets are kept: the start does not move")
			require.Equal(t, int64(11), l.EndOffset())
			s, err := l.Read(1, 1<<20)
			require.NoError(t, err, "reading in a gap continues at the next record")
			require.NotEmpty(t, s.Bytes)
			s.Release()

			// Survives both kinds of reopen, and compacting again changes nothing.
			require.NoError(t, l.Close())
			l, err = OpenLog(dir, cfg)
			require.NoError(t, err)
			require.Equal(t, want, latest(t, l))
			stats, err = l.Compact(CompactOptions{DeleteRetention: time.Hour, Now: now})
			require.NoError(t, err)
			require.Zero(t, stats.RecordsRemoved)
			crash(l)
			l, err = OpenLog(dir, cfg)
			require.NoError(t, err)
			defer l.Close()
			require.Equal(t, want, latest(t, l))
			// The tombstone expires later.
			_, err = l.Compact(CompactOptions{DeleteRetention: time.Hour, Now: now.Add(2 * time.Hour)})
			require.NoError(t, err)
			require.Equal(t, []string{"6:c=2", "8:e=1", "9:a=3", "10:c=3"}, latest(t, l))
		})
	}
}

// TestCompactSmallMap bounds the key map to a few keys so that compaction
// takes several passes, and checks the result is the same.
func TestCompactSmallMap(t *testing.T) {
	l, err := OpenLog(t.TempDir(), LogConfig{SegmentBytes: 1024, SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer l.Close()
	const keys, rounds = 40, 5
	for r := 0; r < rounds; r++ {
		for k := 0; k < keys; k++ {
			appendKeyed(t, l, batch.CodecNone, 1000, fmt.Sprintf("k%02d=r%d", k, r))
		}
	}
	require.NoError(t, l.Roll())
	require.InDelta(t, 1.0, l.DirtyRatio(), 0.001)
	stats, err := l.Compact(CompactOptions{MemoryBytes: 7 * keyMapEntryBytes})
	require.NoError(t, err)
	require.Greater(t, stats.Passes, 3, "the map holds 7 keys")
	require.Zero(t, l.DirtyRatio())
	var got []string
	for _, r := range readAll(t, l, 0) {
		got = append(got, r.Key+"="+r.Value)
	}
	var want []string
	for k := 0; k < keys; k++ {
		want = append(want, fmt.Sprintf("k%02d=r%d", k, rounds-1))
	}
	require.Equal(t, want, got)
}

// TestCompactCrashDuringSwap stops a swap after each of its steps, the way
// a crash would leave the directory, and checks that the log reopens either
// as it was or as compacted, never with records lost or mixed.
func TestCompactCrashDuringSwap(t *testing.T) {
	build := func(t *testing.T) (string, LogConfig, []string) {
		dir := t.TempDir()
		cfg := LogConfig{SegmentBytes: 400, SyncPolicy: SyncNone}
		l, err := OpenLog(dir, cfg)
		require.NoError(t, err)
		for r := 0; r < 4; r++ {
			appendKeyed(t, l, batch.CodecNone, 1000, "a=x", "b=y", fmt.Sprintf("c=%d", r))
		}
		require.NoError(t, l.Roll())
		before := latest(t, l)
		require.NoError(t, l.Close())
		return dir, cfg, before
	}
	// Compact one log through to learn the compacted contents.
	dir, cfg, before := build(t)
	l, err := OpenLog(dir, cfg)
	require.NoError(t, err)
	_, err = l.Compact(CompactOptions{})
	require.NoError(t, err)
	after := latest(t, l)
	require.NotEqual(t, before, after)
	require.NoError(t, l.Close())

	// Simulate each crash point on a fresh log: write the cleaned files by
	// compacting, then rename them back to the names they had at that point.
	for _, step := range []string{"cleaned", "index-swapped", "log-swapped", "half-renamed"} {
		t.Run(step, func(t *testing.T) {
			dir, cfg, before := build(t)
			// Keep the original first segment's files.
			orig := map[string][]byte{}
			for _, k := range []layout.Kind{layout.KindLog, layout.KindIndex, layout.KindTimeIndex} {
				name := layout.SegmentFile(0, k)
				b, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err)
				orig[name] = b
			}
			l, err := OpenLog(dir, cfg)
			require.NoError(t, err)
			_, err = l.Compact(CompactOptions{})
			require.NoError(t, err)
			require.NoError(t, l.Close())
			os.Remove(filepath.Join(dir, layout.CleanShutdownFile))
			// Now the compacted files are in place; move segment 0 back to the
			// crash point: compacted copies under their in-flight names, the
			// originals restored.
			for name, b := range orig {
				compacted, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err)
				suffix := layout.CleanedSuffix
				isLog := strings.HasSuffix(name, ".log")
				switch step {
				case "index-swapped":
					if !isLog {
						suffix = layout.SwapSuffix
					}
				case "log-swapped":
					suffix = layout.SwapSuffix
				case "half-renamed":
					suffix = layout.SwapSuffix
					if !isLog {
						continue // index files already renamed over the originals
					}
				}
				require.NoError(t, os.WriteFile(filepath.Join(dir, name+suffix), compacted, 0o644))
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
			}
			l, err = OpenLog(dir, cfg)
			require.NoError(t, err)
			defer l.Close()
			got := latest(t, l)
			if step == "cleaned" || step == "index-swapped" {
				require.Equal(t, before, got, "the swap had not committed")
			} else {
				require.Equal(t, after, got, "the swap had committed")
			}
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			for _, e := range entries {
				require.False(t, strings.HasSuffix(e.Name(), layout.SwapSuffix) || strings.HasSuffix(e.Name(), layout.CleanedSuffix), e.Name())
			}
		})
	}
}
