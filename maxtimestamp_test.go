package commitlog

import (
	"context"
	"testing"
	"time"
)

func TestMaxTimestamp(t *testing.T) {
	b := openTestBroker(t, t.TempDir())
	defer b.Close()
	topic, err := b.CreateTopic(context.Background(), "t", TopicConfig{SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := topic.Partition(0)
	if _, _, ok, err := p.MaxTimestamp(); ok || err != nil {
		t.Fatalf("empty partition: ok %v, err %v", ok, err)
	}
	at := func(ms int64) Record { return Record{Value: make([]byte, 300), Timestamp: time.UnixMilli(ms)} }
	// Offsets 0..5 over several segments; the largest timestamp, 900, is
	// held by offsets 3 (inside a batch) and 5: the first wins.
	for _, batch := range [][]Record{{at(100), at(500)}, {at(200), at(900)}, {at(300)}, {at(900)}, {at(400)}} {
		if _, err := p.Append(batch...); err != nil {
			t.Fatal(err)
		}
	}
	if topic.Describe().Partitions[0].Segments < 2 {
		t.Fatal("want several segments")
	}
	off, ts, ok, err := p.MaxTimestamp()
	if err != nil || !ok || off != 3 || ts.UnixMilli() != 900 {
		t.Fatalf("MaxTimestamp = %d, %d, %v, %v; want 3, 900", off, ts.UnixMilli(), ok, err)
	}
}
