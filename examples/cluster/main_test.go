package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCluster(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), t.TempDir(), &out))
	require.Regexp(t, regexp.MustCompile(`^first at offset 0, leader broker 1
stopped broker 1
second at offset 1, leader broker [23]
$`), out.String())
}
