package riverqueue_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: River clients
// stopped, pools closed, servers and proxies shut.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
