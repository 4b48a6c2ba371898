// Package invariants switches on expensive self-checks of the storage
// engine. Build with -tags invariants (CI does) to have every append and
// roll verify what the types document: offsets and index entries increase,
// the high-water marks stay ordered. Without the tag the checks compile
// away.
package invariants

import "fmt"

// Check panics with the formatted message when Enabled and cond is false.
// It is for states the code itself must never reach, never for bad input.
func Check(cond bool, format string, args ...any) {
	if Enabled && !cond {
		panic(fmt.Sprintf("invariant violated: "+format, args...))
	}
}
