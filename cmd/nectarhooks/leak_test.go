package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: load's
// scheduler, workers and progress line, send's connections.
//
// Started with $NECTARHOOKS_TEST_MAIN=1, the test binary is the program
// itself (main, with its signal handling), for the tests that run it as
// a process of its own (startProgram).
func TestMain(m *testing.M) {
	if os.Getenv("NECTARHOOKS_TEST_MAIN") == "1" {
		main()
	}
	goleak.VerifyTestMain(m)
}
