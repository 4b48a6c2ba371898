package batch

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestFinishMatchesBuild: Finish gives the bytes Build gives, for every
// codec, and reuses the Builder's memory from one batch to the next.
func TestFinishMatchesBuild(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		var b Builder
		for round := range 3 {
			b.Reset(codec)
			b.SetProducer(7, 1, int32(round*10))
			for i := range 10 {
				b.Add(int64(1000+i), []byte("k"), []byte(fmt.Sprint("value ", round, i)), []RecordHeader{{Key: "h", Value: []byte("v")}})
			}
			want, err := b.Build(nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := b.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%v round %d: Finish and Build differ", codec, round)
			}
			if _, err := Check(got, 1<<20); err != nil {
				t.Fatalf("%v round %d: %v", codec, round, err)
			}
		}
		b.Reset(codec)
		b.Add(1, nil, []byte("x"), nil)
		if allocs := testing.AllocsPerRun(100, func() {
			if _, err := b.Finish(); err != nil {
				t.Fatal(err)
			}
		}); codec == CodecNone && allocs != 0 {
			t.Errorf("Finish of an uncompressed batch allocates %v times", allocs)
		}
	}
	var empty Builder
	if _, err := empty.Finish(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Finish of an empty builder: %v", err)
	}
}
