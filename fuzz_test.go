package commitlog

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/streamkit/commitlog/internal/batch"
	"github.com/streamkit/commitlog/internal/layout"
)

// FuzzRecover writes arbitrary bytes as the last segment of a log that was
// not closed cleanly and opens it: recovery must keep exactly the valid
// prefix of whole batches, never panic, and leave a log that reads back and
// takes appends.
func FuzzRecover(f *testing.F) {
	var seed []byte
	for i := 0; i < 4; i++ {
		seed = append(seed, makeBatch(f, batch.Codec(i), i*3, 3, int64(1000+i))...)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-5])
	f.Add([]byte{})
	f.Add(make([]byte, 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		base := int64(0)
		if err := os.WriteFile(filepath.Join(dir, layout.SegmentFile(base, layout.KindLog)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		valid, _ := batch.Scan(data, len(data), nil)
		cfg := LogConfig{SyncPolicy: SyncNone, IndexIntervalBytes: 64}
		l, err := OpenLog(dir, cfg)
		if err != nil {
			// Only a segment that cannot be a segment at all may refuse.
			t.Fatalf("open: %v", err)
		}
		defer l.Close()
		if got := l.Size(); got != int64(valid) {
			t.Fatalf("recovered %d bytes, want the valid prefix of %d", got, valid)
		}
		for off := l.StartOffset(); off < l.EndOffset(); {
			s, err := l.Read(off, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Bytes) == 0 {
				break
			}
			if _, err := batch.Scan(s.Bytes, len(s.Bytes), nil); err != nil {
				t.Fatalf("read back an invalid batch at %d: %v", off, err)
			}
			off = s.NextOffset
			s.Release()
		}
		end := l.EndOffset()
		b := makeBatch(t, batch.CodecNone, 0, 2, 1)
		got, err := l.Append(b)
		if err != nil || got != end {
			t.Fatalf("append after recovery: base %d, err %v; want base %d", got, err, end)
		}
	})
}
