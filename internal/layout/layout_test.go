package layout

import (
	"math"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSegmentFileRoundTrip(t *testing.T) {
	for _, base := range []int64{0, 1, 42, 1 << 32, math.MaxInt64} {
		for _, k := range []Kind{KindLog, KindIndex, KindTimeIndex} {
			name := SegmentFile(base, k)
			require.Len(t, name, 20+len(k.String()))
			gotBase, gotKind, ok := ParseSegmentFile(name)
			require.True(t, ok, name)
			require.Equal(t, base, gotBase)
			require.Equal(t, k, gotKind)
		}
	}
	require.Equal(t, "00000000000000000042.log", SegmentFile(42, KindLog))
}

func TestParseSegmentFileRejects(t *testing.T) {
	for _, name := range []string{
		"", "x.log", "0000000000000000004.log", "0000000000000000004x.log",
		"00000000000000000042.log.deleted", "00000000000000000042.idx",
		"-0000000000000000042.log", "99999999999999999999.log", CleanShutdownFile,
	} {
		_, _, ok := ParseSegmentFile(name)
		require.False(t, ok, name)
	}
}

func TestSegmentFilesSortByOffset(t *testing.T) {
	bases := []int64{100, 9, 1 << 40, 0, 10}
	names := make([]string, len(bases))
	for i, b := range bases {
		names[i] = SegmentFile(b, KindLog)
	}
	sort.Strings(names)
	var got []int64
	for _, n := range names {
		b, _, _ := ParseSegmentFile(n)
		got = append(got, b)
	}
	require.IsIncreasing(t, got)
}

func TestPartitionDirRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		topic string
		part  int32
	}{{"orders", 0}, {"a-b-c", 12}, {"x", math.MaxInt32}, {"__consumer_offsets", 49}} {
		name := PartitionDir(tc.topic, tc.part)
		topic, part, ok := ParsePartitionDir(name)
		require.True(t, ok, name)
		require.Equal(t, tc.topic, topic)
		require.Equal(t, tc.part, part)
	}
	for _, name := range []string{"", "orders", "orders-", "-1", "orders-x", "orders-+1", "orders-01"} {
		_, _, ok := ParsePartitionDir(name)
		require.False(t, ok, name)
	}
}
