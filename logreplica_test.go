package commitlog

import (
	"testing"

	"github.com/streamkit/commitlog/internal/batch"
)

// TestLogResetTo empties a log and restarts it past its end, as a
// follower does when its leader's log starts after its own end; appends
// (replicated, with the leader's offsets) continue from there, and the
// state survives reopening.
func TestLogResetTo(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLog(dir, LogConfig{SyncPolicy: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.AppendRecords(CompressionNone, Record{Value: []byte("old")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.ResetTo(100); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != 100 || l.EndOffset() != 100 {
		t.Fatalf("after reset: [%d, %d), want [100, 100)", l.StartOffset(), l.EndOffset())
	}
	b, err := AppendBatch(nil, CompressionNone, Record{Value: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	batch.SetBaseOffset(b, 100)
	if end, err := l.AppendReplicated(b); err != nil || end != 101 {
		t.Fatalf("replicated append after reset: end %d, %v", end, err)
	}
	if err := l.ResetTo(101); err != nil { // to its own end: same file names as the active segment's
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = OpenLog(dir, LogConfig{SyncPolicy: SyncNone}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.StartOffset() != 101 || l.EndOffset() != 101 {
		t.Fatalf("after reopening: [%d, %d), want [101, 101)", l.StartOffset(), l.EndOffset())
	}
}
