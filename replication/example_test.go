package replication_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/streamkit/commitlog/replication"
)

// The leader-epoch cache answers where a follower's log diverges.
func ExampleEpochCache() {
	dir, err := os.MkdirTemp("", "epochs")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	c, err := replication.OpenEpochCache(filepath.Join(dir, replication.EpochCheckpointFile))
	if err != nil {
		panic(err)
	}
	_ = c.Assign(0, 0)   // epoch 0 wrote from offset 0
	_ = c.Assign(2, 120) // epoch 2 from 120 (epoch 1 wrote nothing here)
	_ = c.Assign(5, 300)

	// A follower whose last epoch is 1 asks where that epoch ended: this
	// log knows epoch 0 as the largest <= 1, which ended at 120.
	fmt.Println(c.EndOffsetFor(1, 450))
	// The latest epoch ends at the log end.
	fmt.Println(c.EndOffsetFor(5, 450))

	b, _ := os.ReadFile(c.Path())
	fmt.Print(string(b))
	// Output:
	// 0 120
	// 5 450
	// 0
	// 3
	// 0 0
	// 2 120
	// 5 300
}
