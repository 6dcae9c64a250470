//go:build !race

package nectarhooks

// RaceEnabled reports that the tests run without the race detector.
const RaceEnabled = false
