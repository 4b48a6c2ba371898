package commitlog

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamkit/commitlog/cluster"
	"github.com/streamkit/commitlog/internal/vfs"
)

// The high-watermark checkpoint of a broker of a cluster: the file
// replication-offset-checkpoint in the broker's directory, Kafka's text
// format:
//
//	0                  format version
//	<n>                number of entries
//	<topic> <partition> <high watermark>    n lines
//
// written atomically every hwCheckpointInterval and when the broker closes,
// read when it opens: a replica starts from its last known high watermark
// (replication.Replica.InitHighWatermark, clamped to its log) instead of
// its log start, so that its consumers see the committed records at once
// after a restart, before the leader tells it more. A missing file is an
// empty checkpoint; a damaged one is an error naming it.

const (
	hwCheckpointFile     = "replication-offset-checkpoint"
	hwCheckpointInterval = 5 * time.Second // replica.high.watermark.checkpoint.interval.ms
	hwCheckpointMaxBytes = 64 << 20        // read no more than this
)

// readHWCheckpoint reads the checkpoint in dir.
func readHWCheckpoint(fs vfs.FS, dir string) (map[cluster.TopicPartition]int64, error) {
	name := filepath.Join(dir, hwCheckpointFile)
	hws := map[cluster.TopicPartition]int64{}
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		if os.IsNotExist(err) {
			return hws, nil
		}
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > hwCheckpointMaxBytes {
		return nil, fmt.Errorf("%w: %s: %d bytes", ErrCorruptLog, name, st.Size())
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, err
	}
	bad := func(line int, why string) error {
		return fmt.Errorf("%w: %s line %d: %s", ErrCorruptLog, name, line, why)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<16)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptLog, name, err)
	}
	if len(lines) < 2 || lines[0] != "0" {
		return nil, bad(1, "not a version 0 checkpoint")
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n != len(lines)-2 {
		return nil, bad(2, fmt.Sprintf("%q entries, %d lines follow", lines[1], len(lines)-2))
	}
	for i, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, bad(i+3, "want: topic partition offset")
		}
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		hw, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || p < 0 || hw < 0 {
			return nil, bad(i+3, "bad partition or offset")
		}
		hws[cluster.TopicPartition{Topic: f[0], Partition: int32(p)}] = hw
	}
	return hws, nil
}

// writeHWCheckpoint writes the high watermarks of the broker's replicas.
func (b *Broker) writeHWCheckpoint() error {
	var lines []string
	for _, t := range b.topicsSnapshot() {
		for _, p := range t.Partitions() {
			if p.repl != nil {
				lines = append(lines, fmt.Sprintf("%s %d %d", t.name, p.id, p.repl.HighWatermark()))
			}
		}
	}
	slices.Sort(lines)
	data := fmt.Appendf(nil, "0\n%d\n", len(lines))
	for _, l := range lines {
		data = append(data, l...)
		data = append(data, '\n')
	}
	return vfs.WriteFileAtomic(b.fs, filepath.Join(b.dir, hwCheckpointFile), data, 0o644)
}
