//go:build race

package batch

// raceEnabled: sync.Pool deliberately drops items under the race detector,
// so allocation counts are not meaningful there.
const raceEnabled = true
