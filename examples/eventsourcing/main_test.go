package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEventSourcing(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), dir, &out))
	require.Equal(t, "rebuilt: {}\nrefused: bob: insufficient funds for 80\nnow: {alice:70 bob:50}\n", out.String())

	out.Reset()
	require.NoError(t, run(context.Background(), dir, &out))
	require.Equal(t, "rebuilt: {alice:70 bob:50}\nnow: {alice:140 bob:20}\n", out.String())
}
