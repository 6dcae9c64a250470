package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: load's
// scheduler, workers and progress line, send's connections.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
