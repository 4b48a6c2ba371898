package compat

import "testing"

// received is a record as one client reports it.
type received[R any] interface {
	position() (partition int32, offset int64)
	equal(R) bool
}

// checkExactlyOnce asserts got holds every record of want (keyed by
// partition and offset) exactly once, and no other, each partition in
// offset order.
func checkExactlyOnce[R received[R]](t *testing.T, want map[[2]int64]R, got []R) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("received %d records, want %d", len(got), len(want))
	}
	seen := make(map[[2]int64]bool)
	last := make(map[int32]int64)
	for _, r := range got {
		partition, offset := r.position()
		id := [2]int64{int64(partition), offset}
		w, ok := want[id]
		switch {
		case !ok:
			t.Errorf("unexpected record at partition %d offset %d: %+v", partition, offset, r)
		case seen[id]:
			t.Errorf("record at partition %d offset %d received twice", partition, offset)
		case !w.equal(r):
			t.Errorf("partition %d offset %d:\n got %+v\nwant %+v", partition, offset, r, w)
		}
		if l, ok := last[partition]; ok && offset <= l {
			t.Errorf("partition %d: offset %d received after %d", partition, offset, l)
		}
		last[partition] = offset
		seen[id] = true
	}
}
