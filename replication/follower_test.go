package replication

import (
	"bytes"
	"errors"
	"testing"
)

// truncateFrom runs the follower's truncation rounds against leader,
// through the methods a driver calls, and returns the number of questions
// asked.
func truncateFrom(t *testing.T, leader, follower *Replica) int {
	t.Helper()
	asked := 0
	for {
		epoch, ok := follower.TruncationNeeded()
		if !ok {
			return asked
		}
		if asked++; asked > 10 {
			t.Fatal("truncation does not converge")
		}
		if epoch < 0 {
			mustNil(t, follower.Truncate(-1, -1))
			continue
		}
		le, end, err := leader.endOffsetForEpoch(follower.State().LeaderEpoch, epoch)
		mustNil(t, err)
		mustNil(t, follower.Truncate(le, end))
		checkInvariants(t, follower)
	}
}

// catchUp fetches from leader until follower id has the leader's log.
func catchUp(t *testing.T, leader, follower *Replica, id int32) {
	t.Helper()
	for range 100 {
		off, epoch, ok := follower.FetchPosition()
		if !ok {
			t.Fatal("follower cannot fetch")
		}
		hw, start, err := leader.FollowerFetch(t0, id, off, epoch)
		mustNil(t, err)
		var recs []byte
		if off < leader.log.EndOffset() {
			recs, err = leader.log.ReadBatches(nil, off, 100)
			mustNil(t, err)
		}
		mustNil(t, follower.Fetched(epoch, recs, hw, start))
		checkInvariants(t, leader)
		checkInvariants(t, follower)
		if len(recs) == 0 && follower.HighWatermark() == leader.HighWatermark() {
			return
		}
	}
	t.Fatal("follower does not catch up")
}

func sameLog(t *testing.T, a, b *memLog) {
	t.Helper()
	if a.EndOffset() != b.EndOffset() || !bytes.Equal(a.content(a.EndOffset()), b.content(b.EndOffset())) {
		t.Fatalf("logs differ: LEO %d and %d", a.EndOffset(), b.EndOffset())
	}
}

func TestFollowerFetched(t *testing.T) {
	r, l := newTestReplica(t, 2, Config{})
	mustNil(t, r.Apply(t0, state(1, 3, 1, ids(1, 2), ids(1, 2))))
	if _, _, ok := r.FetchPosition(); ok {
		t.Fatal("fetch position before truncation")
	}
	if e, ok := r.TruncationNeeded(); !ok || e != -1 {
		t.Fatalf("TruncationNeeded = %d %v, want -1 true", e, ok)
	}
	mustNil(t, r.Truncate(-1, -1))
	off, epoch, ok := r.FetchPosition()
	if !ok || off != 0 || epoch != 3 {
		t.Fatalf("FetchPosition = %d %d %v", off, epoch, ok)
	}
	recs := append(buildBatch(0, 1, "a", "b"), buildBatch(2, 3, "c")...)
	mustNil(t, r.Fetched(3, recs, 10, 0))
	if l.EndOffset() != 3 || r.HighWatermark() != 3 {
		t.Fatalf("LEO %d HW %d, want 3 3", l.EndOffset(), r.HighWatermark())
	}
	want := []EpochEntry{{1, 0}, {3, 2}}
	if got := r.epochs.Entries(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("epochs %v, want %v", got, want)
	}
	mustNil(t, r.Fetched(3, nil, 2, 0)) // nothing new, lower leader HW (Kafka follows it)
	if r.HighWatermark() != 2 {
		t.Fatalf("HW %d, want 2", r.HighWatermark())
	}

	bad := buildBatch(3, 3, "d")
	bad[len(bad)-1] ^= 0xff
	for name, recs := range map[string][]byte{
		"bad crc":     bad,
		"gap":         buildBatch(4, 3, "d"),
		"overlap":     buildBatch(2, 3, "d"),
		"torn":        buildBatch(3, 3, "d")[:70],
		"epoch ahead": buildBatch(3, 4, "d"),
		"garbage":     []byte("not a batch at all, but long enough to hold a batch header....."),
	} {
		if err := r.Fetched(3, recs, 10, 0); !errors.Is(err, ErrInvalidRecords) {
			t.Errorf("%s: err = %v, want ErrInvalidRecords", name, err)
		}
		if l.EndOffset() != 3 {
			t.Fatalf("%s appended", name)
		}
	}
	// An answer for another epoch is ignored.
	mustNil(t, r.Fetched(2, buildBatch(3, 2, "d"), 10, 0))
	if l.EndOffset() != 3 {
		t.Fatal("stale answer appended")
	}
	checkInvariants(t, r)
}

// KIP-101: a follower whose HW lags its log must not truncate to the HW
// (it would lose committed records it holds); it truncates where the
// leader's epoch ended, which also removes a divergent tail written by an
// old leader.
func TestTruncateToLeaderEpochEndNotHW(t *testing.T) {
	// Leader A (broker 1): epoch 1 at 0..4, epoch 3 from 5 on.
	a, al := newTestReplica(t, 1, Config{})
	mustNil(t, a.Apply(t0, state(3, 1, 1, ids(1, 2, 3), ids(1, 2, 3)))) // broker 3 leads epoch 1
	mustNil(t, a.Truncate(-1, -1))
	mustNil(t, a.Fetched(1, buildBatch(0, 1, "0", "1", "2", "3", "4"), 0, 0))
	// B (broker 2): the same epoch 1 records, then led epoch 2 alone and
	// wrote 5..7, never replicated. Its HW is 3.
	b, bl := newTestReplica(t, 2, Config{})
	mustNil(t, b.Apply(t0, state(3, 1, 1, ids(1, 2, 3), ids(1, 2, 3))))
	mustNil(t, b.Truncate(-1, -1))
	mustNil(t, b.Fetched(1, buildBatch(0, 1, "0", "1", "2", "3", "4"), 3, 0))
	mustNil(t, b.Apply(t0, state(2, 2, 2, ids(1, 2, 3), ids(1, 2, 3))))
	bl.appendLeader("x", "y", "z")
	if b.HighWatermark() != 3 || bl.EndOffset() != 8 {
		t.Fatalf("setup: B HW %d LEO %d", b.HighWatermark(), bl.EndOffset())
	}
	// A leads epoch 3 and writes more; B follows.
	mustNil(t, a.Apply(t0, state(1, 3, 3, ids(1, 2), ids(1, 2))))
	a.Appended(al.appendLeader("5", "6", "7", "8"))
	mustNil(t, b.Apply(t0, state(1, 3, 3, ids(1, 2), ids(1, 2))))
	if e, ok := b.TruncationNeeded(); !ok || e != 2 {
		t.Fatalf("B asks about %d %v, want 2", e, ok)
	}
	le, end, err := a.EndOffsetForEpoch(2)
	if err != nil || le != 1 || end != 5 {
		t.Fatalf("A answers %d %d %v, want 1 5", le, end, err)
	}
	mustNil(t, b.Truncate(le, end))
	if _, ok := b.TruncationNeeded(); ok {
		t.Fatal("truncation not done")
	}
	if bl.EndOffset() != 5 {
		t.Fatalf("B truncated to %d, want 5 (not its HW 3)", bl.EndOffset())
	}
	if b.HighWatermark() != 3 {
		t.Fatalf("B HW %d, want 3", b.HighWatermark())
	}
	if es := b.epochs.Entries(); len(es) != 1 || es[0] != (EpochEntry{1, 0}) {
		t.Fatalf("B epochs %v", es)
	}
	catchUp(t, a, b, 2)
	sameLog(t, al, bl)
	if bl.valueAt(5) != "5" || bl.epochAt(5) != 3 {
		t.Fatalf("B offset 5 = %q epoch %d", bl.valueAt(5), bl.epochAt(5))
	}
}

// KIP-279: two quick leader changes leave A and B with different records at
// the same offset in epochs the other does not know. A leader answer made
// of an end offset alone (KIP-101) lets B keep its divergent record; asking
// again with the epoch the leader names converges.
func TestTruncateDoubleLeaderChange(t *testing.T) {
	a, al := newTestReplica(t, 1, Config{})
	b, bl := newTestReplica(t, 2, Config{})
	// Both have m0 from epoch 0.
	mustNil(t, a.Apply(t0, state(1, 0, 0, ids(1, 2), ids(1, 2))))
	a.Appended(al.appendLeader("m0"))
	mustNil(t, b.Apply(t0, state(1, 0, 0, ids(1, 2), ids(1, 2))))
	truncateFrom(t, a, b)
	catchUp(t, a, b, 2)
	// A leads epoch 1 and writes m1 at 1, not replicated.
	mustNil(t, a.Apply(t0, state(1, 1, 1, ids(1, 2), ids(1, 2))))
	a.Appended(al.appendLeader("m1"))
	// B leads epoch 2 and writes m2 at 1, not replicated.
	mustNil(t, b.Apply(t0, state(2, 2, 2, ids(1, 2), ids(1, 2))))
	b.Appended(bl.appendLeader("m2"))
	// A leads again in epoch 3; B follows.
	mustNil(t, a.Apply(t0, state(1, 3, 3, ids(1, 2), ids(1, 2))))
	a.Appended(al.appendLeader("m3"))
	mustNil(t, b.Apply(t0, state(1, 3, 3, ids(1, 2), ids(1, 2))))

	// Round 1: B asks about epoch 2; A knows 0, 1, 3: answers (1, 2).
	// B knows 0 and 2: its largest <= 1 is 0, ending at 1: it truncates to
	// 1 and asks again about 0. Round 2: A answers (0, 1): done at 1.
	if n := truncateFrom(t, a, b); n != 2 {
		t.Fatalf("%d rounds, want 2", n)
	}
	if bl.EndOffset() != 1 {
		t.Fatalf("B truncated to %d, want 1", bl.EndOffset())
	}
	catchUp(t, a, b, 2)
	sameLog(t, al, bl)
	for off, want := range []string{"m0", "m1", "m3"} {
		if got := bl.valueAt(int64(off)); got != want {
			t.Fatalf("B offset %d = %q, want %q", off, got, want)
		}
	}
	if got, want := b.epochs.Entries(), a.epochs.Entries(); len(got) != len(want) {
		t.Fatalf("B epochs %v, A epochs %v", got, want)
	}
}

// A follower with no epoch information truncates to its HW; an undefined
// answer truncates nothing.
func TestTruncateWithoutEpochs(t *testing.T) {
	r, l := newTestReplica(t, 2, Config{})
	l.appendEpoch(-1, 5) // records from before leader epochs
	r.InitHighWatermark(3)
	mustNil(t, r.Apply(t0, state(1, 1, 1, ids(1, 2), ids(1, 2))))
	if e, ok := r.TruncationNeeded(); !ok || e != -1 {
		t.Fatalf("TruncationNeeded = %d %v", e, ok)
	}
	mustNil(t, r.Truncate(-1, -1))
	if l.EndOffset() != 0 { // the 5-record batch straddles 3: cut whole
		t.Fatalf("LEO %d, want 0", l.EndOffset())
	}

	r2, l2 := newTestReplica(t, 2, Config{})
	l2.appendEpoch(1, 5)
	mustNil(t, r2.epochs.Assign(1, 0))
	mustNil(t, r2.Apply(t0, state(1, 2, 1, ids(1, 2), ids(1, 2))))
	mustNil(t, r2.Truncate(-1, -1)) // the leader knows no epoch
	if l2.EndOffset() != 5 {
		t.Fatalf("undefined answer truncated to %d", l2.EndOffset())
	}
	if _, _, ok := r2.FetchPosition(); !ok {
		t.Fatal("cannot fetch after truncation")
	}
}

// NewReplica drops epoch entries past the recovered log end.
func TestNewReplicaTruncatesEpochs(t *testing.T) {
	r, l := newTestReplica(t, 1, Config{})
	l.appendEpoch(1, 3)
	mustNil(t, r.epochs.Assign(1, 0))
	mustNil(t, r.epochs.Assign(2, 3))
	mustNil(t, r.epochs.Assign(4, 10))
	r2 := NewReplica(tp0, 1, l, r.epochs, Config{})
	if es := r2.epochs.Entries(); len(es) != 1 {
		t.Fatalf("epochs %v, want only epoch 1", es)
	}
}

// A follower whose log ends below the leader's log start restarts its log
// there (with a LogResetter).
func TestFollowerResetToLeaderStart(t *testing.T) {
	r, l := newTestReplica(t, 2, Config{})
	l.appendEpoch(1, 2)
	mustNil(t, r.epochs.Assign(1, 0))
	mustNil(t, r.Apply(t0, state(1, 2, 1, ids(1, 2), ids(1, 2))))
	mustNil(t, r.Truncate(1, 2))
	mustNil(t, r.resetTo(2, 10))
	if l.StartOffset() != 10 || l.EndOffset() != 10 || r.HighWatermark() != 10 {
		t.Fatalf("after reset: start %d end %d HW %d", l.StartOffset(), l.EndOffset(), r.HighWatermark())
	}
	if len(r.epochs.Entries()) != 0 {
		t.Fatal("epochs kept")
	}
	mustNil(t, r.Fetched(2, buildBatch(10, 2, "a"), 11, 10))
	if l.EndOffset() != 11 {
		t.Fatalf("LEO %d", l.EndOffset())
	}
}
