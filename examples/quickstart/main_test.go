package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuickstart(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), dir, &out))
	require.Equal(t, "greetings-0@0: hello\ngreetings-0@1: hallo\ngreetings-0@2: bonjour\n", out.String())

	// A second run finds the topic and its records, and appends after them.
	out.Reset()
	require.NoError(t, run(context.Background(), dir, &out))
	require.Contains(t, out.String(), "greetings-0@5: bonjour\n")
	require.Equal(t, 6, bytes.Count(out.Bytes(), []byte("\n")))
}
