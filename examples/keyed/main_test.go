package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKeyed(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), t.TempDir(), &out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4)
	for _, u := range []string{"ada", "grace", "linus", "barbara", "ken"} {
		holders := 0
		for _, l := range lines {
			if strings.Contains(l, "["+u+" click") {
				holders++
				i0 := strings.Index(l, u+" click 0")
				i1 := strings.Index(l, u+" click 1")
				i2 := strings.Index(l, u+" click 2")
				require.True(t, i0 >= 0 && i0 < i1 && i1 < i2, "%s's clicks in order in %q", u, l)
			}
		}
		require.Equal(t, 1, holders, "%s's clicks are in exactly one partition", u)
	}
}
