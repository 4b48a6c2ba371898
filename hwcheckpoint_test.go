package commitlog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/internal/vfs"
)

func TestReadHWCheckpoint(t *testing.T) {
	dir := t.TempDir()
	hws, err := readHWCheckpoint(vfs.Default, dir)
	if err != nil || len(hws) != 0 {
		t.Fatalf("missing file: %v %v, want an empty checkpoint", hws, err)
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, hwCheckpointFile), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("0\n2\norders 0 17\norders 1 4\n")
	hws, err = readHWCheckpoint(vfs.Default, dir)
	if err != nil || hws[cluster.TopicPartition{Topic: "orders", Partition: 0}] != 17 || hws[cluster.TopicPartition{Topic: "orders", Partition: 1}] != 4 {
		t.Fatalf("read %v, %v", hws, err)
	}
	for name, bad := range map[string]string{
		"version":      "1\n0\n",
		"count":        "0\n3\norders 0 1\n",
		"fields":       "0\n1\norders 0\n",
		"negative":     "0\n1\norders 0 -5\n",
		"not a number": "0\n1\norders x 5\n",
		"empty":        "",
	} {
		write(bad)
		if _, err := readHWCheckpoint(vfs.Default, dir); !errors.Is(err, ErrCorruptLog) {
			t.Errorf("%s: %v, want ErrCorruptLog", name, err)
		}
	}
}
