package nectarhooks_test

import (
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// TestMemoryStoreConformance runs the store conformance suite on
// MemoryStore. One process cannot have separate instances that share data,
// so every store asked for on a namespace is the same *MemoryStore: the
// replica and restart tests then check one instance against itself.
func TestMemoryStoreConformance(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var mu sync.Mutex
	stores := map[string]*nectarhooks.MemoryStore{}
	nectarhookstest.TestIdempotencyStore(t, func(t *testing.T, opts nectarhookstest.StoreOptions) nectarhooks.IdempotencyStore {
		mu.Lock()
		defer mu.Unlock()
		s, ok := stores[opts.Namespace]
		if !ok {
			s = nectarhooks.NewMemoryStore(0, opts.TTL)
			stores[opts.Namespace] = s
		}
		return s
	})
}
