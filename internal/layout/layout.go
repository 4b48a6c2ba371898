// Package layout makes and parses the names of the files and directories a
// log keeps on disk, in one place, in Kafka's layout:
//
//	<dir>/<topic>-<partition>/
//	    00000000000000000000.log         record batches, named by the segment's base offset
//	    00000000000000000000.index       offset index
//	    00000000000000000000.timeindex   time index
//	    00000000000000000000.log.deleted a segment file waiting for its last reader
//	    00000000000000000000.log.cleaned a compacted copy being written
//	    00000000000000000000.log.swap    a compacted copy about to replace the original
//	    clean-shutdown                   written by a clean close, removed on open
//
// Base offsets are written as 20 decimal digits, zero-padded, so that names
// sort in offset order.
package layout

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is the kind of a segment file.
type Kind int

const (
	// KindLog is a segment's .log file.
	KindLog Kind = iota
	// KindIndex is a segment's .index file.
	KindIndex
	// KindTimeIndex is a segment's .timeindex file.
	KindTimeIndex
)

// DeletedSuffix is appended to a segment file's name when the segment is
// dropped from its log; the file is removed once no reader uses it, or on the
// next open.
const DeletedSuffix = ".deleted"

// CleanedSuffix is appended to the names of a segment's files while
// compaction writes their replacement; such files are removed on open.
const CleanedSuffix = ".cleaned"

// SwapSuffix marks a compacted segment's files that are complete and
// synced, waiting to replace the originals. A segment's swap is committed
// once its .log file has the suffix: open then finishes it by renaming
// every .swap file of that segment over the original. Index files are
// renamed to .swap before the .log file, so that a .log.swap never lacks
// them.
const SwapSuffix = ".swap"

// CleanShutdownFile marks a log that was closed cleanly.
const CleanShutdownFile = "clean-shutdown"

var extensions = [...]string{KindLog: ".log", KindIndex: ".index", KindTimeIndex: ".timeindex"}

// String returns the file extension of k, with its dot.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(extensions) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return extensions[k]
}

const offsetDigits = 20

// SegmentFile returns the name of the segment file of kind k whose base
// offset is base.
func SegmentFile(base int64, k Kind) string {
	return fmt.Sprintf("%020d%s", base, k)
}

// ParseSegmentFile parses a name made by SegmentFile. ok is false for any
// other name, including names with DeletedSuffix.
func ParseSegmentFile(name string) (base int64, k Kind, ok bool) {
	if len(name) <= offsetDigits {
		return 0, 0, false
	}
	digits, ext := name[:offsetDigits], name[offsetDigits:]
	for kind, e := range extensions {
		if ext != e {
			continue
		}
		for i := 0; i < len(digits); i++ {
			if digits[i] < '0' || digits[i] > '9' {
				return 0, 0, false
			}
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		return n, Kind(kind), true
	}
	return 0, 0, false
}

// PartitionDir returns the directory name of a topic's partition.
func PartitionDir(topic string, partition int32) string {
	return topic + "-" + strconv.FormatInt(int64(partition), 10)
}

// ParsePartitionDir parses a name made by PartitionDir. The topic is what
// stands before the last dash, so topics may contain dashes themselves.
func ParsePartitionDir(name string) (topic string, partition int32, ok bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 || name[i+1] == '+' || (len(name[i+1:]) > 1 && name[i+1] == '0') {
		return "", 0, false
	}
	return name[:i], int32(p), true
}
