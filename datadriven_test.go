package commitlog

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/streamkit/commitlog/internal/batch"
)

// TestLogScripts runs the scripts in testdata/log: each drives one log
// through appends, rolls, truncation, retention, closes and crashes, and
// checks its state after every step. Rewrite expectations with -rewrite.
func TestLogScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/log", func(t *testing.T, path string) {
		dir := t.TempDir()
		var l *Log
		var cfg LogConfig
		defer func() {
			if l != nil {
				l.Close()
			}
		}()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key string, def int64) int64 {
				if !d.HasArg(key) {
					return def
				}
				var v int
				d.ScanArgs(t, key, &v)
				return int64(v)
			}
			var err error
			switch d.Cmd {
			case "open":
				cfg = LogConfig{
					SegmentBytes:       arg("segment-bytes", 0),
					IndexIntervalBytes: int(arg("index-interval", 0)),
					SegmentAge:         time.Duration(arg("segment-age-ms", 0)) * time.Millisecond,
					SyncPolicy:         SyncNone,
				}
				l, err = OpenLog(dir, cfg)
			case "reopen":
				l, err = OpenLog(dir, cfg)
			case "close":
				err = l.Close()
				l = nil
			case "crash":
				crash(l)
				l = nil
			case "append":
				// n records in batches of per, timestamps ts, ts+1, ...
				n, per, ts := arg("n", 1), arg("per", 1), arg("ts", 0)
				var bases []string
				for done := int64(0); done < n; done += per {
					k := min(per, n-done)
					base, err := l.Append(makeBatch(t, batch.CodecNone, int(l.EndOffset()), int(k), ts+done))
					if err != nil {
						return "error: " + err.Error()
					}
					bases = append(bases, fmt.Sprint(base))
				}
				return "bases: " + strings.Join(bases, " ") + "\n" + state(l)
			case "roll":
				err = l.Roll()
			case "truncate":
				var end int64
				end, err = l.Truncate(arg("offset", 0))
				if err == nil {
					return fmt.Sprintf("end: %d\n%s", end, state(l))
				}
			case "delete-before":
				var n int
				n, err = l.DeleteBefore(arg("offset", 0))
				if err == nil {
					return fmt.Sprintf("deleted: %d\n%s", n, state(l))
				}
			case "retain-bytes":
				var n int
				n, err = l.RetainBytes(arg("limit", 0))
				if err == nil {
					return fmt.Sprintf("deleted: %d\n%s", n, state(l))
				}
			case "retain-age":
				var n int
				n, err = l.RetainAge(time.Duration(arg("max-age-ms", 0))*time.Millisecond, time.UnixMilli(arg("now", 0)))
				if err == nil {
					return fmt.Sprintf("deleted: %d\n%s", n, state(l))
				}
			case "read":
				s, err := l.Read(arg("offset", 0), int(arg("max-bytes", 1<<20)))
				if err != nil {
					return "error: " + err.Error()
				}
				defer s.Release()
				var out []string
				for b := s.Bytes; len(b) > 0; {
					h, err := batch.Check(b, len(b))
					if err != nil {
						return "error: " + err.Error()
					}
					out = append(out, fmt.Sprintf("[%d,%d]", h.BaseOffset, h.NextOffset()-1))
					b = b[h.Size():]
				}
				return fmt.Sprintf("batches: %s next: %d", strings.Join(out, " "), s.NextOffset)
			case "offset-for-time":
				off, ok, err := l.OffsetForTime(arg("ts", 0))
				if err != nil {
					return "error: " + err.Error()
				}
				if !ok {
					return "none"
				}
				return fmt.Sprint(off)
			case "records":
				var out []string
				for _, r := range readAll(t, l, l.StartOffset()) {
					out = append(out, fmt.Sprintf("%d@%d", r.Offset, r.Timestamp))
				}
				return strings.Join(out, " ")
			case "files":
				entries, err := os.ReadDir(dir)
				if err != nil {
					return "error: " + err.Error()
				}
				var out []string
				for _, e := range entries {
					out = append(out, e.Name())
				}
				return strings.Join(out, "\n")
			case "state":
				return state(l)
			default:
				t.Fatalf("unknown command %q", d.Cmd)
			}
			if err != nil {
				return "error: " + err.Error()
			}
			return state(l)
		})
	})
}

// state prints a log's offsets and segments.
func state(l *Log) string {
	if l == nil {
		return "closed"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "start=%d end=%d", l.StartOffset(), l.EndOffset())
	if segs := l.segs.Load(); segs != nil {
		for _, s := range segs.segs {
			fmt.Fprintf(&b, "\n  segment %d: next=%d size=%d max-ts=%d index=%d timeindex=%d", s.base, s.next.Load(), s.size.Load(), s.maxTimestamp.Load(), s.index.len(), s.timeIndex.len())
		}
	}
	return b.String()
}
