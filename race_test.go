//go:build race

package nectarhooks

// RaceEnabled reports that the tests run under the race detector, which
// makes sync.Pool drop items on purpose: allocation counts only hold
// without it. Exported for the external test package.
const RaceEnabled = true
