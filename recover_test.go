package commitlog

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/layout"
	"github.com/streamkit/commitlog/internal/vfs"
	"github.com/streamkit/commitlog/internal/vfs/errorfs"
)

// TestTornWriteEveryByte cuts the last batch of the last segment at every
// byte, and also leaves garbage after the cut, and checks that the log
// recovers to the previous batch boundary with nothing before it lost.
func TestTornWriteEveryByte(t *testing.T) {
	for _, codec := range []batch.Codec{batch.CodecNone, batch.CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			src := t.TempDir()
			cfg := LogConfig{SegmentBytes: 1500, IndexIntervalBytes: 100, SyncPolicy: SyncNone}
			l, err := OpenLog(src, cfg)
			require.NoError(t, err)
			appendN(t, l, codec, 100, 4, 0)
			lastBase := l.EndOffset() - 4
			last := l.active
			size := last.size.Load()
			s, err := l.Read(lastBase, 1)
			require.NoError(t, err)
			start := s.Position
			s.Release()
			logName := filepath.Join(src, layout.SegmentFile(last.base, layout.KindLog))
			crash(l)
			full, err := os.ReadFile(logName)
			require.NoError(t, err)
			require.Equal(t, size, int64(len(full)))

			// Earlier segments stay as they were; each round tears the last
			// one and removes what the previous round appended after it.
			dir := src
			name := logName
			for cut := start; cut < size; cut++ {
				for _, garbage := range []byte{0, 0xff} {
					entries, err := os.ReadDir(dir)
					require.NoError(t, err)
					for _, e := range entries {
						if b, _, ok := layout.ParseSegmentFile(e.Name()); ok && b > last.base {
							require.NoError(t, os.Remove(filepath.Join(dir, e.Name())))
						}
					}
					torn := append([]byte(nil), full[:cut]...)
					if garbage != 0 {
						for i := cut; i < size; i++ {
							torn = append(torn, garbage)
						}
					}
					require.NoError(t, os.WriteFile(name, torn, 0o644))
					l, err := OpenLog(dir, cfg)
					require.NoError(t, err, "cut at %d", cut)
					require.Equal(t, lastBase, l.EndOffset(), "cut at %d", cut)
					require.Equal(t, expectRecords(0, int(lastBase), 0), readAll(t, l, 0), "cut at %d", cut)
					// The log goes on from the boundary.
					appendN(t, l, codec, 4, 4, 0)
					require.Equal(t, expectRecords(0, int(lastBase)+4, 0), readAll(t, l, 0))
					crash(l)
					st, err := os.Stat(name)
					require.NoError(t, err)
					require.Equal(t, size, st.Size(), "the torn tail was cut and rewritten")
				}
			}
		})
	}
}

// TestCorruptIndexRebuilt damages or removes index files and checks that a
// clean open rebuilds them from the log.
func TestCorruptIndexRebuilt(t *testing.T) {
	cfg := LogConfig{SegmentBytes: 4000, IndexIntervalBytes: 100, SyncPolicy: SyncNone}
	damage := map[string]func(t *testing.T, name string){
		"removed": func(t *testing.T, name string) { require.NoError(t, os.Remove(name)) },
		"odd size": func(t *testing.T, name string) {
			f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.Write([]byte{1, 2, 3})
			require.NoError(t, err)
			require.NoError(t, f.Close())
		},
		"points past the log": func(t *testing.T, name string) {
			b, err := os.ReadFile(name)
			require.NoError(t, err)
			require.NotEmpty(t, b)
			for i := len(b) - 8; i < len(b); i++ {
				b[i] = 0x7f
			}
			require.NoError(t, os.WriteFile(name, b, 0o644))
		},
		"emptied": func(t *testing.T, name string) { require.NoError(t, os.Truncate(name, 0)) },
	}
	for what, fn := range damage {
		for _, kind := range []layout.Kind{layout.KindIndex, layout.KindTimeIndex} {
			t.Run(what+kind.String(), func(t *testing.T) {
				dir := t.TempDir()
				l, err := OpenLog(dir, cfg)
				require.NoError(t, err)
				appendN(t, l, batch.CodecNone, 300, 3, 0)
				require.Greater(t, l.Segments(), 2)
				require.NoError(t, l.Close())
				// The first, a middle and the last segment.
				segs, err := filepath.Glob(filepath.Join(dir, "*"+kind.String()))
				require.NoError(t, err)
				for _, name := range []string{segs[0], segs[len(segs)/2], segs[len(segs)-1]} {
					fn(t, name)
				}

				l, err = OpenLog(dir, cfg)
				require.NoError(t, err)
				defer l.Close()
				require.Equal(t, int64(300), l.EndOffset())
				require.Equal(t, expectRecords(0, 300, 0), readAll(t, l, 0))
				for _, want := range []int64{0, 1, 150, 299} {
					got, ok, err := l.OffsetForTime(want)
					require.NoError(t, err)
					require.True(t, ok)
					require.Equal(t, want, got)
				}
				for _, seg := range l.segs.Load().segs[:l.Segments()-1] {
					require.Greater(t, seg.index.len(), 0, "index rebuilt")
				}
			})
		}
	}
}

// TestStickyErrors checks that a failed write or fsync fails that append
// and every later one, and that reopening recovers what was acknowledged.
func TestStickyErrors(t *testing.T) {
	onLog := func(p string) bool { return strings.HasSuffix(p, ".log") }
	cases := []struct {
		name   string
		policy SyncPolicy
		rule   *errorfs.Rule
	}{
		{"fsync", SyncGroupCommit, errorfs.Nth(1, errorfs.OpSync).OnPath(onLog)},
		{"write", SyncNone, errorfs.Nth(1, errorfs.OpWriteAt).OnPath(onLog)},
		{"short write", SyncNone, errorfs.Nth(1, errorfs.OpWriteAt).OnPath(onLog).WithError(errorfs.ShortWrite(30, nil))},
		{"disk full", SyncNone, errorfs.From(1, errorfs.OpWriteAt).OnPath(onLog).WithError(errorfs.ShortWrite(0, fmt.Errorf("no space left on device: %w", errorfs.ErrInjected)))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			toggle := errorfs.NewToggle(tc.rule)
			cfg := LogConfig{SyncPolicy: tc.policy}
			l, err := openLog(errorfs.New(vfs.Default, toggle), dir, cfg)
			require.NoError(t, err)
			appendN(t, l, batch.CodecNone, 20, 5, 0)
			toggle.On()
			_, err = l.Append(makeBatch(t, batch.CodecNone, 20, 5, 20))
			require.ErrorIs(t, err, errorfs.ErrInjected)
			toggle.Off()
			_, err2 := l.Append(makeBatch(t, batch.CodecNone, 20, 5, 20))
			require.ErrorIs(t, err2, errorfs.ErrInjected, "the error is sticky")
			require.Error(t, l.Close())
			require.Equal(t, int64(1), int64(tc.rule.Injected()))

			l, err = OpenLog(dir, cfg)
			require.NoError(t, err)
			defer l.Close()
			got := readAll(t, l, 0)
			require.GreaterOrEqual(t, len(got), 20)
			require.Equal(t, expectRecords(0, 20, 0), got[:20])
		})
	}
}

// TestGroupCommitConcurrent appends from many goroutines and checks that
// every acknowledged batch is durable and readable, with fewer fsyncs than
// appends.
func TestGroupCommitConcurrent(t *testing.T) {
	syncs := errorfs.From(1<<30, errorfs.OpSync) // counts, never fails
	dir := t.TempDir()
	l, err := openLog(errorfs.New(vfs.Default, syncs), dir, LogConfig{SegmentBytes: 64 << 10})
	require.NoError(t, err)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	acked := make(chan [2]int64, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				b := makeBatch(t, batch.CodecNone, w*1000+i, 3, 0)
				base, err := l.Append(b)
				if !assertNoError(t, err) {
					return
				}
				if l.DurableOffset() < base+3 {
					t.Errorf("append of %d acknowledged before durable offset %d passed it", base, l.DurableOffset())
				}
				acked <- [2]int64{base, int64(w*1000 + i)}
			}
		}()
	}
	wg.Wait()
	close(acked)
	got := readAll(t, l, 0)
	require.Len(t, got, writers*each*3)
	for a := range acked {
		require.Equal(t, fmt.Sprintf("k%d", a[1]), got[a[0]].Key)
	}
	require.Less(t, syncs.Seen(), writers*each, "appends share fsyncs")
	require.NoError(t, l.Close())
}

func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// TestCrashKill runs a child process that appends with group commit from
// several goroutines and reports each acknowledged batch, kills it with
// SIGKILL, and checks that every acknowledged record is readable.
func TestCrashKill(t *testing.T) {
	if dir := os.Getenv("COMMITLOG_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	for round := 0; round < 3; round++ {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill$")
		cmd.Env = append(os.Environ(), "COMMITLOG_CRASH_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		acks := map[int64]int64{} // base offset -> writer sequence
		sc := bufio.NewScanner(out)
		want := 200 + round*300
		for len(acks) < want && sc.Scan() {
			var base, seq int64
			if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &base, &seq); err == nil {
				acks[base] = seq
			}
		}
		require.NoError(t, cmd.Process.Kill())
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		require.Len(t, acks, want, "child acknowledged enough batches before the kill")

		l, err := OpenLog(dir, LogConfig{SegmentBytes: 32 << 10})
		require.NoError(t, err)
		got := readAll(t, l, 0)
		byOffset := map[int64]testRecord{}
		for _, r := range got {
			byOffset[r.Offset] = r
		}
		for base, seq := range acks {
			for i := int64(0); i < crashBatchRecords; i++ {
				r, ok := byOffset[base+i]
				require.True(t, ok, "acknowledged offset %d lost", base+i)
				require.Equal(t, fmt.Sprintf("k%d", seq+i), r.Key)
			}
		}
		require.NoError(t, l.Close())
	}
}

const crashBatchRecords = 4

func crashChild(dir string) {
	l, err := OpenLog(dir, LogConfig{SegmentBytes: 32 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				seq := g*1_000_000 + i*crashBatchRecords
				var b batch.Builder
				b.Reset(batch.CodecNone)
				for j := 0; j < crashBatchRecords; j++ {
					b.Add(time.Now().UnixMilli(), []byte("k"+strconv.Itoa(seq+j)), []byte("value-"+strconv.Itoa(seq+j)), nil)
				}
				buf, _ := b.Build(nil)
				base, err := l.Append(buf)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %d %d\n", base, seq)
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestWaitData checks that a reader waiting for data wakes on append and
// on context cancellation.
func TestWaitData(t *testing.T) {
	l, err := OpenLog(t.TempDir(), LogConfig{SyncPolicy: SyncNone})
	require.NoError(t, err)
	defer l.Close()
	done := make(chan error)
	go func() { done <- l.WaitData(context.Background(), 0) }()
	appendN(t, l, batch.CodecNone, 1, 1, 0)
	require.NoError(t, <-done)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- l.WaitData(ctx, 5) }()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}
