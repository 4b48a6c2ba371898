package batch

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSetLogAppendTime(t *testing.T) {
	var b Builder
	b.Reset(CodecNone)
	b.Add(100, []byte("k"), []byte("v"), nil)
	b.Add(105, nil, []byte("w"), nil)
	out, err := b.Build(nil)
	require.NoError(t, err)
	SetLogAppendTime(out, 9999)
	h, err := Check(out, len(out))
	require.NoError(t, err, "the CRC was recomputed")
	require.True(t, h.LogAppendTime())
	require.Equal(t, int64(9999), h.MaxTimestamp)
	require.Equal(t, int64(100), h.BaseTimestamp)
	require.Equal(t, CodecNone, h.Codec())
	SetLogAppendTime(out[:10], 1) // too short: no panic, no change
}
