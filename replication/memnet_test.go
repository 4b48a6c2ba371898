package replication

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// echoHandler answers fetches with fixed records and counts calls.
type echoHandler struct {
	calls   atomic.Int32
	records []byte
}

func (h *echoHandler) HandleFetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error) {
	h.calls.Add(1)
	req.Partitions[0].FetchOffset = -99 // must not reach the caller's request
	return &FetchResponse{Partitions: []FetchedPartition{{Partition: tp0, Records: h.records}}}, nil
}

func (h *echoHandler) HandleOffsetForLeaderEpoch(ctx context.Context, req *EpochRequest) (*EpochResponse, error) {
	h.calls.Add(1)
	return &EpochResponse{Partitions: []EpochAnswer{{Partition: tp0, LeaderEpoch: 1, EndOffset: 7}}}, nil
}

func fetchReq() *FetchRequest {
	return &FetchRequest{ReplicaID: 1, Partitions: []FetchPartition{{Partition: tp0, FetchOffset: 5}}}
}

func TestMemNetworkDelivery(t *testing.T) {
	n := NewMemNetwork(1)
	h := &echoHandler{records: []byte("abc")}
	n.Register(2, h)
	tr := n.Transport(1)
	ctx := context.Background()
	req := fetchReq()
	resp, err := tr.Fetch(ctx, 2, req)
	mustNil(t, err)
	if req.Partitions[0].FetchOffset != 5 {
		t.Fatal("handler changed the caller's request")
	}
	resp.Partitions[0].Records[0] = 'X'
	if string(h.records) != "abc" {
		t.Fatal("caller shares the handler's records")
	}
	eresp, err := tr.OffsetForLeaderEpoch(ctx, 2, &EpochRequest{ReplicaID: 1, Partitions: []EpochQuery{{Partition: tp0}}})
	mustNil(t, err)
	if eresp.Partitions[0].EndOffset != 7 {
		t.Fatalf("answer %+v", eresp)
	}
	if _, err := tr.Fetch(ctx, 3, fetchReq()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unregistered broker: %v", err)
	}
	n.Unregister(2)
	if _, err := tr.Fetch(ctx, 2, fetchReq()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unregistered broker: %v", err)
	}
}

func TestMemNetworkPartition(t *testing.T) {
	n := NewMemNetwork(1)
	for id := int32(1); id <= 3; id++ {
		n.Register(id, &echoHandler{})
	}
	ctx := context.Background()
	reach := func(from, to int32) bool {
		_, err := n.Transport(from).Fetch(ctx, to, fetchReq())
		return err == nil
	}
	n.Partition([]int32{1}, []int32{2, 3})
	if reach(1, 2) || reach(2, 1) || !reach(2, 3) {
		t.Fatal("partition {1} {2 3} not in force")
	}
	n.Isolate(3)
	if reach(3, 1) || !reach(1, 2) {
		t.Fatal("isolate 3 not in force")
	}
	n.Heal()
	if !reach(3, 1) || !reach(1, 2) {
		t.Fatal("heal not in force")
	}
}

func TestMemNetworkFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork(42)
		h := &echoHandler{}
		n.Register(2, h)
		tr := n.Transport(1)
		ctx := context.Background()

		n.SetFaults(Faults{DropRate: 1})
		start := time.Now()
		if _, err := tr.Fetch(ctx, 2, fetchReq()); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("dropped: %v", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("drop returned after %v, want the 100ms timeout", d)
		}

		n.SetFaults(Faults{DuplicateRate: 1})
		before := h.calls.Load()
		_, err := tr.Fetch(ctx, 2, fetchReq())
		mustNil(t, err)
		if got := h.calls.Load() - before; got != 2 {
			t.Fatalf("duplicated request ran the handler %d times", got)
		}

		n.SetFaults(Faults{MaxDelay: 50 * time.Millisecond})
		start = time.Now()
		_, err = tr.Fetch(ctx, 2, fetchReq())
		mustNil(t, err)
		if d := time.Since(start); d >= 100*time.Millisecond {
			t.Fatalf("delay %v beyond 2 x MaxDelay", d)
		}
		n.SetFaults(Faults{})

		// Pause: calls to and from the paused broker wait for Resume.
		n.Pause(2)
		done := make(chan error, 1)
		go func() {
			_, err := tr.Fetch(ctx, 2, fetchReq())
			done <- err
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("paused call returned %v", err)
		default:
		}
		n.Resume(2)
		mustNil(t, <-done)

		n.Pause(1)
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := tr.Fetch(cctx, 2, fetchReq()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call from a paused broker: %v", err)
		}
		n.Resume(1)
	})
}

// The same seed draws the same faults.
func TestMemNetworkSeeded(t *testing.T) {
	draw := func(seed int64) []plan {
		n := NewMemNetwork(seed)
		n.SetFaults(Faults{DropRate: 0.3, DuplicateRate: 0.3, MaxDelay: time.Second})
		var ps []plan
		for range 20 {
			ps = append(ps, n.planCall())
		}
		return ps
	}
	a, b, c := draw(7), draw(7), draw(8)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("seed 7 drew %+v then %+v", a[i], b[i])
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatal("seeds 7 and 8 drew the same faults")
	}
}
