package readme

import (
	"testing"

	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
)

// The compiled copy of the conformance fragment of docs/testing.md
// ("Testing an idempotency store"). It lives outside a _test.go file so
// that go test does not run it: the core's own tests run the suite on
// MemoryStore (idempotency_conformance_test.go).

// newStore stands for the store under test.
func newStore(t *testing.T, opts nectarhookstest.StoreOptions) nectarhooks.IdempotencyStore {
	return nectarhooks.NewMemoryStore(0, opts.TTL)
}

// TestConformance is the fragment, as a store's own test would hold it.
func TestConformance(t *testing.T) {
	nectarhookstest.TestIdempotencyStore(t, func(t *testing.T, opts nectarhookstest.StoreOptions) nectarhooks.IdempotencyStore {
		// A table or key prefix named after opts.Namespace, remembering
		// completed messages for opts.TTL, on connections of its own made
		// through opts.Dial when set; t.Cleanup drops and closes them.
		return newStore(t, opts)
	})
}
