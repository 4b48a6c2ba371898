package commitlog

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamkit/commitlog/internal/batch"
)

// idempotentBatch builds a batch of n records from producer id/epoch
// starting at sequence seq.
func idempotentBatch(t *testing.T, id int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	var b batch.Builder
	b.Reset(batch.CodecNone)
	b.SetProducer(id, epoch, seq)
	for i := 0; i < n; i++ {
		b.Add(time.Now().UnixMilli(), []byte("k"), []byte("v"), nil)
	}
	out, err := b.Build(nil)
	require.NoError(t, err)
	return out
}

func TestIdempotentProducer(t *testing.T) {
	dir := t.TempDir()
	cfg := LogConfig{SegmentBytes: 1024, SyncPolicy: SyncNone}
	l, err := OpenLog(dir, cfg)
	require.NoError(t, err)
	app := func(id int64, epoch int16, seq int32, n int) (int64, error) {
		return l.Append(idempotentBatch(t, id, epoch, seq, n))
	}
	base, err := app(7, 0, 0, 3)
	require.NoError(t, err)
	require.Equal(t, int64(0), base)
	base, err = app(7, 0, 3, 2)
	require.NoError(t, err)
	require.Equal(t, int64(3), base)

	// A retry of either kept batch gets its original offset back and
	// writes nothing.
	base, err = app(7, 0, 0, 3)
	require.NoError(t, err)
	require.Equal(t, int64(0), base)
	base, err = app(7, 0, 3, 2)
	require.NoError(t, err)
	require.Equal(t, int64(3), base)
	require.Equal(t, int64(5), l.EndOffset())

	_, err = app(7, 0, 9, 1)
	require.ErrorIs(t, err, ErrOutOfOrderSequence, "a gap")
	_, err = app(7, 0, 4, 1)
	require.ErrorIs(t, err, ErrOutOfOrderSequence, "overlapping, not a retry")
	_, err = app(7, 1, 5, 1)
	require.ErrorIs(t, err, ErrOutOfOrderSequence, "a new epoch starts at 0")
	base, err = app(7, 1, 0, 1)
	require.NoError(t, err)
	require.Equal(t, int64(5), base)
	_, err = app(7, 0, 5, 1)
	require.ErrorIs(t, err, ErrInvalidProducerEpoch, "the old epoch is fenced")
	base, err = app(8, 0, 41, 1)
	require.NoError(t, err, "an unknown producer starts its state anywhere")
	require.Equal(t, int64(6), base)
	require.Equal(t, int64(7), l.EndOffset(), "no failed batch was written")

	// Many batches roll segments; the state follows.
	for seq := int32(1); seq < 40; seq++ {
		_, err = app(7, 1, seq, 1)
		require.NoError(t, err)
	}
	require.Greater(t, l.Segments(), 1)
	end := l.EndOffset()

	check := func(l *Log) {
		t.Helper()
		base, err := l.Append(idempotentBatch(t, 7, 1, 39, 1))
		require.NoError(t, err, "retry of the last batch after reopen")
		require.Equal(t, end-1, base)
		_, err = l.Append(idempotentBatch(t, 7, 0, 40, 1))
		require.ErrorIs(t, err, ErrInvalidProducerEpoch)
		_, err = l.Append(idempotentBatch(t, 8, 0, 43, 1))
		require.ErrorIs(t, err, ErrOutOfOrderSequence)
		require.Equal(t, end, l.EndOffset())
	}
	require.NoError(t, l.Close())
	l, err = OpenLog(dir, cfg)
	require.NoError(t, err)
	check(l)
	crash(l)
	l, err = OpenLog(dir, cfg)
	require.NoError(t, err)
	check(l)
	require.NoError(t, l.Close())

	// A damaged snapshot is ignored and the state rebuilt from the log.
	snap := filepath.Join(dir, producerSnapshotFile)
	data, err := os.ReadFile(snap)
	require.NoError(t, err)
	data[len(data)/2] ^= 0xff
	require.NoError(t, os.WriteFile(snap, data, 0o644))
	l, err = OpenLog(dir, cfg)
	require.NoError(t, err)
	check(l)

	// Truncation forgets the truncated batches: the last kept one before
	// the cut is what the next batch must follow.
	_, err = l.Truncate(end - 1)
	require.NoError(t, err)
	_, err = l.Append(idempotentBatch(t, 7, 1, 39, 1))
	require.NoError(t, err)
	require.Equal(t, end, l.EndOffset())
	require.NoError(t, l.Close())
}

func TestDecodeSnapshotRejects(t *testing.T) {
	ps := producers{1: {epoch: 2, lastWrite: 1 << 50, batches: []producerBatch{{0, 4, 10}}}}
	good := ps.encode(11, timeNowForTest())
	got, off, ok := decodeSnapshot(good)
	require.True(t, ok)
	require.Equal(t, int64(11), off)
	require.Equal(t, ps, got)
	expired, _, ok := decodeSnapshot(ps.encode(11, timeNowForTest().Add(producerExpiration+time.Millisecond)))
	require.True(t, ok)
	require.Empty(t, expired, "producers idle past the expiration are dropped")
	for i := range good {
		_, _, ok := decodeSnapshot(good[:i])
		require.False(t, ok, "cut at %d", i)
	}
}

func timeNowForTest() (t time.Time) { return time.UnixMilli(1 << 50) }
