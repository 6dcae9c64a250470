package nectarhookstest_test

import (
	"sync"
	"testing"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// A store module runs the conformance suite from a test of its own. The
// factory maps each namespace to the store's table or key prefix and gives
// every call an instance of its own; a store on a server would also open
// its connections there and drop the table in t.Cleanup. Here the store is
// MemoryStore, which cannot have two instances that share data, so a
// namespace maps to one shared instance.
func ExampleTestIdempotencyStore() {
	testConformance := func(t *testing.T) {
		var mu sync.Mutex
		stores := map[string]*nectarhooks.MemoryStore{}
		nectarhookstest.TestIdempotencyStore(t, func(t *testing.T, opts nectarhookstest.StoreOptions) nectarhooks.IdempotencyStore {
			mu.Lock()
			defer mu.Unlock()
			if stores[opts.Namespace] == nil {
				stores[opts.Namespace] = nectarhooks.NewMemoryStore(0, opts.TTL)
			}
			return stores[opts.Namespace]
		})
	}
	// In a _test.go file this is func TestConformance(t *testing.T).
	_ = testConformance
}
